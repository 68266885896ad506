"""Recurrent decoding stopped between two batches (and with a half-written last row) resumes losing and duplicating
nothing, with the unbroken run's predictions. In-process and fast; the slow test in ``test_evaluate.py`` SIGKILLs a
``moviead evaluate`` process instead."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

import moviead.evaluation.predictions as predictions
from moviead.config import ContextMode
from moviead.data.sources import load_split
from moviead.evaluation.decode import DecodeSettings, decode_split
from moviead.recipes.checkpoint import load_captioner_checkpoint


class Stopped(Exception):
    """Raised by the patched store once enough rows are on disk: the run stops there as if killed."""


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_recurrent_decoding_stopped_and_resumed_loses_and_duplicates_nothing(
    stage2_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a proposal of top_k (3) items: the DSM keeps them all, so the untrained sampler's near-tied scores, which the
    # batches' other make-up after the resume could round either way, select nothing (test_evaluate.py says more)
    parts, cfg = load_captioner_checkpoint(stage2_checkpoint, ["captioning.context_size=3"])
    assert cfg.captioning.context_size == cfg.captioning.dsm.top_k
    data = load_split(cfg.data, "train")
    keep = list(data.movies)[:3]  # the first 5 ADs of 3 movies, 2 movies side by side
    data = replace(data, movies={m: data.movies[m] for m in keep},
                   items=[i for i in data.items if i.record.movie in keep and i.record.index < 5])
    settings = DecodeSettings(mode=ContextMode.recurrent, batch_movies=2, progress=False)
    stored = tmp_path / "stopped" / "predictions.jsonl"
    append = predictions.PredictionStore.append

    def append_then_stop(self: predictions.PredictionStore, rows) -> None:
        append(self, rows)
        if stored.read_text(encoding="utf-8").count("\n") >= 6:
            raise Stopped

    monkeypatch.setattr(predictions.PredictionStore, "append", append_then_stop)
    with pytest.raises(Stopped):
        decode_split(parts, cfg, data, stored.parent, settings, {"test": 1})
    monkeypatch.undo()
    partial = stored.read_text(encoding="utf-8").count("\n")
    assert 6 <= partial < len(data.items)
    with stored.open("a", encoding="utf-8") as handle:  # and as if the stop had cut a row in half
        handle.write('{"movie": "cut in ha')

    with pytest.warns(UserWarning, match="incomplete last line"):
        decode_split(parts, cfg, data, stored.parent, settings, {"test": 1})
    decode_split(parts, cfg, data, tmp_path / "whole", settings, {"test": 1})
    resumed, whole = _rows(stored), _rows(tmp_path / "whole" / "predictions.jsonl")
    keys = [(r["movie"], r["index"]) for r in resumed]
    assert len(keys) == len(set(keys)) == len(whole) == len(data.items)  # 0 lost, 0 duplicated
    by_key = {(r["movie"], r["index"]): r for r in whole}
    for key, row in zip(keys, resumed):  # the unbroken run's predictions, from the same (own) context
        assert row["pred"] == by_key[key]["pred"] and row["context"] == by_key[key]["context"], key
