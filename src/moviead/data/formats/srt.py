"""Subtitle files a practitioner has for their film: SubRip (``.srt``) and WebVTT (``.vtt``).

SRT blocks are ``index``, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, one or more text lines, a blank line. WebVTT cues have
the same shape with ``.`` before the milliseconds, optional hours, an optional identifier line and cue settings
after the end time. Tags such as ``<i>`` are removed from the text; empty cues are skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

from moviead.data.errors import DataFormatError
from moviead.data.records import SubtitleRecord
from moviead.data.text_io import read_text

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{1,3})"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}")
_TAG = re.compile(r"<[^>]*>")


def _seconds(hours: str | None, minutes: str, seconds: str, millis: str) -> float:
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis.ljust(3, "0")) / 1000


def read_subtitle_file(path: str | Path, movie: str) -> list[SubtitleRecord]:
    """The cues of an SRT or WebVTT file as subtitles of ``movie``, sorted by start.

    Raises:
        DataFormatError: the file has no timing line at all, or a cue that ends before it starts.
    """
    path = Path(path)
    text = read_text(path).replace("\r\n", "\n").replace("\r", "\n")
    records: list[SubtitleRecord] = []
    for number, block in enumerate(re.split(r"\n\s*\n", text)):
        lines = block.strip("\n").split("\n")
        timing = next((i for i, line in enumerate(lines) if _TIMING.match(line)), None)
        if timing is None:
            continue  # a header (WEBVTT), a NOTE or STYLE block, or stray text
        found = _TIMING.match(lines[timing])
        assert found is not None
        start, end = _seconds(*found.groups()[:4]), _seconds(*found.groups()[4:])
        if end < start:
            raise DataFormatError(path, f"cue ends ({end:.3f}s) before it starts ({start:.3f}s)",
                                  "fix the cue's timing line", record=f"cue {number + 1}")
        words = " ".join(_TAG.sub("", line).strip() for line in lines[timing + 1 :]).strip()
        if words:
            records.append(SubtitleRecord(movie, start, end, words))
    if not records and "-->" not in text:
        raise DataFormatError(path, "no subtitle cue found", "give an SRT or WebVTT file (cues with `start --> end`)")
    return sorted(records, key=lambda s: (s.start, s.end))
