"""The predictions file: resume after the last complete row, refuse other settings and duplicates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moviead.evaluation.predictions import PredictionStore, ResumeMismatchError


def _row(movie: str, index: int, pred: str = "He waits.") -> dict:
    return {"movie": movie, "index": index, "start": float(index), "end": index + 2.5, "gt": "x", "pred": pred,
            "context": []}


def test_rows_survive_a_reopen_and_a_cut_last_line_is_dropped(tmp_path: Path) -> None:
    settings = {"mode": "recurrent", "num_beams": 1}
    store = PredictionStore(tmp_path, settings)
    store.append([_row("m1", 0), _row("m1", 1)])
    with open(store.path, "a", encoding="utf-8") as handle:  # a kill in the middle of writing row 3
        handle.write(json.dumps(_row("m1", 2))[:25])
    with pytest.warns(UserWarning, match="incomplete last line"):
        again = PredictionStore(tmp_path, settings)
    assert again.done == {("m1", 0), ("m1", 1)}
    assert store.path.read_text(encoding="utf-8").count("\n") == 2 and store.path.read_text().endswith("\n")
    again.append([_row("m1", 2)])
    rows = [json.loads(line) for line in store.path.read_text(encoding="utf-8").splitlines()]
    assert [(r["movie"], r["index"]) for r in rows] == [("m1", 0), ("m1", 1), ("m1", 2)]


def test_duplicates_and_incomplete_rows_are_refused(tmp_path: Path) -> None:
    store = PredictionStore(tmp_path, {"mode": "oracle"})
    store.append([_row("m1", 0)])
    written = store.path.stat().st_mtime_ns
    assert PredictionStore(tmp_path, {"mode": "oracle"}).done == {("m1", 0)}
    assert store.path.stat().st_mtime_ns == written  # a complete file is read, not rewritten
    with pytest.raises(ValueError, match="already in"):
        store.append([_row("m1", 0, "Another.")])
    with pytest.raises(ValueError, match="without"):
        store.append([{"movie": "m1", "index": 4}])


def test_other_settings_are_refused_unless_restarting(tmp_path: Path) -> None:
    PredictionStore(tmp_path, {"mode": "oracle", "num_beams": 1}).append([_row("m1", 0)])
    with pytest.raises(ResumeMismatchError, match="num_beams"):
        PredictionStore(tmp_path, {"mode": "oracle", "num_beams": 5})
    fresh = PredictionStore(tmp_path, {"mode": "oracle", "num_beams": 5}, restart=True)
    assert fresh.rows == [] and not fresh.done
