"""LSMDC annotation files (``LSMDC16_annos_{training,val,test}.csv`` and the ``*_someone.csv`` variants).

Format: tab-separated, no header, exactly 6 columns per line::

    clip id <TAB> start aligned <TAB> end aligned <TAB> start extracted <TAB> end extracted <TAB> sentence

e.g. ``1012_Unbreakable_00.05.16.065-00.05.21.941``. Times are ``HH.MM.SS.mmm`` strings (plain seconds are
accepted too). Clip ids are not unique: every line is a record, identified by ``row`` (0-based line).
Sentences may contain quotes; nothing is unquoted (``csv.QUOTE_NONE``).
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Sequence
from pathlib import Path

from moviead.data.errors import DataFormatError
from moviead.data.formats._validate import check_interval, require_id, require_text
from moviead.data.records import LSMDCRecord
from moviead.data.text_io import open_text

logger = logging.getLogger(__name__)

NUM_COLUMNS = 6
MULTI_SENTENCE_SET_SIZE = 5  # clips per set in LSMDC's multi-sentence description (LoCo-MAD's L_c on LSMDC)
COLUMNS = ("clip id", "start aligned", "end aligned", "start extracted", "end extracted", "sentence")
_CLOCK = re.compile(r"^(\d+)\.(\d{1,2})\.(\d{1,2})\.(\d+)$")
_CLIP_ID = re.compile(r"^(?P<movie>.+)_\d+\.\d+\.\d+\.\d+-\d+\.\d+\.\d+\.\d+$")


def parse_lsmdc_time(value: str) -> float:
    """Seconds from ``HH.MM.SS.mmm`` (``"00.05.16.065"`` -> 316.065) or from plain seconds (``"316.065"``).

    Raises:
        ValueError: if ``value`` is neither.
    """
    value = value.strip()
    match = _CLOCK.match(value)
    if match:
        hours, minutes, seconds, fraction = match.groups()
        if int(minutes) >= 60 or int(seconds) >= 60:
            raise ValueError(f"minutes and seconds must be below 60 in {value!r}")
        return float(f"{int(hours) * 3600 + int(minutes) * 60 + int(seconds)}.{fraction}")
    seconds_value = float(value)  # raises ValueError for anything else
    if seconds_value != seconds_value or seconds_value in (float("inf"), float("-inf")):
        raise ValueError(f"{value!r} is not finite")
    return seconds_value


def movie_of_clip(clip_id: str) -> str:
    """The movie of an LSMDC clip id: ``1012_Unbreakable_00.05.16.065-00.05.21.941`` -> ``1012_Unbreakable``.

    Ids without the ``_HH.MM.SS.mmm-HH.MM.SS.mmm`` suffix fall back to the part before their last ``_``.
    """
    match = _CLIP_ID.match(clip_id)
    if match:
        return match.group("movie")
    return clip_id.rsplit("_", 1)[0] if "_" in clip_id else clip_id


def read_lsmdc_tsv(path: str | Path) -> list[LSMDCRecord]:
    """Read an LSMDC annotation file in file order (see the module docstring for the format).

    A line that repeats an earlier one exactly (same clip id, times and sentence) is dropped; the count is logged.

    Raises:
        DataFormatError: a line without exactly 6 columns, an unparsable time, ``start >= end`` (aligned or
        extracted) or an empty sentence, naming the 1-based line.
    """
    path = Path(path)
    reader = csv.reader(open_text(path), delimiter="\t", quoting=csv.QUOTE_NONE)
    records: list[LSMDCRecord] = []
    seen: set[tuple[str, ...]] = set()
    duplicates: list[int] = []
    try:
        for row, fields in enumerate(reader):
            record = f"line {row + 1}"
            if all(not field.strip() for field in fields):
                continue
            if len(fields) != NUM_COLUMNS:
                raise DataFormatError(
                    path,
                    f"found {len(fields)} tab-separated columns, expected {NUM_COLUMNS} ({', '.join(COLUMNS)})",
                    "separate the 6 columns with single tabs and remove tabs inside the sentence",
                    record,
                )
            clip_id = require_id(path, record, "clip id", fields[0].strip().strip('"'))
            times = []
            for name, value in zip(COLUMNS[1:5], fields[1:5]):
                try:
                    times.append(parse_lsmdc_time(value))
                except ValueError:
                    raise DataFormatError(
                        path, f"column {name!r} is not a time: {value!r}",
                        "write times as HH.MM.SS.mmm (e.g. 00.05.16.065) or as seconds", record,
                    ) from None
            check_interval(path, record, times[0], times[1], ("start aligned", "end aligned"))
            check_interval(path, record, times[2], times[3], ("start extracted", "end extracted"))
            text = require_text(path, record, "sentence", fields[5], what="sentence")
            key = (clip_id, *map(str, times), text)
            if key in seen:
                duplicates.append(row + 1)
                continue
            seen.add(key)
            records.append(LSMDCRecord(clip_id, movie_of_clip(clip_id), row, *times, text=text))
    except csv.Error as exc:
        raise DataFormatError(
            path, f"not a readable TSV ({exc})", "save the file as plain tab-separated text",
            record=f"line {reader.line_num}",
        ) from exc
    if duplicates:
        shown = ", ".join(map(str, duplicates[:5])) + (", ..." if len(duplicates) > 5 else "")
        logger.warning("%s: %d exact duplicate line(s) dropped (line %s)", path, len(duplicates), shown)
    return records


def group_multi_sentence(
    records: Sequence[LSMDCRecord], group_size: int = MULTI_SENTENCE_SET_SIZE
) -> list[list[LSMDCRecord]]:
    """Consecutive clips of the same movie, in the order given (file order), in groups of ``group_size`` (LSMDC
    multi-sentence). The LSMDC loader groups each movie's clips in time order and bounds context by the groups.

    A new group starts whenever the movie changes; a trailing group shorter than ``group_size`` is kept. Every
    record counts, a duplicated clip's two sentences included.
    """
    if group_size < 1:
        raise ValueError(f"group_size must be at least 1, got {group_size}")
    groups: list[list[LSMDCRecord]] = []
    for record in records:
        if groups and groups[-1][-1].movie == record.movie and len(groups[-1]) < group_size:
            groups[-1].append(record)
        else:
            groups.append([record])
    return groups
