"""Stage-II validation text metrics under DDP: ``val/cider`` and the extra metrics are computed on every rank's
decoded samples together, not on rank 0's share."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch.distributed as dist

from moviead.metrics.caption_metric import CaptionMetrics
from moviead.metrics.captioning import caption_scores
from moviead.stages.captioning import validation_text_metrics
from tests._dist import free_port, run_ranks

WORLD = 2
GTS = ["Tamsin opens the map in the attic.", "Arlo drops the clock in the garden.", "Someone hides the letter.",
       "Tamsin runs to the door.", "Arlo reads the letter by the window."]
PREDS = ["Tamsin opens the map.", "Arlo drops a clock in the garden.", "Someone hides a letter.",
         "Arlo runs to the door.", "Arlo reads the letter."]


def _first_word_accuracy(refs: list[str], preds: list[str]) -> dict[str, float]:
    """A stand-in for the toy name accuracy: the share of predictions starting with the reference's first word."""
    return {"first_word": sum(r.split()[0] == p.split()[0] for r, p in zip(refs, preds)) / len(refs)}


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        rows = slice(0, 2) if rank == 0 else slice(2, len(GTS))  # unequal shares
        metric = CaptionMetrics(metrics=("cider",))
        metric.update(GTS[rows], PREDS[rows])
        got = validation_text_metrics(metric, _first_word_accuracy)
        (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(got))
    finally:
        dist.destroy_process_group()


@pytest.mark.integration  # two gloo processes and the java tokenizer, a few seconds
def test_validation_cider_under_ddp_equals_single_process(tmp_path: Path) -> None:
    run_ranks(_worker, WORLD, free_port(), str(tmp_path))
    refs = {i: [gt] for i, gt in enumerate(GTS)}
    preds = dict(enumerate(PREDS))
    expected = {"cider": caption_scores(refs, preds, metrics=("cider",))["cider"], "first_word": 0.8}
    rank0 = caption_scores({i: refs[i] for i in range(2)}, {i: preds[i] for i in range(2)}, metrics=("cider",))
    assert abs(rank0["cider"] - expected["cider"]) > 0.01 * expected["cider"]  # rank 0 alone would differ
    single = CaptionMetrics(metrics=("cider",))
    single.update(GTS, PREDS)
    assert validation_text_metrics(single, _first_word_accuracy) == pytest.approx(expected, rel=1e-9)
    for rank in range(WORLD):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got == pytest.approx(expected, rel=1e-9)


def test_validation_text_metrics_of_one_sample_have_no_cider() -> None:
    metric = CaptionMetrics(metrics=("cider",))
    assert validation_text_metrics(metric) == {}
    metric.update(GTS[:1], PREDS[:1])
    assert validation_text_metrics(metric, _first_word_accuracy) == {"first_word": 1.0}
