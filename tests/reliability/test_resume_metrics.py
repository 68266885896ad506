"""A resumed run's ``metrics.csv`` holds each logged row once: rows the stopped run wrote for steps after its last
checkpoint are replaced by the replay's, not repeated."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from moviead.config import load_config
from moviead.stages.tracking import drop_replayed_rows
from moviead.stages.train import train
from tests.stages.test_resume import BATCHES_PER_EPOCH, STAGE1, StopAtStep, _overrides


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _train_steps(rows: list[dict[str, str]]) -> list[int]:
    return [int(r["step"]) for r in rows if r.get("train/loss")]


def test_rows_logged_past_the_checkpoint_are_not_repeated_after_resume(toy_root: Path, tmp_path: Path) -> None:
    # stopped at the end of step 8, before its checkpoint: last.ckpt is step 6, metrics.csv already has step 6's row
    with pytest.raises(InterruptedError):
        train(load_config(STAGE1, _overrides(toy_root, tmp_path, "cut")), extra_callbacks=[StopAtStep(8)])
    metrics = tmp_path / "cut" / "metrics.csv"
    assert _train_steps(_rows(metrics)) == list(range(7))
    train(load_config(STAGE1, [*_overrides(toy_root, tmp_path, "cut"), "trainer.resume=true"]))
    rows = _rows(metrics)
    assert _train_steps(rows) == list(range(2 * BATCHES_PER_EPOCH))  # step 6 once
    assert [int(r["step"]) for r in rows if r.get("val/t2v_r1")] == [BATCHES_PER_EPOCH - 1, 2 * BATCHES_PER_EPOCH - 1]


def test_drop_replayed_rows_keeps_the_last_row_per_epoch_step_and_columns(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,train/loss,val/cider\n0,0,3.0,\n0,1,2.5,\n0,1,,0.1\n0,1,2.4,\n1,2,2.0,\n",
                    encoding="utf-8")
    assert drop_replayed_rows(path) == 1
    assert path.read_text(encoding="utf-8") == "epoch,step,train/loss,val/cider\n0,0,3.0,\n0,1,,0.1\n0,1,2.4,\n1,2,2.0,\n"
    assert drop_replayed_rows(path) == 0
    assert drop_replayed_rows(tmp_path / "none.csv") == 0
