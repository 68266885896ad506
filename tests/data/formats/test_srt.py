"""Reading a practitioner's subtitle files: SRT and WebVTT."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from moviead.data.errors import DataFormatError
from moviead.data.formats.srt import fit_subtitles_to_film, read_subtitle_file
from moviead.data.records import SubtitleRecord

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


# --- deviations real files have: read, repaired and counted in one warning --------------------------------------


def _read(tmp_path: Path, name: str, data: bytes, caplog) -> list[tuple[float, float, str]]:
    path = tmp_path / name
    path.write_bytes(data)
    with caplog.at_level(logging.WARNING, logger="moviead.data.formats.srt"):
        return [(s.start, s.end, s.text) for s in read_subtitle_file(path, "film")]


def test_timings_without_milliseconds_are_read_as_000_and_counted(tmp_path: Path, caplog) -> None:
    text = "1\n00:01:02 --> 00:01:04\nFirst.\n\n2\n00:01:05 --> 00:01:06,500\nSecond.\n\n" \
           "3\n00:01:07,000 --> 00:01:08,000\nThird.\n"
    subs = _read(tmp_path, "film.srt", text.encode(), caplog)
    assert subs == [(62.0, 64.0, "First."), (65.0, 66.5, "Second."), (67.0, 68.0, "Third.")]
    assert f"subtitles {tmp_path / 'film.srt'}: 2 cue(s) had timings without milliseconds (read as .000) " \
        "(lines 2, 6)" in caplog.text


def test_dot_in_srt_and_comma_in_vtt_are_read_and_counted(tmp_path: Path, caplog) -> None:
    srt = _read(tmp_path, "a.srt", b"1\n00:00:01.250 --> 00:00:02.000\nDot.\n", caplog)
    vtt = _read(tmp_path, "b.vtt", b"WEBVTT\n\n00:00:03,500 --> 00:00:04,000\nComma.\n", caplog)
    assert srt == [(1.25, 2.0, "Dot.")] and vtt == [(3.5, 4.0, "Comma.")]
    assert "1 cue(s) had '.' before the milliseconds (read as usual) (line 2)" in caplog.text
    assert "1 cue(s) had ',' before the milliseconds (read as usual) (line 3)" in caplog.text


def test_cues_without_blank_lines_between_them_are_split_and_counted(tmp_path: Path, caplog) -> None:
    text = "1\n00:00:01,000 --> 00:00:02,000\nOne.\n2\n00:00:03,000 --> 00:00:04,000\nTwo.\n" \
           "00:00:05,000 --> 00:00:06,000\nThree.\n"
    subs = _read(tmp_path, "film.srt", text.encode(), caplog)
    assert subs == [(1.0, 2.0, "One."), (3.0, 4.0, "Two."), (5.0, 6.0, "Three.")]
    assert "2 cue(s) not separated from the next cue by a blank line (lines 2, 5)" in caplog.text


def test_bom_and_crlf_are_read_without_a_warning(tmp_path: Path, caplog) -> None:
    data = "\ufeff1\r\n00:00:01,000 --> 00:00:02,000\r\nÉté.\r\n\r\n".encode("utf-8")
    assert _read(tmp_path, "film.srt", data, caplog) == [(1.0, 2.0, "Été.")]
    assert caplog.text == ""


def test_end_before_start_is_skipped_and_counted_with_its_line(tmp_path: Path, caplog) -> None:
    text = "1\n00:00:01,000 --> 00:00:02,000\nKept.\n\n2\n00:00:09,000 --> 00:00:08,000\nBackwards.\n\n" \
           "3\n00:00:10,000 --> 00:00:11,000\n\n4\n00:00:1x --> 00:00:13,000\nGarbled.\n"
    assert _read(tmp_path, "film.srt", text.encode(), caplog) == [(1.0, 2.0, "Kept.")]
    assert "1 cue(s) skipped: end before start (line 6)" in caplog.text
    assert "1 cue(s) skipped: no text (line 10)" in caplog.text
    assert "1 cue(s) skipped: unreadable timing line" in caplog.text and "(line 13)" in caplog.text


def test_text_after_a_blank_line_inside_a_cue_is_joined_and_counted(tmp_path: Path, caplog) -> None:
    text = "1\n00:00:01,000 --> 00:00:02,000\nFirst half,\n\nsecond half.\n\n2\n00:00:03,000 --> 00:00:04,000\nNext.\n"
    subs = _read(tmp_path, "film.srt", text.encode(), caplog)
    assert subs == [(1.0, 2.0, "First half, second half."), (3.0, 4.0, "Next.")]
    assert "1 cue(s) had text after a blank line (joined to the cue) (line 2)" in caplog.text


def test_a_file_whose_cues_are_all_unusable_is_an_error_naming_the_reasons(tmp_path: Path) -> None:
    path = tmp_path / "film.srt"
    path.write_text("1\n00:00:09,000 --> 00:00:08,000\nBackwards.\n", encoding="utf-8")
    with pytest.raises(DataFormatError) as err:
        read_subtitle_file(path, "film")
    assert str(err.value) == (
        f"{path}: no usable subtitle cue: 1 cue(s) skipped: end before start (line 2). "
        "Fix: fix the cues listed: a timing line `00:01:02,500 --> 00:01:04,000`, then the text"
    )


# --- subtitles against the film they are for ---------------------------------------------------------------------


def test_cues_past_the_end_of_the_film_are_clipped_or_dropped_and_counted(caplog) -> None:
    subs = [SubtitleRecord("film", 10.0, 20.0, "a"), SubtitleRecord("film", 95.0, 105.0, "b"),
            SubtitleRecord("film", 100.0, 102.0, "c"), SubtitleRecord("film", 120.0, 121.0, "d")]
    with caplog.at_level(logging.WARNING, logger="moviead.data.formats.srt"):
        kept = fit_subtitles_to_film(subs, 100.0, "film.srt")
    assert kept == [SubtitleRecord("film", 10.0, 20.0, "a"), SubtitleRecord("film", 95.0, 100.0, "b")]
    assert "subtitles film.srt: 1 cue(s) end after the film (100.000 s): clipped to its end; 2 cue(s) start after " \
        "it: dropped" in caplog.text


def test_dialogue_covering_under_5_percent_of_a_long_film_warns(caplog) -> None:
    subs = [SubtitleRecord("film", 10.0, 40.0, "a"), SubtitleRecord("film", 20.0, 50.0, "overlap counted once")]
    with caplog.at_level(logging.WARNING, logger="moviead.data.formats.srt"):
        assert fit_subtitles_to_film(subs, 1000.0, "film.srt") == subs  # 40 s of 1000 s: 4 %
    assert "the dialogue covers 4.0 % of the film (40 s of 1000 s), under 5 %" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="moviead.data.formats.srt"):
        fit_subtitles_to_film(subs, 800.0, "film.srt")  # 5 %: enough
        fit_subtitles_to_film(subs[:1], 599.0, "film.srt")  # a short film may have little dialogue
    assert caplog.text == ""
