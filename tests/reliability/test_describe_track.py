"""``moviead describe`` writes no cue without words, writes every cue time rounded to the millisecond (the same in
``.ad.jsonl``, ``.vtt`` and ``.srt``), and refuses a rerun into the same ``--out`` whose inputs changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from moviead.cli import main
from tests._film import write_film

# subtitle times with sub-millisecond parts, so the gaps' times are not whole milliseconds
SUBTITLES = [(3.00041, 5.50017, "Where were you?"), (20.00033, 24.00071, "You missed the train."),
             (47.00029, 50.00013, "Come in.")]


def _film(tmp_path: Path, dim: int, seconds: float = 60.0, fps: float = 3.0) -> tuple[Path, Path]:
    """At 3 fps frame times such as 1/3 s are not whole milliseconds."""
    return write_film(tmp_path, dim, SUBTITLES, seconds, fps)


def _args(features: Path, srt: Path, checkpoint: Path, out: Path, *extra: str) -> list[str]:
    return ["describe", "--features", str(features), "--movie", "myfilm", "--subtitles", str(srt), "--checkpoint",
            str(checkpoint), "--out", str(out), "--min-gap", "3", "--max-cue", "6.3337", "--no-progress",
            "--set", "data.fps=3", *extra]


def _ms_times(text: str, separator: str) -> list[tuple[int, int]]:
    """(start ms, end ms) of each timing line of a WebVTT (``.``) or SRT (``,``) file."""
    def ms(stamp: str) -> int:
        hms, millis = stamp.split(separator)
        h, m, s = (int(x) for x in hms.split(":"))
        return ((h * 60 + m) * 60 + s) * 1000 + int(millis)
    return [(ms(a), ms(b)) for a, b in (line.split(" --> ") for line in text.splitlines() if " --> " in line)]


@pytest.fixture()
def feature_dim(rel_checkpoint: Path) -> int:
    from moviead.recipes.checkpoint import load_captioner_checkpoint

    return int(load_captioner_checkpoint(rel_checkpoint)[1].data.feature_dim)


def test_an_empty_prediction_leaves_no_cue_and_is_counted(rel_checkpoint: Path, feature_dim: int, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from moviead.evaluation import describe as describe_module

    real = describe_module.load_captioner
    calls = {"n": 0}

    def load(*args: Any, **kwargs: Any):
        parts, cfg = real(*args, **kwargs)

        def decode(ids: Any) -> str:  # every other AD decodes to nothing (or to blanks)
            calls["n"] += 1
            return ["a door opens.", "", "she waits.", "  \n "][(calls["n"] - 1) % 4]
        parts.decode = decode
        return parts, cfg

    monkeypatch.setattr(describe_module, "load_captioner", load)
    features, srt = _film(tmp_path, feature_dim)
    out = tmp_path / "track"
    request = describe_module.DescribeRequest(features=str(features), movie="myfilm", checkpoint=str(rel_checkpoint),
                                              out=str(out), subtitles=str(srt), min_gap=3, max_cue=6.3337,
                                              config=["data.fps=3"])
    request.decode.progress = False
    report = describe_module.describe(request)
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    spoken = [p for p in predictions if p["pred"].strip()]
    assert len(predictions) == calls["n"] >= 4
    assert report["empty"] == len(predictions) - len(spoken) == calls["n"] // 2
    assert report["cues"] == report["figures"].cues == len(spoken)
    track = [json.loads(line) for line in (out / "myfilm.ad.jsonl").read_text().splitlines()]
    assert [c["text"] for c in track] == [p["pred"] for p in spoken]
    assert all(c["text"].strip() for c in track)
    vtt = (out / "myfilm.vtt").read_text(encoding="utf-8")
    srt_out = (out / "myfilm.srt").read_text(encoding="utf-8")
    assert len(_ms_times(vtt, ".")) == len(_ms_times(srt_out, ",")) == len(spoken)
    assert "\n\n\n" not in vtt and "\n\n\n" not in srt_out


def test_cue_times_are_whole_milliseconds_and_match_the_subtitle_files(rel_checkpoint: Path, feature_dim: int,
                                                                       tmp_path: Path) -> None:
    features, srt = _film(tmp_path, feature_dim)
    out = tmp_path / "track"
    assert main(_args(features, srt, rel_checkpoint, out)) == 0
    raw = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert any(round(r["start"], 3) != r["start"] or round(r["end"], 3) != r["end"] for r in raw)  # the test bites
    lines = (out / "myfilm.ad.jsonl").read_text().splitlines()
    track = [json.loads(line) for line in lines]
    assert track
    for line, cue in zip(lines, track):
        for key in ("start", "end"):
            assert round(cue[key], 3) == cue[key], line
            assert len(repr(cue[key]).partition(".")[2]) <= 3, line
    spoken = [r for r in sorted(raw, key=lambda r: r["index"]) if r["pred"].strip()]
    assert [(c["start"], c["end"]) for c in track] == [(round(r["start"] * 1000) / 1000, round(r["end"] * 1000) / 1000)
                                                        for r in spoken]
    in_ms = [(round(c["start"] * 1000), round(c["end"] * 1000)) for c in track]
    assert _ms_times((out / "myfilm.vtt").read_text(encoding="utf-8"), ".") == in_ms
    assert _ms_times((out / "myfilm.srt").read_text(encoding="utf-8"), ",") == in_ms


def test_a_changed_subtitles_file_is_refused_and_restart_starts_over(rel_checkpoint: Path, feature_dim: int,
                                                                      tmp_path: Path, capsys) -> None:
    features, srt = _film(tmp_path, feature_dim)
    out = tmp_path / "track"
    assert main(_args(features, srt, rel_checkpoint, out)) == 0
    run = json.loads((out / "run.json").read_text())
    assert len(run["subtitles_sha256"]) == len(run["checkpoint_sha256"]) == len(run["data_sha256"]) == 64
    before = (out / "predictions.jsonl").read_bytes()
    srt.write_text(srt.read_text(encoding="utf-8").replace("Come in.", "Come on in."), encoding="utf-8")
    capsys.readouterr()
    assert main(_args(features, srt, rel_checkpoint, out)) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith(f"moviead describe: error: {out / 'predictions.jsonl'} was written by another run: "
                          "the subtitles file changed (subtitles_sha256 ")
    assert err.endswith("; use another output folder, or --restart to discard those predictions")
    assert (out / "predictions.jsonl").read_bytes() == before  # nothing lost
    assert main(_args(features, srt, rel_checkpoint, out, "--restart")) == 0
    assert json.loads((out / "run.json").read_text())["subtitles_sha256"] != run["subtitles_sha256"]
