"""Subtitle files a practitioner has for their film: SubRip (``.srt``) and WebVTT (``.vtt``).

SRT blocks are ``index``, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, one or more text lines, a blank line. WebVTT cues have
the same shape with ``.`` before the milliseconds, optional hours, an optional identifier line and cue settings
after the end time. Tags such as ``<i>`` are removed from the text.

Real files deviate from both; these deviations are read and counted in one warning per file:

* timings without milliseconds (``00:01:02 --> 00:01:04``, read as ``.000``) and ``,`` or ``.`` before them in
  either format;
* cues not separated by a blank line (a new cue starts at every timing line, and at an index line just before one);
* text after a blank line inside a cue (joined to the cue);
* a UTF-8 byte-order mark, CRLF or CR line ends, cp1252 lines (see :mod:`moviead.data.text_io`).

Cues that cannot be used are skipped, counted by reason with their line numbers: an unreadable timing line, an
end before the start, a zero-length cue, a cue without text, text without any timing line before it.

Neither ``srt`` nor ``webvtt-py`` is used: both drop or repair such cues without saying which, and saying which
(and how many) is the point here.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from moviead.data.errors import DataFormatError
from moviead.data.records import SubtitleRecord
from moviead.data.text_io import read_text

logger = logging.getLogger(__name__)

_STAMP = r"(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:([,.])(\d{1,9}))?"
_TIMING = re.compile(rf"^\s*{_STAMP}\s*-->\s*{_STAMP}(?=\s|$)")
_TAG = re.compile(r"<[^>]*>")
_VTT_BLOCKS = ("WEBVTT", "NOTE", "STYLE", "REGION")  # WebVTT blocks that are not cues
_SHOWN = 5  # line numbers listed per reason

#: :func:`fit_subtitles_to_film` warns when the dialogue covers less than this share of a film ...
MIN_DIALOGUE_SHARE = 0.05
#: ... that lasts longer than this many seconds (a short clip may well have no dialogue).
MIN_FILM_SECONDS = 600.0


class _Tally:
    """Repairs and skipped cues of one file, by reason, with the line numbers (1-based)."""

    def __init__(self) -> None:
        self.repaired: dict[str, list[int]] = defaultdict(list)
        self.skipped: dict[str, list[int]] = defaultdict(list)

    def summary(self) -> str:
        def lines(numbers: list[int]) -> str:
            shown = ", ".join(map(str, numbers[:_SHOWN])) + (", ..." if len(numbers) > _SHOWN else "")
            return f"line{'s' if len(numbers) > 1 else ''} {shown}"

        parts = [f"{len(n)} cue(s) {reason} ({lines(n)})" for reason, n in self.repaired.items()]
        parts += [f"{len(n)} cue(s) skipped: {reason} ({lines(n)})" for reason, n in self.skipped.items()]
        return "; ".join(parts)


def _seconds(hours: str | None, minutes: str, seconds: str, fraction: str | None) -> float | None:
    """Seconds of one time stamp, or None when minutes or seconds are 60 or more."""
    if int(seconds) >= 60 or (hours is not None and int(minutes) >= 60):
        return None
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + (float(f"0.{fraction}") if fraction else 0.0)


def _is_index(line: str) -> bool:
    return line.strip().isdigit()


def _blocks(lines: Sequence[str]) -> list[list[int]]:
    """Line numbers (0-based) of each run of non-blank lines."""
    blocks: list[list[int]] = []
    current: list[int] = []
    for number, line in enumerate(lines):
        if line.strip():
            current.append(number)
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def _cue(
    lines: Sequence[str], timing: int, text: Sequence[int], movie: str, tally: _Tally, suffix: str
) -> SubtitleRecord | None:
    """The cue of the timing line ``timing`` (0-based) with text lines ``text``, or None (counted as skipped)."""
    line = timing + 1
    found = _TIMING.match(lines[timing])
    groups = found.groups() if found is not None else (None,) * 10
    start = _seconds(*groups[0:3], groups[4]) if found is not None else None
    end = _seconds(*groups[5:8], groups[9]) if found is not None else None
    if start is None or end is None:
        tally.skipped["unreadable timing line (write it as 00:01:02,500 --> 00:01:04,000)"].append(line)
        return None
    if groups[3] is None or groups[8] is None:
        tally.repaired["had timings without milliseconds (read as .000)"].append(line)
    wrong = "." if suffix == ".srt" else ","
    if wrong in (groups[3], groups[8]):
        tally.repaired[f"had {wrong!r} before the milliseconds (read as usual)"].append(line)
    words = " ".join(_TAG.sub("", lines[i]).strip() for i in text).strip()
    if end < start:
        tally.skipped["end before start"].append(line)
    elif end == start:
        tally.skipped["ends when it starts"].append(line)
    elif not words:
        tally.skipped["no text"].append(line)
    else:
        return SubtitleRecord(movie, start, end, words)
    return None


def read_subtitle_file(path: str | Path, movie: str) -> list[SubtitleRecord]:
    """The cues of an SRT or WebVTT file as subtitles of ``movie``, sorted by start.

    What was repaired or skipped (see the module docstring) is logged as one warning with counts and lines.

    Raises:
        DataFormatError: the file has no timing line at all, or none of its cues can be used.
    """
    path = Path(path)
    lines = re.split(r"\r\n|\r|\n", read_text(path))
    tally = _Tally()
    records: list[SubtitleRecord] = []
    cues: list[tuple[int, list[int]]] = []  # (timing line, text lines), in file order
    timings = 0
    for block in _blocks(lines):
        positions = [k for k, number in enumerate(block) if "-->" in lines[number]]
        timings += len(positions)
        if not positions:
            first = lines[block[0]].split(maxsplit=1)[0]
            if first in _VTT_BLOCKS or (len(block) == 1 and _is_index(first)):
                continue  # the WebVTT header, a NOTE, STYLE or REGION block, or a lone cue number
            if cues:
                tally.repaired["had text after a blank line (joined to the cue)"].append(cues[-1][0] + 1)
                cues[-1][1].extend(block)
            else:
                tally.skipped["text without a timing line"].append(block[0] + 1)
            continue
        if positions[0] > 1 and cues:  # text lines before the identifier: the previous cue's, after a blank line
            tally.repaired["had text after a blank line (joined to the cue)"].append(cues[-1][0] + 1)
            cues[-1][1].extend(block[: positions[0] - 1])
        elif positions[0] > 1:
            tally.skipped["text without a timing line"].append(block[0] + 1)
        for j, k in enumerate(positions):
            stop = positions[j + 1] if j + 1 < len(positions) else len(block)
            if j + 1 < len(positions):
                tally.repaired["not separated from the next cue by a blank line"].append(block[k] + 1)
                if stop - 1 > k and _is_index(lines[block[stop - 1]]):
                    stop -= 1  # the next cue's index
            cues.append((block[k], block[k + 1 : stop]))
    for timing, text in cues:
        cue = _cue(lines, timing, text, movie, tally, path.suffix.lower())
        if cue is not None:
            records.append(cue)
    if not timings:
        raise DataFormatError(path, "no subtitle cue found", "give an SRT or WebVTT file (cues with `start --> end`)")
    if not records:
        raise DataFormatError(
            path, f"no usable subtitle cue: {tally.summary()}",
            "fix the cues listed: a timing line `00:01:02,500 --> 00:01:04,000`, then the text",
        )
    summary = tally.summary()
    if summary:
        logger.warning("subtitles %s: %s", path, summary)
    return sorted(records, key=lambda s: (s.start, s.end))


def dialogue_seconds(subtitles: Sequence[SubtitleRecord]) -> float:
    """Seconds covered by at least one subtitle (overlapping cues counted once)."""
    covered, reach = 0.0, float("-inf")
    for sub in sorted(subtitles, key=lambda s: (s.start, s.end)):
        start = max(sub.start, reach)
        if sub.end > start:
            covered += sub.end - start
        reach = max(reach, sub.end)
    return covered


def fit_subtitles_to_film(
    subtitles: Sequence[SubtitleRecord], duration: float, source: str | Path
) -> list[SubtitleRecord]:
    """Check subtitles against the film they are for; return them clipped to the film.

    * A cue that starts at or after ``duration`` is dropped; one that ends after it is clipped to end there. Both
      are counted in one warning (subtitles for another cut of the film, or in the wrong unit, look like this).
    * When the film lasts longer than :data:`MIN_FILM_SECONDS` (10 minutes) and the dialogue left covers less
      than :data:`MIN_DIALOGUE_SHARE` (5 %) of it, a warning says so: these are likely not this film's subtitles,
      or out of sync, and nearly the whole film would be taken as dialogue-free.

    Args:
        subtitles: the cues, e.g. from :func:`read_subtitle_file`.
        duration: the film's length in seconds (its features' frames / fps).
        source: the subtitle file, named in the warnings.
    """
    kept: list[SubtitleRecord] = []
    past = clipped = 0
    for sub in subtitles:
        if sub.start >= duration:
            past += 1
        elif sub.end > duration:
            clipped += 1
            kept.append(SubtitleRecord(sub.movie, sub.start, duration, sub.text))
        else:
            kept.append(sub)
    if past or clipped:
        logger.warning(
            "subtitles %s: %d cue(s) end after the film (%.3f s): clipped to its end; %d cue(s) start after it: "
            "dropped", source, clipped, duration, past,
        )
    covered = dialogue_seconds(kept)
    if duration > MIN_FILM_SECONDS and covered < MIN_DIALOGUE_SHARE * duration:
        logger.warning(
            "subtitles %s: the dialogue covers %.1f %% of the film (%.0f s of %.0f s), under %.0f %%: are these "
            "the film's subtitles, in sync and in seconds? Almost the whole film will be taken as free for AD",
            source, 100 * covered / duration, covered, duration, 100 * MIN_DIALOGUE_SHARE,
        )
    return kept
