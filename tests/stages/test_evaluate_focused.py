"""``moviead evaluate`` on a FocusedAD (Storyboard-v2) checkpoint: oracle and recurrent decoding of the held-out
movies, with the recurrent context built from the model's own earlier predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moviead.cli import main
from moviead.data.sources import load_split
from tests.focused._focused_setup import focused_cfg
from tests.stages._stage2 import write_untrained_stage2_checkpoint

# the tests that start METEOR's java (about 10 s) share one worker under `--dist loadgroup` (make test): one start
pytestmark = pytest.mark.xdist_group("meteor")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_evaluate_focused_checkpoint_oracle_and_recurrent(toy_root: Path, tmp_path: Path, capsys) -> None:
    cfg = focused_cfg(toy_root, tmp_path / "runs", "captioning.generation.max_new_tokens=8",
                     "captioning.generation.num_beams=1")
    run = tmp_path / "runs" / "focused"
    write_untrained_stage2_checkpoint(cfg, run / "checkpoints" / "last.ckpt")
    out = tmp_path / "eval"
    code = main(["evaluate", "--checkpoint", str(run), "--mode", "oracle,recurrent", "--split", "val",
                 "--bertscore-model", "none", "--no-progress", "--limit-movies", "2",
                 "--out", str(out)])
    assert code == 0
    data = load_split(cfg.data, "val")
    movies = list(data.movies)[:2]
    expected = {(i.record.movie, i.record.index) for i in data.items if i.record.movie in movies}
    assert len(expected) >= 4
    context_size = int(cfg.captioning.context_size)
    for mode in ("oracle", "recurrent"):
        rows = _rows(out / f"val-{mode}" / "predictions.jsonl")
        assert {(r["movie"], r["index"]) for r in rows} == expected
        assert all(isinstance(r["names"], list) for r in rows)  # the instruction's recognised names
        metrics = json.loads((out / f"val-{mode}" / "metrics.json").read_text(encoding="utf-8"))
        assert metrics["mode"] == mode and metrics["num_ads"] == len(expected)
        assert {"name_acc_seen", "name_acc_unseen", "name_mentions_seen"} <= set(metrics)  # FocusedAD item 5
        assert metrics["name_mentions_seen"] + metrics["name_mentions_unseen"] > 0
        if mode == "oracle":  # the ground-truth previous ADs
            gt = {(r["movie"], r["index"]): r["gt"] for r in rows}
            for r in rows:
                ads = [c["ad"] for c in r["context"] if c["ad"] is not None]
                first = max(0, r["index"] - context_size)
                assert ads == [gt[(r["movie"], i)] for i in range(first, r["index"])], (r["movie"], r["index"])
    rows = _rows(out / "val-recurrent" / "predictions.jsonl")
    pred = {(r["movie"], r["index"]): r["pred"] for r in rows}
    for r in rows:
        ads = [c["ad"] for c in r["context"] if c["ad"] is not None]
        first = max(0, r["index"] - context_size)
        assert ads == [pred[(r["movie"], i)] for i in range(first, r["index"])], (r["movie"], r["index"])
    assert any(r["index"] >= 2 for r in rows)  # some rows do have earlier predictions as context
    assert "recurrent" in capsys.readouterr().out
