"""A 2-process gloo DDP training run on the CPU follows the same loss curve as one process with the doubled batch.

Stage-I PME with VTC only (all-gathered with gradient, so DDP's averaged gradient equals the joined batch's), no
dropout (the tiny PME), no random frame shift, no validation. The training order is the resumable sampler's: rank r
gets positions r, r + 2, ... of the epoch's permutation, so the two ranks' batches of step k together are the one
process's batch k. VTM (hard negatives drawn at random per rank) and VTG (a per-token mean over texts of different
lengths) do not decompose this way and are off here; their unused heads need ``ddp_find_unused_parameters_true``.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]
STEPS = 6


def _train(toy_root: Path, run_root: Path, devices: int, batch_size: int) -> tuple[list[float], dict]:
    args = [
        sys.executable, "-m", "moviead", "train", "configs/stage1/pme.yaml", "configs/stage1/pme_tiny.yaml",
        "configs/data/toy.yaml", f"data.root={toy_root / 'mad'}", f"trainer.default_root_dir={run_root}",
        "name=ddp", "pme.losses.vtm=0", "pme.losses.vtg=0", "loader.frames.train_shift=0", "loader.num_workers=0",
        f"loader.batch_size={batch_size}", "trainer.accelerator=cpu", f"trainer.devices={devices}",
        f"trainer.strategy={'ddp_find_unused_parameters_true' if devices > 1 else 'auto'}", "trainer.max_epochs=1",
        f"trainer.limit_train_batches={STEPS}", "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0",
        "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false", "trainer.ckpt_every_n_steps=0",
        "optim.warmup_steps=1", "optim.lr=3e-3",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(run_root / "ddp" / "metrics.csv", encoding="utf-8") as handle:
        losses = [float(row["train/loss"]) for row in csv.DictReader(handle) if row.get("train/loss")]
    return losses, load_file(run_root / "ddp" / "export" / "pme.safetensors")


@pytest.mark.slow  # two trainings, one of them two processes: ~1 min on 2 cores
@pytest.mark.integration
def test_ddp_two_processes_equal_one_process_with_the_doubled_batch(toy_root: Path, tmp_path: Path) -> None:
    single, single_weights = _train(toy_root, tmp_path / "single", devices=1, batch_size=16)
    ddp, ddp_weights = _train(toy_root, tmp_path / "ddp", devices=2, batch_size=8)
    print(f"train/loss, 1 process x 16: {single}\ntrain/loss, 2 processes x 8: {ddp}")
    assert len(single) == len(ddp) == STEPS
    # the first loss (same weights, the two halves' losses averaged) agrees to float precision; the second (after one
    # all-reduced update) too on this machine (1e-6), but AdamW's first step moves an element whose gradient is float
    # rounding by about lr either way (below), so another CPU may part the curves sooner: 1e-4 there (2.8e-4 of a loss
    # that the first update moved by 7.5e-3)
    assert ddp[0] == pytest.approx(single[0], rel=1e-5, abs=1e-6)
    assert ddp[1] == pytest.approx(single[1], rel=1e-4)
    # later steps drift apart by float rounding that AdamW amplifies (see the weights below): measured up to 0.4 % of
    # the curve's range at step 5 on this 2-core machine; the bound leaves room for other machines' rounding
    movement = max(single) - min(single)
    assert movement > 1e-2  # the weights move: the curves are not trivially flat
    assert max(abs(a - b) for a, b in zip(ddp, single)) < 0.05 * movement
    assert single_weights.keys() == ddp_weights.keys()
    diffs = {name: (ddp_weights[name] - tensor).abs() for name, tensor in single_weights.items()}
    worst = max(diffs, key=lambda n: diffs[n].max())
    mean = torch.cat([d.flatten() for d in diffs.values()]).mean().item()
    scale = torch.cat([w.flatten() for w in single_weights.values()]).abs().mean().item()
    every = torch.cat([d.flatten() for d in diffs.values()])
    apart = (every > 1e-4).float().mean().item()
    print(f"weights: largest difference {diffs[worst].max().item():.2e} ({worst}), mean {mean:.2e}, "
          f"mean |weight| {scale:.2e}, share over 1e-4 {apart:.2e}")
    # AdamW divides by the gradient's running RMS: an element whose gradient is at the level of float rounding moves by
    # about lr at the first step, in a direction the rounding sets; such elements then steer the later steps, so the
    # two runs' weights drift apart (measured 2026-12-03: mean difference 7e-5 against a mean |weight| of 0.021, the
    # largest 5.5e-3, 22 % of elements more than 1e-4 apart; the losses of steps 1-3 equal to 1e-6).
    assert mean < 0.03 * scale
