"""``moviead evaluate``: the three modes, batched recurrent decoding equal to one movie at a time, exports, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from moviead.cli import main
from moviead.config import ContextMode
from moviead.data.sources import load_split
from moviead.evaluation.decode import DecodeSettings, decode_split
from moviead.recipes.checkpoint import load_captioner_checkpoint

REPO = Path(__file__).resolve().parents[2]
# the tests that start METEOR's java (about 10 s) share one worker under `--dist loadgroup` (make test): one start
pytestmark = pytest.mark.xdist_group("meteor")


def _first_ads(data, per_movie: int, movies: int):
    """The first ``per_movie`` ADs of the first ``movies`` movies (recurrent context needs every earlier AD)."""
    keep = list(data.movies)[:movies]
    items = [i for i in data.items if i.record.movie in keep and i.record.index < per_movie]
    return replace(data, movies={m: data.movies[m] for m in keep}, items=items)


def test_batched_recurrent_decoding_equals_one_movie_at_a_time(stage2_checkpoint: Path, tmp_path: Path) -> None:
    """B = 3 movies in flight gives, token for token, what one movie at a time gives. The proposal holds top_k (3)
    items, so the DSM keeps every item: the untrained sampler's scores of 4+ items are near ties, which float
    rounding that differs with the batch's shape may break either way (seen on one machine: another selection, and
    from there other tokens), and this test is about the recurrent schedule, not about those ties."""
    parts, cfg = load_captioner_checkpoint(stage2_checkpoint, ["captioning.context_size=3"])
    assert cfg.captioning.context_size == cfg.captioning.dsm.top_k == 3
    data = _first_ads(load_split(cfg.data, "train"), per_movie=5, movies=3)  # the fixture trains on 3 movies
    decode = parts.decode
    rows, tokens = {}, {}
    for b in (1, 3):
        generated: list[tuple[int, ...]] = []
        parts.decode = lambda ids: generated.append(tuple(ids)) or decode(ids)  # record the token ids of each row
        settings = DecodeSettings(mode=ContextMode.recurrent, batch_movies=b, progress=False)
        result = decode_split(parts, cfg, data, tmp_path / f"b{b}", settings, {"test": 1})
        assert result.decoded == len(data.items) == len(generated) == 15
        rows[b] = {(r["movie"], r["index"]): r for r in result.rows}
        tokens[b] = {(r["movie"], r["index"]): ids for r, ids in zip(result.rows, generated)}
    assert rows[1].keys() == rows[3].keys()
    assert tokens[3] == tokens[1]  # token for token
    for key in rows[1]:
        assert rows[3][key]["pred"] == rows[1][key]["pred"], key
        assert rows[3][key]["context"] == rows[1][key]["context"], key
    # the context of AD i is built from the model's own earlier predictions, not the ground truth
    movie = next(iter(data.movies))
    later = [c["ad"] for c in rows[3][(movie, 3)]["context"] if c["ad"] is not None]
    earlier = [rows[1][(movie, i)]["pred"] for i in range(3)]
    gt = [item.record.text for item in data.items if item.record.movie == movie][:3]
    assert later and all(ad in earlier for ad in later)  # the DSM's selection of the model's own ADs 0-2 ...
    assert [ad for ad in earlier if ad in later] == later  # ... in time order
    assert not set(later) & (set(gt) - set(earlier))  # never the ground truth


@pytest.mark.parametrize("beams", [1, 2])
def test_longest_first_recurrent_schedule_gives_the_fifo_predictions(stage2_checkpoint: Path, tmp_path: Path,
                                                                     beams: int) -> None:
    """Movies of unequal length: the default schedule (the movies with the most ADs left take the slots) decodes in
    another order and fewer batches than the first-in-first-out refill, and every AD gets the same tokens."""
    parts, cfg = load_captioner_checkpoint(stage2_checkpoint, ["captioning.context_size=3"])  # no near-tied selection
    data = load_split(cfg.data, "train")
    lengths = dict(zip(list(data.movies)[:3], (2, 2, 5)))
    data = replace(data, movies={m: data.movies[m] for m in lengths},
                   items=[i for i in data.items if i.record.index < lengths.get(i.record.movie, 0)])
    decode, collate = parts.decode, parts.collator
    rows, tokens, order, batches = {}, {}, {}, {}
    for policy in ("fifo", "longest_first"):
        generated: list[tuple[int, ...]] = []
        collated: list[int] = []
        parts.decode = lambda ids, seen=generated: seen.append(tuple(ids)) or decode(ids)
        parts.collator = lambda examples, seen=collated: seen.append(len(examples)) or collate(examples)
        settings = DecodeSettings(mode=ContextMode.recurrent, batch_movies=2, num_beams=beams, progress=False,
                                  schedule=policy)
        result = decode_split(parts, cfg, data, tmp_path / policy, settings, {"test": 1})
        assert result.decoded == len(generated) == 9
        batches[policy] = collated
        order[policy] = [(r["movie"], r["index"]) for r in result.rows]
        rows[policy] = {key: r for key, r in zip(order[policy], result.rows)}
        tokens[policy] = dict(zip(order[policy], generated))
    assert batches == {"fifo": [2, 2, 1, 1, 1, 1, 1], "longest_first": [2, 2, 2, 2, 1]}  # the schedules differ ...
    assert tokens["longest_first"] == tokens["fifo"]  # ... the tokens do not
    for key, row in rows["fifo"].items():
        assert rows["longest_first"][key]["pred"] == row["pred"], key
        assert rows["longest_first"][key]["context"] == row["context"], key


def test_evaluate_three_modes_metrics_table_and_exports(stage2_checkpoint: Path, tmp_path: Path, capsys) -> None:
    import webvtt

    code = main(["evaluate", "--checkpoint", str(stage2_checkpoint.parent.parent), "--mode", "local,oracle,recurrent",
                 "--split", "train", "--limit-movies", "2", "--out", str(tmp_path), "--export", "vtt,srt",
                 "--bertscore-model", "none", "--no-progress", "--data", "captioning.context_size=2"])
    assert code == 0
    out = capsys.readouterr().out
    assert "local" in out and "oracle" in out and "recurrent" in out and "cider" in out and "name_acc" in out
    for mode in ("local", "oracle", "recurrent"):
        folder = tmp_path / f"train-{mode}"
        rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["mode"] == mode and metrics["num_ads"] == len(rows) > 0
        assert {"bleu1", "bleu4", "meteor", "rouge_l", "cider"} <= set(metrics)
        if mode == "local":
            assert all(r["context"] == [] for r in rows)
        else:
            assert any(r["context"] for r in rows)
        vtts = sorted((folder / "subtitles").glob("*.vtt"))
        assert len(vtts) == 2 and len(list((folder / "subtitles").glob("*.srt"))) == 2
        captions = webvtt.read(str(vtts[0]))
        movie_rows = [r for r in rows if r["movie"] == vtts[0].stem and r["pred"].strip()]  # empty ones get no cue
        assert len(captions) == len(movie_rows)
        h, m, sec = captions[0].start.split(":")
        assert int(h) * 3600 + int(m) * 60 + float(sec) == pytest.approx(movie_rows[0]["start"], abs=1e-3)


def test_a_rerun_with_other_settings_is_refused(stage2_checkpoint: Path, tmp_path: Path, capsys) -> None:
    args = ["evaluate", "--checkpoint", str(stage2_checkpoint), "--mode", "oracle", "--split", "train",
            "--limit-movies", "1", "--out", str(tmp_path), "--bertscore-model", "none", "--no-progress"]
    assert main(args) == 0
    assert main([*args, "--beams", "2"]) == 2
    assert "--restart" in capsys.readouterr().err


def test_caption_metrics_limits_the_pycocoevalcap_scores(stage2_checkpoint: Path, tmp_path: Path, capsys) -> None:
    """``--caption-metrics cider`` computes CIDEr (equal to the full run's) and no other pycocoevalcap metric; the
    data-level ones (name accuracy) stay; an unknown name is refused with the known ones."""
    base = ["evaluate", "--checkpoint", str(stage2_checkpoint), "--mode", "oracle", "--split", "train",
            "--limit-movies", "1", "--bertscore-model", "none", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "all")]) == 0
    assert main([*base, "--out", str(tmp_path / "cider"), "--caption-metrics", "cider"]) == 0
    full = json.loads((tmp_path / "all" / "train-oracle" / "metrics.json").read_text())
    only = json.loads((tmp_path / "cider" / "train-oracle" / "metrics.json").read_text())
    assert only["cider"] == full["cider"] and "name_acc" in only
    assert not {"bleu1", "bleu4", "meteor", "rouge_l"} & set(only) and "meteor" in full
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([*base, "--out", str(tmp_path / "bad"), "--caption-metrics", "cider,blue"])
    assert exit_info.value.code == 2 and "unknown captioning metric 'blue'" in capsys.readouterr().err


RESUME_SCRIPT = """
import sys, time
import moviead.evaluation.predictions as predictions
original = predictions.PredictionStore.append
def slow_append(self, rows):
    original(self, rows)
    time.sleep(0.3)  # time for the test to kill this process between two batches (or in the middle of one)
predictions.PredictionStore.append = slow_append
from moviead.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow  # a SIGKILLed `moviead evaluate` process; the fast in-process twin: test_evaluate_resume.py
@pytest.mark.integration
def test_kill_and_resume_loses_and_duplicates_nothing(stage2_checkpoint: Path, tmp_path: Path) -> None:
    script = tmp_path / "slow_evaluate.py"
    script.write_text(RESUME_SCRIPT)
    common = ["evaluate", "--checkpoint", str(stage2_checkpoint), "--mode", "recurrent", "--split", "train",
              "--limit-movies", "3", "--batch-movies", "2", "--bertscore-model", "none", "--no-progress",
              "--data", "captioning.context_size=2"]
    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script), *common, "--out", str(killed)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    predictions = killed / "train-recurrent" / "predictions.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if predictions.exists() and predictions.read_text().count("\n") >= 6:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = predictions.read_text().count("\n")
    assert partial >= 6
    with open(predictions, "a", encoding="utf-8") as handle:  # and as if the kill had cut a row in half
        handle.write('{"movie": "cut in ha')
    assert main([*common, "--out", str(killed)]) == 0
    assert main([*common, "--out", str(tmp_path / "whole")]) == 0
    resumed = [json.loads(line) for line in predictions.read_text().splitlines()]
    whole = [json.loads(line) for line in (tmp_path / "whole" / "train-recurrent" / "predictions.jsonl").read_text()
             .splitlines()]
    keys = [(r["movie"], r["index"]) for r in resumed]
    assert len(keys) == len(set(keys)) == len(whole) > partial  # 0 lost, 0 duplicated
    by_key = {(r["movie"], r["index"]): r["pred"] for r in whole}
    assert {k: r["pred"] for k, r in zip(keys, resumed)} == by_key  # and the same predictions as an unbroken run
