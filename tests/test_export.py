"""WebVTT / SRT / JSONL exports: exact file text, times, ordering, escaping, and reading back with webvtt-py."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import webvtt

from moviead.export import (
    Cue,
    cues_from_rows,
    format_timestamp,
    prepare_cues,
    read_jsonl,
    srt_text,
    write_jsonl,
    write_movie_subtitles,
    write_srt,
    write_webvtt,
)

CUES = [
    Cue(3661.5, 3663.25, "Tony --> the door & <i>Margo</i>"),  # given out of order
    Cue(1.0, 2.5, "He opens the door."),
    Cue(0.0004, 0.9996, "  First line\n\n  second line  "),  # rounded to ms; the blank line would end the cue
    Cue(5.0, 6.0, "   \n "),  # no text: dropped
]


def test_timestamps() -> None:
    assert format_timestamp(0) == "00:00:00.000"
    assert format_timestamp(3_661_500) == "01:01:01.500"
    assert format_timestamp(360_000_001, ",") == "100:00:00,001"


def test_webvtt_exact_text_and_parsed_back(tmp_path: Path) -> None:
    path = write_webvtt(CUES, tmp_path / "m.vtt")
    assert path.read_text(encoding="utf-8") == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:01.000\nFirst line\nsecond line\n\n"
        "00:00:01.000 --> 00:00:02.500\nHe opens the door.\n\n"
        "01:01:01.500 --> 01:01:03.250\nTony --&gt; the door &amp; &lt;i&gt;Margo&lt;/i&gt;\n"
    )
    parsed = webvtt.read(str(path), strict=True)
    assert [(c.start, c.end) for c in parsed] == [
        ("00:00:00.000", "00:00:01.000"),
        ("00:00:01.000", "00:00:02.500"),
        ("01:01:01.500", "01:01:03.250"),
    ]
    assert parsed[0].lines == ["First line", "second line"]
    assert parsed[2].raw_text == "Tony --&gt; the door &amp; &lt;i&gt;Margo&lt;/i&gt;"  # no tag, no arrow
    assert html.unescape(parsed[2].text) == "Tony --> the door & <i>Margo</i>"


def test_srt_exact_text_and_parsed_back(tmp_path: Path) -> None:
    path = write_srt(CUES, tmp_path / "m.srt")
    assert path.read_text(encoding="utf-8") == (
        "1\n00:00:00,000 --> 00:00:01,000\nFirst line\nsecond line\n\n"
        "2\n00:00:01,000 --> 00:00:02,500\nHe opens the door.\n\n"
        "3\n01:01:01,500 --> 01:01:03,250\nTony -> the door & <i>Margo</i>\n"
    )
    parsed = webvtt.from_srt(str(path))
    assert [(c.start_in_seconds, c.end) for c in parsed] == [(0, "00:00:01.000"), (1, "00:00:02.500"),
                                                             (3661, "01:01:03.250")]
    assert parsed[2].raw_text == "Tony -> the door & <i>Margo</i>" and parsed[1].text == "He opens the door."


def test_overlaps_are_trimmed_or_kept_and_zero_length_cues_last_min_duration() -> None:
    cues = [
        Cue(10.0, 14.0, "a long one"),
        Cue(12.0, 13.0, "starts inside"),
        Cue(12.0, 12.5, "same start"),
        Cue(20.0, 20.0, "zero length"),
        Cue(20.5, 22.0, "soon after"),
        Cue(30.0, 30.0, "zero at the end"),
    ]
    assert prepare_cues(cues) == [
        Cue(10.0, 12.0, "a long one"),  # cut where the next starts
        Cue(12.0, 13.0, "same start\nstarts inside"),  # same start: merged (the first to end first), the later end
        Cue(20.0, 20.5, "zero length"),  # 1 s, cut at the next start
        Cue(20.5, 22.0, "soon after"),
        Cue(30.0, 31.0, "zero at the end"),
    ]
    kept = prepare_cues(cues, overlap="keep", min_duration=0.25)
    assert [(c.start, c.end) for c in kept] == [(10, 14), (12, 12.5), (12, 13), (20, 20.25), (20.5, 22), (30, 30.25)]
    assert srt_text([Cue(1, 1, "x")], min_duration=0.001).splitlines()[1] == "00:00:01,000 --> 00:00:01,001"


@pytest.mark.parametrize(
    ("cue", "kwargs", "match"),
    [
        (Cue(2.0, 1.0, "x"), {}, "ends before it starts"),
        (Cue(-1.0, 1.0, "x"), {}, "finite number of seconds >= 0"),
        (Cue(float("nan"), 1.0, "x"), {}, "finite number"),
        (Cue(1.0, 2.0, "x"), {"min_duration": 0.0}, "at least 1 ms"),
        (Cue(1.0, 2.0, "x"), {"overlap": "merge"}, "overlap must be"),
    ],
)
def test_bad_cues_raise(cue: Cue, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        prepare_cues([cue], **kwargs)


def test_one_vtt_and_srt_per_movie_from_rows(tmp_path: Path) -> None:
    rows = [
        {"movie": "tt0042208", "index": 1, "start": 5.0, "end": 6.0, "gt": "g", "pred": "second"},
        {"movie": "tt0042208", "index": 0, "start": 1.0, "end": 2.0, "gt": "g", "pred": "first"},
        {"movie": "a/b c", "index": 0, "start": 0.0, "end": 1.0, "gt": "g", "pred": "only"},
    ]
    written = write_movie_subtitles(cues_from_rows(rows), tmp_path / "subs")
    assert {m: [p.name for p in ps] for m, ps in written.items()} == {
        "tt0042208": ["tt0042208.vtt", "tt0042208.srt"],
        "a/b c": ["a_b_c.vtt", "a_b_c.srt"],
    }
    assert [c.text for c in webvtt.read(str(tmp_path / "subs" / "tt0042208.vtt"), strict=True)] == ["first", "second"]
    assert [c.text for c in webvtt.from_srt(str(tmp_path / "subs" / "a_b_c.srt"))] == ["only"]
    with pytest.raises(ValueError, match="same file name"):
        write_movie_subtitles({"a b": [], "a_b": []}, tmp_path / "clash")


def test_jsonl_round_trip_append_and_cut_last_line(tmp_path: Path) -> None:
    path = tmp_path / "pred.jsonl"
    rows = [{"movie": "m", "index": 0, "start": np.float32(1.5), "pred": "Zoë — ok", "ctx": torch.tensor([1, 2])}]
    assert write_jsonl(rows, path) == 1
    assert write_jsonl([{"movie": "m", "index": 1, "start": 2.0}], path, append=True) == 1
    assert read_jsonl(path) == [
        {"movie": "m", "index": 0, "start": 1.5, "pred": "Zoë — ok", "ctx": [1, 2]},
        {"movie": "m", "index": 1, "start": 2.0},
    ]
    assert path.read_text(encoding="utf-8").splitlines()[0].startswith('{"movie": "m", "index": 0, "start": 1.5')
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"movie": "m", "ind')  # an interrupted write
    with pytest.warns(UserWarning, match="incomplete last line"):
        assert [r["index"] for r in read_jsonl(path)] == [0, 1]
    path.write_text('{"a": 1}\nnot json\n{"a": 2}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=":2: not valid JSON"):
        read_jsonl(path)
    with pytest.raises(TypeError, match="not JSON serialisable"):
        write_jsonl([{"x": object()}], tmp_path / "bad.jsonl")
    assert json.loads((tmp_path / "bad.jsonl").read_text() or "null") is None  # nothing half-written
