"""Scoring a predictions file: the same numbers as the metric functions called directly, and the printed table."""

from __future__ import annotations

import pytest

from moviead.evaluation.scoring import ScoringOptions, format_table, score_predictions
from moviead.metrics.captioning import caption_scores

ROWS = [  # out of order on purpose: scoring sorts by movie (first appearance) then index
    {"movie": "m1", "index": 1, "gt": "Ann opens the red door.", "pred": "Ann opens the door."},
    {"movie": "m1", "index": 0, "gt": "Ann walks to the door.", "pred": "Ann walks in the hall."},
    {"movie": "m2", "index": 0, "gt": "Bob drives a car at night.", "pred": "A car drives at night."},
    {"movie": "m2", "index": 1, "gt": "Bob parks the car.", "pred": "Bob parks the car."},
]


def test_scores_equal_the_direct_calls_and_repetition_by_hand() -> None:
    options = ScoringOptions(caption_metrics=("bleu", "rouge", "cider"), bertscore_model=None, redundancy_model=None)
    report = score_predictions(ROWS, options)
    ordered = [ROWS[1], ROWS[0], ROWS[2], ROWS[3]]
    references = {i: [r["gt"]] for i, r in enumerate(ordered)}
    direct = caption_scores(references, {i: r["pred"] for i, r in enumerate(ordered)}, ("bleu", "rouge", "cider"))
    assert {k: report.scores[k] for k in direct} == direct
    # m1: "ann opens door" vs previous "ann walks hall" → 1/3; m2: "bob parks car" vs "car drives night" → 1/3
    assert report.scores["repetition"] == pytest.approx(1 / 3)
    assert "bertscore_f1" not in report.scores and not report.unavailable


def test_a_missing_bertscore_model_is_reported_not_raised(tmp_path) -> None:
    options = ScoringOptions(caption_metrics=(), bertscore_model=str(tmp_path / "roberta-large"), redundancy_model=None)
    report = score_predictions(ROWS, options)
    assert set(report.unavailable) == {"bertscore_f1", "r@1/16", "r@5/16"}
    assert "not available locally" in report.unavailable["bertscore_f1"]


def test_table_has_a_column_per_run_and_scales_scores() -> None:
    table = format_table({"local": {"cider": 0.5, "name_acc": 0.25}, "oracle": {"cider": 1.25}})
    lines = table.splitlines()
    assert lines[0].split() == ["metric", "local", "oracle"]
    assert lines[2].split() == ["cider", "50.00", "125.00"] and lines[3].split() == ["name_acc", "25.00", "-"]


def test_models_load_once_for_several_runs(monkeypatch) -> None:
    import torch

    import moviead.metrics.bertscore as bertscore
    from moviead.evaluation.scoring import ScoringModels

    loads = []

    class FakeBertScore:  # F1 = 1 when the texts are equal, else 0.5
        def __init__(self, *args, **kwargs) -> None:
            loads.append(args)

        def score(self, candidates, references):
            f = torch.tensor([1.0 if c == r else 0.5 for c, r in zip(candidates, references)])
            return f, f, f

        def f1(self, candidates, references):
            return self.score(candidates, references)[2]

    monkeypatch.setattr(bertscore, "BertScore", FakeBertScore)
    options = ScoringOptions(caption_metrics=(), bertscore_model="roberta-large", redundancy_model=None,
                             recall_window=2, recall_ks=(1, 2))
    models = ScoringModels(options)
    first = score_predictions(ROWS, options, models)
    second = score_predictions(ROWS[:2], options, models)
    assert len(loads) == 1
    assert first.scores["bertscore_f1"] == pytest.approx((0.5 + 0.5 + 0.5 + 1.0) / 4)
    assert second.scores["bertscore_f1"] == pytest.approx(0.5)
