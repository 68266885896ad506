"""AutoAD-III's TV-AD and CMD-AD annotation CSVs (times in seconds).

* TV-AD (``tvad_anno.csv``): ``text, start, end, imdbid, imdbid_pe, season, episode, ..., tvad_name, ...``.
  The episode id (the records' ``movie``) is ``imdbid_pe`` (the episode's IMDb id) when the column is
  present and filled, else ``tvad_name`` (e.g. ``friends_s01e01_seg02_clip_04``).
* CMD-AD (``cmdad_anno.csv``): ``text, start, end, movie, ..., imdbid, movie_title, cmd_clip_idx``; the
  id is the ``movie`` column, kept as a string.

Extra columns are ignored. Records come back grouped by id, sorted by ``(start, end)`` and indexed, like
every AD reader (:func:`moviead.data.formats.mad.sort_and_index`); negative starts are clamped to 0 and exact
duplicate rows dropped, with a warning (:func:`moviead.data.formats._validate.repair_ads`).
"""

from __future__ import annotations

from pathlib import Path

from moviead.data.errors import DataFormatError
from moviead.data.formats._validate import (
    ad_from_row,
    is_missing,
    parse_interval,
    read_csv_rows,
    repair_ads,
    require_text,
)
from moviead.data.formats.mad import sort_and_index
from moviead.data.records import ADRecord

TVAD_IDS = ("imdbid_pe", "tvad_name")


def read_tvad_csv(path: str | Path) -> list[ADRecord]:
    """Read TV-AD annotations; the id is ``imdbid_pe`` when present in a row, else ``tvad_name``.

    Raises:
        DataFormatError: missing columns (``text, start, end`` and one of ``imdbid_pe``/``tvad_name``), a row
        with neither id, empty text, bad times or ``start >= end``, naming the line.
    """
    path = Path(path)
    columns, rows = read_csv_rows(path, ("text", "start", "end", TVAD_IDS))
    id_columns = [name for name in TVAD_IDS if name in rows[0].values] if rows else []
    ads = []
    for row in rows:
        movie = next((row.values[c].strip() for c in id_columns if not is_missing(row.values[c])), None)
        if movie is None:
            raise DataFormatError(
                path, f"no episode id: {' and '.join(id_columns)} empty",
                "fill in imdbid_pe (the episode's IMDb id) or tvad_name for this row", row.record,
            )
        start, end = parse_interval(path, row.record, row.values[columns["start"]], row.values[columns["end"]])
        text = require_text(path, row.record, columns["text"], row.values[columns["text"]])
        ads.append(ADRecord(movie=movie, index=-1, start=start, end=end, text=text))
    return sort_and_index(repair_ads(path, ads))


def read_cmdad_csv(path: str | Path) -> list[ADRecord]:
    """Read CMD-AD annotations; the id is the ``movie`` column as a string (``"0012"`` stays ``"0012"``).

    Raises:
        DataFormatError: missing columns (``text, start, end, movie``), empty text, bad times or
        ``start >= end``, naming the line.
    """
    path = Path(path)
    columns, rows = read_csv_rows(path, ("text", "start", "end", "movie"))
    return sort_and_index(repair_ads(path, [ad_from_row(path, row, columns) for row in rows]))
