"""Exact resume: training stopped mid-epoch and resumed from last.ckpt ends with the uninterrupted run's weights.

Toy Stage-I (tiny PME), CPU, deterministic algorithms, loader.num_workers=0: 5 batches an epoch, 2 epochs, last.ckpt
every 2 steps. The fast test stops the run in-process (an exception at step 7, after the step-6 checkpoint); the
slow one SIGKILLs a ``moviead train`` process as soon as its first mid-epoch checkpoint appears.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from moviead.checkpoints import load_checkpoint_safely
from moviead.cli import main
from moviead.config import load_config
from moviead.stages.checkpointing import RESUME_KEY, AtomicCheckpointIO, ResumeState
from moviead.stages.train import build_trainer, train
from tests.stages._stage2 import stage2_cfg

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
STAGE1 = [CONFIGS / "stage1" / "pme.yaml", CONFIGS / "stage1" / "pme_tiny.yaml", CONFIGS / "data" / "toy.yaml"]
BATCHES_PER_EPOCH = 5


def _overrides(toy_root: Path, runs: Path, name: str, epochs: int = 2) -> list[str]:
    return [
        f"data.root={toy_root / 'mad'}", f"trainer.default_root_dir={runs}", f"name={name}",
        f"trainer.max_epochs={epochs}", f"trainer.limit_train_batches={BATCHES_PER_EPOCH}", "loader.batch_size=8",
        "trainer.limit_val_batches=1", "trainer.num_sanity_val_steps=0", "trainer.deterministic=true",
        "trainer.ckpt_every_n_steps=2", "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false",
    ]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint_safely(run / "checkpoints" / "last.ckpt")["state_dict"]


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys() and len(a) > 50
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def _train_losses(run: Path) -> dict[int, str]:
    with (run / "metrics.csv").open(newline="") as handle:
        return {int(row["step"]): row["train/loss"] for row in csv.DictReader(handle) if row.get("train/loss")}


class StopAtStep(L.Callback):
    """Raises at the end of training step ``step``, before that step's checkpoint is written."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise InterruptedError(f"stopped at step {self.step}")


def test_a_run_stopped_mid_epoch_and_resumed_matches_the_uninterrupted_run(toy_root: Path, tmp_path: Path) -> None:
    train(load_config(STAGE1, _overrides(toy_root, tmp_path, "whole")))
    exported = sorted(p.name for p in (tmp_path / "whole" / "export").iterdir())
    assert exported == ["config.yaml", "pme.safetensors", "pme_config.json"]  # weights as safetensors, no pickle
    with pytest.raises(InterruptedError):
        train(load_config(STAGE1, _overrides(toy_root, tmp_path, "cut")), extra_callbacks=[StopAtStep(7)])
    stopped = load_checkpoint_safely(tmp_path / "cut" / "checkpoints" / "last.ckpt")
    assert stopped["global_step"] == 6  # the step-6 checkpoint: epoch 1, after its first batch
    assert (stopped[RESUME_KEY]["epoch"], stopped[RESUME_KEY]["batches_done"]) == (1, 1)

    train(load_config(STAGE1, [*_overrides(toy_root, tmp_path, "cut"), "trainer.resume=true"]))
    _assert_same_weights(_weights(tmp_path / "whole"), _weights(tmp_path / "cut"))
    # metrics.csv goes on from the checkpoint: the same loss at every step as the uninterrupted run.
    whole, resumed = _train_losses(tmp_path / "whole"), _train_losses(tmp_path / "cut")
    assert sorted(resumed) == sorted(whole) == list(range(2 * BATCHES_PER_EPOCH)) and resumed == whole


