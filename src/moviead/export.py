"""Exports of audio descriptions: WebVTT (for ``<track kind="descriptions">``) and SRT per movie, and JSONL rows.

Both subtitle writers prepare the cues the same way, in this order:

1. times are rounded to the millisecond; negative or non-finite times, or an end before the start, raise
   :class:`ValueError`;
2. text: each line is stripped and blank lines are dropped (a blank line would end the cue early); a cue left
   without text is dropped;
3. a zero-length cue (end == start) is given ``min_duration`` seconds (1 s), time for a screen reader to say it;
4. cues are sorted by start, then end (stable for equal times);
5. ``overlap="trim"`` (default): cues starting at the same millisecond are merged into one (lines in the order of
   step 4, the later end), then a cue that runs into the next one ends where the next starts, so that no two
   descriptions are spoken over each other. ``overlap="keep"`` leaves the times as they are: the formats allow
   overlapping cues and players present them together.

WebVTT follows the W3C syntax: a ``WEBVTT`` header line, a blank line, then cue blocks of a timing line
``HH:MM:SS.mmm --> HH:MM:SS.mmm`` (hours grow past two digits when needed) and the text, separated by blank lines.
In the text ``&``, ``<`` and ``>`` are written ``&amp;``, ``&lt;`` and ``&gt;``, so no ``-->`` or tag can appear.
SRT: numbered blocks with ``HH:MM:SS,mmm --> HH:MM:SS,mmm``; SRT has no escapes, so ``-->`` in the text becomes
``->`` (some readers take any line holding ``-->`` for a timing line) and the rest is written as is.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Overlap = Literal["trim", "keep"]


@dataclass(frozen=True)
class Cue:
    """One description: ``start`` and ``end`` in seconds from the start of the movie, and its text."""

    start: float
    end: float
    text: str


def _to_ms(seconds: float, what: str) -> int:
    value = float(seconds)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"cue {what} must be a finite number of seconds >= 0, got {seconds!r}")
    return round(value * 1000)


def round_ms(seconds: float) -> float:
    """``seconds`` rounded to the millisecond exactly as the writers round cue times (so ``round_ms(t)`` is the time
    the WebVTT and SRT files show); a negative or non-finite time raises :class:`ValueError`."""
    return _to_ms(seconds, "time") / 1000


def _prepare(cues: Iterable[Cue], overlap: Overlap, min_duration: float) -> list[tuple[int, int, list[str]]]:
    """Steps 1-5 of the module doc: (start ms, end ms, text lines) per cue, sorted."""
    if overlap not in ("trim", "keep"):
        raise ValueError(f"overlap must be 'trim' or 'keep', got {overlap!r}")
    extra = _to_ms(min_duration, "min_duration")
    if extra <= 0:
        raise ValueError(f"min_duration must be at least 1 ms (a WebVTT cue ends after it starts), got {min_duration}")
    timed = []
    for cue in cues:
        start, end = _to_ms(cue.start, "start"), _to_ms(cue.end, "end")
        if end < start:
            raise ValueError(f"cue ends before it starts: {cue}")
        lines = [line.strip() for line in re.split(r"\r\n|\r|\n|\u2028|\u2029", cue.text)]
        lines = [line for line in lines if line]
        if lines:
            timed.append((start, end if end > start else start + extra, lines))
    timed.sort(key=lambda c: (c[0], c[1]))
    if overlap == "keep":
        return timed
    merged: list[tuple[int, int, list[str]]] = []
    for start, end, lines in timed:
        if merged and merged[-1][0] == start:
            merged[-1] = (start, max(merged[-1][1], end), merged[-1][2] + lines)
        else:
            merged.append((start, end, lines))
    return [(s, min(e, merged[i + 1][0]) if i + 1 < len(merged) else e, t) for i, (s, e, t) in enumerate(merged)]


def prepare_cues(cues: Iterable[Cue], overlap: Overlap = "trim", min_duration: float = 1.0) -> list[Cue]:
    """The cues as the writers will write them (see the module doc), times in whole milliseconds."""
    return [Cue(s / 1000, e / 1000, "\n".join(t)) for s, e, t in _prepare(cues, overlap, min_duration)]


def format_timestamp(milliseconds: int, separator: str = ".") -> str:
    """``HH:MM:SS.mmm`` (WebVTT) or, with ``separator=","``, ``HH:MM:SS,mmm`` (SRT)."""
    hours, rest = divmod(int(milliseconds), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


def _escape_vtt(line: str) -> str:
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webvtt_text(cues: Iterable[Cue], overlap: Overlap = "trim", min_duration: float = 1.0) -> str:
    """The WebVTT file contents for ``cues``."""
    blocks = ["WEBVTT\n"]
    for start, end, lines in _prepare(cues, overlap, min_duration):
        timing = f"{format_timestamp(start)} --> {format_timestamp(end)}"
        blocks.append("\n".join([timing, *(_escape_vtt(line) for line in lines)]) + "\n")
    return "\n".join(blocks)


def srt_text(cues: Iterable[Cue], overlap: Overlap = "trim", min_duration: float = 1.0) -> str:
    """The SRT file contents for ``cues``."""
    blocks = []
    for n, (start, end, lines) in enumerate(_prepare(cues, overlap, min_duration), start=1):
        timing = f"{format_timestamp(start, ',')} --> {format_timestamp(end, ',')}"
        blocks.append("\n".join([str(n), timing, *(line.replace("-->", "->") for line in lines)]) + "\n")
    return "\n".join(blocks)


def write_webvtt(cues: Iterable[Cue], path: str | Path, overlap: Overlap = "trim", min_duration: float = 1.0) -> Path:
    """Write a WebVTT file (UTF-8, ``\\n`` line ends); returns its path."""
    path = Path(path)
    path.write_text(webvtt_text(cues, overlap, min_duration), encoding="utf-8", newline="\n")
    return path


def write_srt(cues: Iterable[Cue], path: str | Path, overlap: Overlap = "trim", min_duration: float = 1.0) -> Path:
    """Write an SRT file (UTF-8, ``\\n`` line ends); returns its path."""
    path = Path(path)
    path.write_text(srt_text(cues, overlap, min_duration), encoding="utf-8", newline="\n")
    return path


def _file_stem(movie: object) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(movie)).lstrip(".") or "movie"


def write_movie_subtitles(
    cues_by_movie: Mapping[Any, Iterable[Cue]],
    out_dir: str | Path,
    formats: Iterable[Literal["vtt", "srt"]] = ("vtt", "srt"),
    overlap: Overlap = "trim",
    min_duration: float = 1.0,
) -> dict[Any, list[Path]]:
    """One ``{movie}.vtt`` and/or ``{movie}.srt`` per movie in ``out_dir`` (characters other than letters, digits,
    ``.``, ``_`` and ``-`` in the movie id become ``_``); returns movie -> written paths."""
    formats = tuple(formats)
    if set(formats) - {"vtt", "srt"}:
        raise ValueError(f"formats must be among 'vtt' and 'srt', got {formats}")
    stems = {movie: _file_stem(movie) for movie in cues_by_movie}
    if len(set(stems.values())) != len(stems):
        raise ValueError("two movie ids map to the same file name; rename them")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[Any, list[Path]] = {}
    for movie, cues in cues_by_movie.items():
        cues = list(cues)
        writers = {"vtt": write_webvtt, "srt": write_srt}
        written[movie] = [writers[f](cues, out / f"{stems[movie]}.{f}", overlap, min_duration) for f in formats]
    return written


def cues_from_rows(
    rows: Iterable[Mapping[str, Any]], text_key: str = "pred", movie_key: str = "movie"
) -> dict[Any, list[Cue]]:
    """Group prediction rows (``movie``, ``start``, ``end``, ``pred`` as in the evaluation JSONL) into cues."""
    cues: dict[Any, list[Cue]] = {}
    for row in rows:
        cues.setdefault(row[movie_key], []).append(Cue(float(row["start"]), float(row["end"]), str(row[text_key])))
    return cues


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy and torch scalars and arrays
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_jsonl(rows: Iterable[Mapping[str, Any]], path: str | Path, append: bool = False) -> int:
    """Write one JSON object per line (UTF-8, flushed after each row, so an interrupted run leaves whole rows and
    at most one partial last line); numpy/torch values become numbers or lists. Returns the number of rows."""
    count = 0
    with open(path, "a" if append else "w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(dict(row), ensure_ascii=False, default=_json_default) + "\n")
            handle.flush()
            count += 1
    return count


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The complete rows of a JSONL file. A last line that is not valid JSON (a write cut short) is ignored with a
    warning; a bad line elsewhere raises :class:`ValueError`. Resume a run after ``len(read_jsonl(path))`` rows,
    rewriting the file from those rows first so the cut line goes."""
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    rows = []
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if n == len(lines) - 1:  # after the final newline: the interrupted row
                warnings.warn(f"{path}: ignoring an incomplete last line ({len(line)} characters)", stacklevel=2)
                break
            raise ValueError(f"{path}:{n + 1}: not valid JSON: {err}") from err
    return rows
