"""``moviead describe``: a film's features and subtitles → AD cues in the dialogue-free gaps, as WebVTT, SRT, JSONL."""

from __future__ import annotations

import json
from pathlib import Path

from moviead.cli import main
from tests._film import write_film

SUBTITLES = [(3.0, 5.5, "Where were you?"), (6.0, 8.0, "Out."), (20.0, 24.0, "You missed the train."),
             (24.5, 26.0, "I know."), (47.0, 50.0, "Come in.")]


def _film(tmp_path: Path, dim: int, seconds: float = 60.0, fps: float = 5.0) -> tuple[Path, Path]:
    return write_film(tmp_path, dim, SUBTITLES, seconds, fps)


def test_every_cue_lies_in_a_dialogue_free_gap(stage2_checkpoint: Path, tmp_path: Path, capsys) -> None:
    import webvtt

    from moviead.recipes.checkpoint import load_captioner_checkpoint

    _, cfg = load_captioner_checkpoint(stage2_checkpoint)
    features, srt = _film(tmp_path, int(cfg.data.feature_dim))
    out = tmp_path / "track"
    code = main(["describe", "--features", str(features), "--movie", "myfilm", "--subtitles", str(srt),
                 "--checkpoint", str(stage2_checkpoint), "--out", str(out), "--min-gap", "3", "--max-cue", "6",
                 "--no-progress"])
    assert code == 0
    assert "AD cues for myfilm" in capsys.readouterr().out
    track = [json.loads(line) for line in (out / "myfilm.ad.jsonl").read_text().splitlines()]
    # gaps with 0.2 s margins: [0, 2.8] too short, [8.2, 19.8] → 2 cues, [26.2, 46.8] → 4 cues, [50.2, 60] → 2 cues
    assert len(track) == 8
    for cue in track:
        assert cue["end"] - cue["start"] <= 6.0 + 1e-6
        assert all(cue["end"] <= s or cue["start"] >= e for s, e, _ in SUBTITLES), cue
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(8))
    assert rows[1]["context"] and rows[1]["context"][-1]["ad"] == rows[0]["pred"]  # recurrent: its own AD before
    spoken = [c for c in track if c["text"].strip()]
    assert len(webvtt.read(str(out / "myfilm.vtt"))) == len(spoken)
    assert (out / "myfilm.srt").read_text(encoding="utf-8").count(" --> ") == len(spoken)


def test_without_subtitles_the_timeline_is_cut_into_windows(stage2_checkpoint: Path, tmp_path: Path) -> None:
    from moviead.recipes.checkpoint import load_captioner_checkpoint

    _, cfg = load_captioner_checkpoint(stage2_checkpoint)
    features, _ = _film(tmp_path, int(cfg.data.feature_dim), seconds=30.0)
    out = tmp_path / "track"
    assert main(["describe", "--features", str(features), "--movie", "myfilm", "--checkpoint",
                 str(stage2_checkpoint), "--out", str(out), "--window", "10", "--no-progress"]) == 0
    track = [json.loads(line) for line in (out / "myfilm.ad.jsonl").read_text().splitlines()]
    assert [(c["start"], c["end"]) for c in track] == [(0.0, 10.0), (10.0, 20.0), (20.0, 30.0)]


def test_unknown_movie_is_a_clear_error(stage2_checkpoint: Path, tmp_path: Path, capsys) -> None:
    from moviead.recipes.checkpoint import load_captioner_checkpoint

    _, cfg = load_captioner_checkpoint(stage2_checkpoint)
    features, _ = _film(tmp_path, int(cfg.data.feature_dim), seconds=10.0)
    assert main(["describe", "--features", str(features), "--movie", "other", "--checkpoint",
                 str(stage2_checkpoint), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "myfilm" in capsys.readouterr().err


def test_every_ad_fits_its_word_budget_and_the_summary_reports_the_rate(stage2_checkpoint: Path, tmp_path: Path,
                                                                        capsys) -> None:
    from moviead.evaluation.budget import repeated_ngrams, word_budget, word_count
    from moviead.recipes.checkpoint import load_captioner_checkpoint

    _, cfg = load_captioner_checkpoint(stage2_checkpoint)
    features, srt = _film(tmp_path, int(cfg.data.feature_dim))
    out = tmp_path / "track"
    assert main(["describe", "--features", str(features), "--movie", "myfilm", "--subtitles", str(srt),
                 "--checkpoint", str(stage2_checkpoint), "--out", str(out), "--min-gap", "3", "--max-cue", "6",
                 "--words-per-second", "1.0", "--beams", "3", "--no-progress", "--html"]) == 0
    printed = capsys.readouterr().out
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    for row in rows:
        assert row["budget"] == word_budget(row["end"] - row["start"], 1.0)
        assert word_count(row["pred"]) <= row["budget"], row
    assert sum(word_count(row["pred"]) > 0 for row in rows) >= len(rows) // 2  # untrained: some rows are symbols only
    assert "myfilm: 8 cues, 0.0 % over the rate (0, by word count), mean " in printed
    assert f"{sum(repeated_ngrams(r['pred']) for r in rows)} repeated 3-gram(s)" in printed
    assert (out / "myfilm.preview.html").is_file()
    run = json.loads((out / "run.json").read_text())
    assert run["words_per_second"] == 1.0 and run["no_repeat_ngram"] == 3


def test_audio_speaks_the_track_and_measured_speech_decides_the_rate(stage2_checkpoint: Path, tmp_path: Path) -> None:
    from moviead.evaluation.describe import DescribeRequest, describe
    from moviead.recipes.checkpoint import load_captioner_checkpoint
    from tests.speech._speech_audio import tone_synthesiser

    _, cfg = load_captioner_checkpoint(stage2_checkpoint)
    features, srt = _film(tmp_path, int(cfg.data.feature_dim))
    request = DescribeRequest(features=str(features), movie="myfilm", checkpoint=str(stage2_checkpoint),
                              out=str(tmp_path / "track"), subtitles=str(srt), min_gap=3, max_cue=6, audio=True)
    request.decode.progress = False
    result = describe(request, synthesiser=tone_synthesiser)
    assert (tmp_path / "track" / "myfilm.ad.wav").is_file()
    speech, figures = result["speech"], result["figures"]
    assert figures.measured and figures.cues == 8
    base = 60 * request.words_per_second
    expected = sum(p.rate_wpm > base + 1e-6 or p.cut_s > 0 for p in speech.track.placed)
    assert figures.over_rate == expected
    # the tone lasts words / rate: within its word budget each AD fits at the base rate (plus 0.2 s of pauses)
    assert figures.over_rate <= sum(p.natural_s > p.cue.end - p.cue.start - 1e-6 for p in speech.track.placed)


def test_evaluate_metrics_report_the_pace_of_its_ads(stage2_checkpoint: Path, tmp_path: Path) -> None:
    from moviead.evaluation.budget import rate_figures

    assert main(["evaluate", "--checkpoint", str(stage2_checkpoint.parent.parent), "--mode", "local", "--split",
                 "train", "--limit-movies", "1", "--out", str(tmp_path), "--bertscore-model", "none",
                 "--caption-metrics", "cider", "--no-progress"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "train-local" / "predictions.jsonl").read_text().splitlines()]
    metrics = json.loads((tmp_path / "train-local" / "metrics.json").read_text())
    expected = rate_figures(rows, 2.7)
    assert metrics["over_rate_share"] == expected.over_rate_share
    assert metrics["mean_words_per_second"] == expected.mean_words_per_second > 0
