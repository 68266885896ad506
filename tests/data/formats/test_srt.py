"""Reading a practitioner's subtitle files: SRT and WebVTT."""

from __future__ import annotations

from pathlib import Path

import pytest

from moviead.data.errors import DataFormatError
from moviead.data.formats.srt import read_subtitle_file

SRT = """1
00:00:01,500 --> 00:00:03,000
<i>Where were you?</i>

2
00:01:02,250 --> 00:01:04,000
At the station.
All night.

"""

VTT = """WEBVTT

NOTE written by hand

intro
00:05.000 --> 00:07.500 align:start
Hello there.

01:00:00.000 --> 01:00:02.000
Bye.
"""


def test_srt(tmp_path: Path) -> None:
    path = tmp_path / "film.srt"
    path.write_text(SRT.replace("\n", "\r\n"), encoding="utf-8")
    subs = read_subtitle_file(path, "film")
    assert [(s.start, s.end, s.text) for s in subs] == [
        (1.5, 3.0, "Where were you?"), (62.25, 64.0, "At the station. All night.")]
    assert subs[0].movie == "film"


def test_vtt(tmp_path: Path) -> None:
    path = tmp_path / "film.vtt"
    path.write_text(VTT, encoding="utf-8")
    subs = read_subtitle_file(path, "film")
    assert [(s.start, s.end, s.text) for s in subs] == [(5.0, 7.5, "Hello there."), (3600.0, 3602.0, "Bye.")]


def test_not_a_subtitle_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.srt"
    path.write_text("just some text\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="no subtitle cue"):
        read_subtitle_file(path, "film")