def test_the_trainer_checkpoints_atomically_every_n_steps_with_resume_state(toy_root: Path, tmp_path: Path) -> None:
    cfg = load_config(STAGE1, _overrides(toy_root, tmp_path, "io"))
    trainer = build_trainer(cfg, tmp_path / "io", "val/t2v_r1")
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    steps = [c for c in trainer.checkpoint_callbacks if c._every_n_train_steps]  # type: ignore[attr-defined]
    assert [(c._every_n_train_steps, c.save_last, c.save_top_k) for c in steps] == [(2, True, 0)]
    assert any(isinstance(c, ResumeState) for c in trainer.callbacks)


def test_resume_without_a_checkpoint_or_from_a_tampered_one_fails_clearly(
    toy_root: Path, tmp_path: Path, capsys
) -> None:
    args = ["train", *map(str, STAGE1), *_overrides(toy_root, tmp_path, "fresh"), "--resume"]
    assert main(args) == 2
    assert "checkpoints/last.ckpt does not exist" in capsys.readouterr().err

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(tmp_path / "payload-ran"),))

    last = tmp_path / "fresh" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    torch.save({"state_dict": {}, "loops": Payload()}, last)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"refusing to load {last}" in err and "not a plain-weights checkpoint" in err
    assert not (tmp_path / "payload-ran").exists()


def _moviead_train(toy_root: Path, runs: Path, name: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "moviead", "train", *map(str, STAGE1), *_overrides(toy_root, runs, name, 3),
               *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> None:
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]


@pytest.mark.slow
@pytest.mark.integration
def test_moviead_train_killed_mid_epoch_and_resumed_matches_the_uninterrupted_run(
    toy_root: Path, tmp_path: Path
) -> None:
    began = time.perf_counter()
    _finish(_moviead_train(toy_root, tmp_path, "whole"))
    last = tmp_path / "cut" / "checkpoints" / "last.ckpt"
    process = _moviead_train(toy_root, tmp_path, "cut")
    while not last.exists() and process.poll() is None:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)  # no clean-up of any kind: the rename makes last.ckpt whole or absent
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    killed_at = load_checkpoint_safely(last)
    total_steps = 3 * BATCHES_PER_EPOCH
    assert 0 < killed_at["global_step"] < total_steps and killed_at[RESUME_KEY]["batches_done"] > 0  # mid-epoch
    assert not [p for p in last.parent.iterdir() if p.name.endswith(".tmp")]

    _finish(_moviead_train(toy_root, tmp_path, "cut", "--resume"))
    _assert_same_weights(_weights(tmp_path / "whole"), _weights(tmp_path / "cut"))
    print(f"killed at step {killed_at['global_step']} of {total_steps}; three runs in "
          f"{time.perf_counter() - began:.1f} s")


@pytest.mark.slow
def test_a_stage2_run_stopped_mid_epoch_and_resumed_matches_the_uninterrupted_run(
    toy_root: Path, stage1_export: Path, tmp_path: Path
) -> None:
    """Stage-II checkpoints hold only the trainable weights; with DSM dropout on, resume is still exact (~15 s)."""
    settings = ["trainer.max_epochs=2", "trainer.limit_train_batches=4", "trainer.limit_val_batches=1",
                "trainer.num_sanity_val_steps=0", "captioning.val_generate_batches=1", "loader.eval_batch_size=4",
                "trainer.deterministic=true", "trainer.ckpt_every_n_steps=2", "captioning.dsm.dropout=0.1"]
    train(stage2_cfg(toy_root, stage1_export, tmp_path, *settings, "name=whole"))
    with pytest.raises(InterruptedError):
        train(stage2_cfg(toy_root, stage1_export, tmp_path, *settings, "name=cut"), extra_callbacks=[StopAtStep(7)])
    assert load_checkpoint_safely(tmp_path / "cut" / "checkpoints" / "last.ckpt")[RESUME_KEY]["batches_done"] == 2
    train(stage2_cfg(toy_root, stage1_export, tmp_path, *settings, "name=cut", "trainer.resume=true"))
    _assert_same_weights(_weights(tmp_path / "whole"), _weights(tmp_path / "cut"))
