"""``moviead train --resume`` goes on with the run its folder holds: a config whose model differs is refused with
the differing keys (old -> new), other data settings need ``trainer.resume_force=true``, and trainer / optimiser
/ logger settings (e.g. more epochs) may change."""

from __future__ import annotations

from pathlib import Path

import pytest

from moviead.checkpoints import load_checkpoint_safely
from moviead.cli import main
from moviead.config import load_config
from moviead.stages.checkpointing import ResumeConfigError, check_resume_config
from moviead.stages.train import lightning_trainer_kwargs, train
from tests.stages.test_resume import BATCHES_PER_EPOCH, STAGE1, _overrides


@pytest.fixture()
def one_epoch_run(toy_root: Path, tmp_path: Path) -> Path:
    """A toy Stage-I run folder ``run`` trained for one epoch."""
    train(load_config(STAGE1, _overrides(toy_root, tmp_path, "run", epochs=1)))
    return tmp_path / "run"


def _resume(toy_root: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["train", *map(str, STAGE1), *_overrides(toy_root, tmp_path, "run", epochs=1), *extra, "--resume"]


def test_a_changed_model_is_refused_naming_each_key(one_epoch_run: Path, toy_root: Path, tmp_path: Path,
                                                    capsys) -> None:
    before = (one_epoch_run / "config.yaml").read_bytes()
    old = load_config(STAGE1, _overrides(toy_root, tmp_path, "run", epochs=1))
    capsys.readouterr()
    assert main(_resume(toy_root, tmp_path, "pme.losses.vtm=0.5", "pme.losses.vtc=2.0")) == 2
    err = capsys.readouterr().err
    assert err == (f"moviead train: error: cannot resume {one_epoch_run}: the model differs from the one it was "
                   f"trained with (pme.losses.vtc: {old.pme.losses.vtc!r} -> 2.0; pme.losses.vtm: "
                   f"{old.pme.losses.vtm!r} -> 0.5); resume with the same settings, or start a new run (another "
                   "name=... or --overwrite)\n")
    assert (one_epoch_run / "config.yaml").read_bytes() == before  # the run's record is left as it was


def test_changed_data_needs_resume_force(one_epoch_run: Path, toy_root: Path, tmp_path: Path, capsys) -> None:
    old = load_config(STAGE1, _overrides(toy_root, tmp_path, "run", epochs=1))
    capsys.readouterr()
    assert main(_resume(toy_root, tmp_path, "data.fps=2")) == 2
    err = capsys.readouterr().err
    assert err == (f"moviead train: error: cannot resume {one_epoch_run}: the data settings differ from the run's "
                   f"(data.fps: {old.data.fps!r} -> 2.0); pass trainer.resume_force=true to go on with the new "
                   "ones, or resume with the same settings\n")
    check_resume_config(one_epoch_run / "config.yaml", load_config(STAGE1, [
        *_overrides(toy_root, tmp_path, "run", epochs=1), "data.fps=2", "trainer.resume_force=true"]), force=True)
    with pytest.raises(ResumeConfigError, match=r"the model differs .*\(task: "):  # force never covers the model
        check_resume_config(one_epoch_run / "config.yaml", load_config(STAGE1, [
            *_overrides(toy_root, tmp_path, "run", epochs=1), "task=captioning"]), force=True)


def test_more_epochs_and_another_learning_rate_resume(one_epoch_run: Path, toy_root: Path, tmp_path: Path) -> None:
    assert load_checkpoint_safely(one_epoch_run / "checkpoints" / "last.ckpt")["global_step"] == BATCHES_PER_EPOCH
    assert main(["train", *map(str, STAGE1), *_overrides(toy_root, tmp_path, "run", epochs=2), "optim.lr=0.001",
                 "trainer.log_every_n_steps=2", "--resume"]) == 0
    assert load_checkpoint_safely(one_epoch_run / "checkpoints" / "last.ckpt")["global_step"] == 2 * BATCHES_PER_EPOCH
    assert "max_epochs: 2" in (one_epoch_run / "config.yaml").read_text()


def test_resume_force_is_moviead_s_own_key() -> None:
    cfg = load_config(STAGE1, ["trainer.resume_force=true"])
    assert cfg.trainer.resume_force is True
    assert "resume_force" not in lightning_trainer_kwargs(cfg.trainer)
