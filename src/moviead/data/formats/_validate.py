"""Shared checks for the format readers: CSV rows with line numbers, column checks, times, text and JSON.

Every check raises one :class:`DataFormatError` naming the file, the record and the fix. Readers collect
all records first and return only when every record passed, so a caller never sees half a file.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from moviead.data.errors import DataFormatError
from moviead.data.records import ADRecord
from moviead.data.text_io import open_text, read_text

logger = logging.getLogger(__name__)

#: A required column: one name, or alternatives in order of preference (``("text", "sentence")``).
Column = Union[str, tuple[str, ...]]


@dataclass(frozen=True)
class CsvRow:
    """One data row: the 1-based line in the file where it starts and its fields by column name."""

    line: int
    values: dict[str, str]

    @property
    def record(self) -> str:
        return f"line {self.line}"


def describe(column: Column) -> str:
    """``"text"`` or ``"text (or sentence)"``."""
    if isinstance(column, str):
        return column
    return f"{column[0]} (or {' or '.join(column[1:])})" if len(column) > 1 else column[0]


def resolve_columns(
    path: Path, found: Sequence[str], required: Sequence[Column], record: str, fix_hint: str = ""
) -> dict[str, str]:
    """Map each required column (its first name) to the name present in ``found``; raise listing all missing.

    Raises:
        DataFormatError: naming the missing columns and the columns found.
    """
    present = set(found)
    resolved: dict[str, str] = {}
    missing: list[str] = []
    for column in required:
        names = (column,) if isinstance(column, str) else column
        hit = next((name for name in names if name in present), None)
        if hit is None:
            missing.append(describe(column))
        else:
            resolved[names[0]] = hit
    if missing:
        expected = ", ".join(describe(c) for c in required)
        raise DataFormatError(
            path,
            f"missing column(s) {', '.join(missing)}; columns found: {', '.join(map(str, found)) or '(none)'}",
            f"name the columns {expected} in the header{fix_hint}",
            record=record,
        )
    return resolved


def read_csv_rows(path: str | Path, required: Sequence[Column]) -> tuple[dict[str, str], list[CsvRow]]:
    """Read a comma-separated file with a header line through :func:`open_text` (UTF-8, cp1252 fallback).

    Column names are stripped of surrounding spaces; extra columns are kept in ``values`` but need not be
    used. Blank lines are skipped. Quoted fields may span lines; ``CsvRow.line`` is where the row starts.

    Returns:
        (resolved column names, rows): ``resolved[first name] = name in the file`` for each required column.

    Raises:
        DataFormatError: empty file, missing columns, a row whose field count differs from the header's, or
        a CSV syntax error.
    """
    path = Path(path)
    reader = csv.reader(open_text(path))
    try:
        header = next(reader, None)
        if header is None:
            expected = ", ".join(describe(c) for c in required)
            raise DataFormatError(path, "the file is empty", f"write a header line naming at least {expected}")
        header = [name.strip() for name in header]
        resolved = resolve_columns(path, header, required, record=f"line {reader.line_num} (header)")
        rows: list[CsvRow] = []
        previous = reader.line_num
        for fields in reader:
            line, previous = previous + 1, reader.line_num
            if all(not field.strip() for field in fields):
                continue
            if len(fields) != len(header):
                raise DataFormatError(
                    path,
                    f"the row has {len(fields)} fields but the header names {len(header)} columns",
                    'quote fields that contain commas (e.g. "He waits, then leaves.") or remove the extra fields',
                    record=f"line {line}",
                )
            rows.append(CsvRow(line, dict(zip(header, fields))))
    except csv.Error as exc:
        raise DataFormatError(
            path, f"not valid CSV ({exc})", "check the quoting on this line (every opening quote needs a closing one)",
            record=f"line {reader.line_num}",
        ) from exc
    return resolved, rows


def is_missing(value: Any) -> bool:
    """True for None, float NaN (pandas' empty cell) and strings that are empty after stripping."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def parse_time(path: Path, record: str, column: str, value: Any) -> float:
    """A time in seconds from a number or numeric string; raise on empty, non-numeric, NaN or inf."""
    if is_missing(value):
        raise DataFormatError(path, f"column {column!r} is empty", f"give {column} in seconds, e.g. 12.5", record)
    try:
        seconds = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise DataFormatError(
            path, f"column {column!r} is not a number: {value!r}", f"write {column} as seconds, e.g. 12.5", record
        ) from None
    if not math.isfinite(seconds):
        raise DataFormatError(
            path, f"column {column!r} is not finite: {value!r}", f"write {column} as seconds, e.g. 12.5", record
        )
    return seconds


def check_interval(
    path: Path, record: str, start: float, end: float, names: tuple[str, str] = ("start", "end")
) -> None:
    """Raise unless ``start < end``."""
    if not start < end:
        raise DataFormatError(
            path,
            f"{names[0]} ({start:g}) is not before {names[1]} ({end:g})",
            f"fix the times of this record so that {names[0]} < {names[1]} (both in seconds), or remove it",
            record,
        )


def parse_interval(
    path: Path, record: str, start: Any, end: Any, names: tuple[str, str] = ("start", "end")
) -> tuple[float, float]:
    """Both times parsed and checked ``start < end``."""
    first = parse_time(path, record, names[0], start)
    last = parse_time(path, record, names[1], end)
    check_interval(path, record, first, last, names)
    return first, last


def require_text(path: Path, record: str, column: str, value: Any, what: str = "AD text") -> str:
    """The stripped text; raise if it is missing, empty or whitespace only."""
    if is_missing(value) or not isinstance(value, str):
        shown = "" if is_missing(value) else f" ({value!r} is not text)"
        raise DataFormatError(
            path, f"{what} in column {column!r} is empty{shown}", "write the sentence or remove the record", record
        )
    return value.strip()


def require_id(path: Path, record: str, column: str, value: Any) -> str:
    """An id as a string, exactly as written (stripped; ``"0012"`` stays ``"0012"``); raise if empty."""
    if is_missing(value):
        raise DataFormatError(path, f"column {column!r} (the id) is empty", f"fill in {column} for this record", record)
    return value.strip() if isinstance(value, str) else str(value)


def load_json(path: str | Path) -> Any:
    """Parse a JSON file read with :func:`read_text`; a syntax error names the line and column."""
    path = Path(path)
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataFormatError(
            path, f"malformed JSON: {exc.msg}", "fix the JSON syntax (e.g. `python -m json.tool FILE` shows where)",
            record=f"line {exc.lineno}, column {exc.colno}",
        ) from exc


def require_keys(path: Path, record: str, obj: Any, keys: Iterable[str], what: str = "record") -> None:
    """Raise unless ``obj`` is a dict holding every key in ``keys``; lists the missing keys and those found."""
    keys = list(keys)
    if not isinstance(obj, dict):
        raise DataFormatError(
            path, f"expected a JSON object for this {what}, found {type(obj).__name__}",
            f"write each {what} as an object with the keys {', '.join(keys)}", record,
        )
    missing = [key for key in keys if key not in obj]
    if missing:
        raise DataFormatError(
            path,
            f"missing key(s) {', '.join(map(repr, missing))}; keys found: {', '.join(map(repr, obj)) or '(none)'}",
            f"add the missing keys (expected {', '.join(map(repr, keys))})",
            record,
        )


def ad_from_row(path: Path, row: CsvRow, columns: dict[str, str], movie_column: str = "movie") -> ADRecord:
    """An ADRecord (index -1) from a CSV row with movie, start, end and text columns; raises naming the line."""
    v = row.values
    movie = require_id(path, row.record, columns[movie_column], v[columns[movie_column]])
    start, end = parse_interval(path, row.record, v[columns["start"]], v[columns["end"]])
    text = require_text(path, row.record, columns["text"], v[columns["text"]])
    return ADRecord(movie=movie, index=-1, start=start, end=end, text=text)


def repair_ads(path: str | Path, ads: Iterable[ADRecord]) -> list[ADRecord]:
    """Repair what real AD files get wrong, counting each repair in one warning; order is kept.

    * A negative start (MAD-v2 has a few) is clamped to 0; an AD that then ends at or before 0 s is dropped.
    * An exact duplicate (same movie, start, end and text as an earlier AD) is dropped.
    """
    kept: list[ADRecord] = []
    seen: set[tuple[str, float, float, str]] = set()
    clamped = ended_before_zero = duplicates = 0
    for ad in ads:
        if ad.start < 0:
            if ad.end <= 0:
                ended_before_zero += 1
                continue
            clamped += 1
            ad = dataclasses.replace(ad, start=0.0)
        key = (ad.movie, ad.start, ad.end, ad.text)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        kept.append(ad)
    repairs = [
        f"{clamped} AD(s) started before 0 s: clamped to 0" if clamped else "",
        f"{ended_before_zero} AD(s) ended at or before 0 s: dropped" if ended_before_zero else "",
        f"{duplicates} exact duplicate AD row(s) (same movie, start, end and text): dropped" if duplicates else "",
    ]
    if any(repairs):
        logger.warning("%s: %s", path, "; ".join(r for r in repairs if r))
    return kept
