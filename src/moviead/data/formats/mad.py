"""MAD-v2 / AutoAD / MAD-v1 annotations, MAD subtitles and AutoAD split files.

Formats (all times in seconds; movie ids are always strings, ``"0012"`` is never turned into ``12``):

* AD CSV (``mad-v2-ad-named.csv``, ``mad-v2-ad-unnamed.csv``): a header with at least
  ``movie, start, end, text`` (``sentence`` is accepted for ``text``); extra columns are ignored.
* AutoAD pickle (``MAD_named_anno_dict_pd.pkl``): ``{movie_id: pandas.DataFrame}`` whose frames have
  ``start, end, text`` (or ``sentence``) columns.
* MAD-v1 JSON: ``{anno_id: {"movie": ..., "movie_duration": ..., "ext_timestamps": [s, e], "sentence": ...}}``.
* Subtitles CSV (``mad-v2-subs.csv``): ``movie, start, end, text``.
* Split JSON (AutoAD's ``mad_split.json``): ``{"TRAIN": [movie ids], "EVAL": [movie ids]}``.

Every AD reader returns records already indexed: grouped by movie (movies in order of first appearance),
sorted by ``(start, end)`` within a movie (ties keep file order) and numbered ``index = 0..n-1`` per movie.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from moviead.data.errors import DataFormatError
from moviead.data.formats._validate import (
    ad_from_row,
    is_missing,
    load_json,
    parse_interval,
    parse_time,
    read_csv_rows,
    repair_ads,
    require_id,
    require_keys,
    require_text,
    resolve_columns,
)
from moviead.data.records import ADRecord, MovieAnnotations, SubtitleRecord

logger = logging.getLogger(__name__)

AD_COLUMNS = ("movie", "start", "end", ("text", "sentence"))
_TIME_DECIMALS = 3  # merge key precision: MAD times are given to the millisecond


def index_by_movie(ads: Iterable[ADRecord], subtitles: Iterable[SubtitleRecord] = ()) -> dict[str, MovieAnnotations]:
    """Group ADs and subtitles by movie.

    ADs are sorted by ``(start, end)`` (stable) and re-numbered ``index = 0..n-1`` within each movie;
    subtitles are sorted by start. Movies appear in order of their first AD; movies that only have
    subtitles come after them (with no ADs).
    """
    grouped: dict[str, MovieAnnotations] = {}
    for ad in ads:
        grouped.setdefault(ad.movie, MovieAnnotations(ad.movie)).ads.append(ad)
    for sub in subtitles:
        grouped.setdefault(sub.movie, MovieAnnotations(sub.movie)).subtitles.append(sub)
    for movie in grouped.values():
        movie.ads.sort(key=lambda ad: (ad.start, ad.end))
        movie.ads = [ad if ad.index == i else dataclasses.replace(ad, index=i) for i, ad in enumerate(movie.ads)]
        movie.subtitles.sort(key=lambda sub: (sub.start, sub.end))
    return grouped


def sort_and_index(ads: Iterable[ADRecord]) -> list[ADRecord]:
    """The records of :func:`index_by_movie`, flattened: movie by movie, sorted and indexed."""
    return [ad for movie in index_by_movie(ads).values() for ad in movie.ads]


def read_ad_csv(path: str | Path) -> list[ADRecord]:
    """Read a MAD-v2 AD CSV (columns at least ``movie, start, end, text``; ``sentence`` accepted for ``text``).

    Negative starts are clamped to 0 and exact duplicate rows dropped, with a warning (:func:`repair_ads`).

    Raises:
        DataFormatError: missing columns, empty text, non-numeric times or ``start >= end`` (naming the line).
    """
    path = Path(path)
    columns, rows = read_csv_rows(path, AD_COLUMNS)
    return sort_and_index(repair_ads(path, [ad_from_row(path, row, columns) for row in rows]))


def _ads_from_frame(path: Path, movie: str, frame: Any, movie_column: str | None = None) -> list[ADRecord]:
    record = f"movie {movie!r}" if movie_column is None else "the DataFrame"
    found = [str(c).strip() for c in frame.columns]
    required = ("start", "end", ("text", "sentence")) + ((movie_column,) if movie_column else ())
    columns = resolve_columns(path, found, required, record, " of the DataFrame")
    frame = frame.set_axis(found, axis=1)
    values = {key: frame[name].tolist() for key, name in columns.items()}
    ads = []
    for position, label in enumerate(frame.index):
        where = f"{record}, row {label!r}" if movie_column is None else f"DataFrame row {label!r}"
        movie_id = movie
        if movie_column is not None:
            movie_id = require_id(path, where, movie_column, values[movie_column][position])
        start, end = parse_interval(path, where, values["start"][position], values["end"][position])
        text = require_text(path, where, columns["text"], values["text"][position])
        ads.append(ADRecord(movie=movie_id, index=-1, start=start, end=end, text=text))
    return ads


def read_autoad_pickle(path: str | Path) -> list[ADRecord]:
    """Read AutoAD's ``MAD_named_anno_dict_pd.pkl``: ``{movie_id: DataFrame(start, end, text|sentence, ...)}``.

    A single DataFrame with a ``movie`` column is accepted too. Movie keys are converted with ``str``.

    Security: this unpickles the file (``pandas.read_pickle``), which can run arbitrary code. Only read
    pickles you downloaded from the dataset's authors or made yourself; never one from an untrusted source.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataFormatError(
            path, "file not found", "check the path in your data config (data.root and the file names)"
        )
    try:
        obj = pd.read_pickle(path)
    except Exception as exc:  # unpickling can fail in many ways; all mean the same to the user
        raise DataFormatError(
            path, f"cannot unpickle the file ({type(exc).__name__}: {exc})",
            "check that this is AutoAD's MAD_named_anno_dict_pd.pkl, written by a compatible pandas version",
        ) from exc
    if isinstance(obj, pd.DataFrame):
        return sort_and_index(repair_ads(path, _ads_from_frame(path, "", obj, movie_column="movie")))
    if not isinstance(obj, dict):
        raise DataFormatError(
            path, f"expected a dict {{movie_id: DataFrame}}, found {type(obj).__name__}",
            "pass AutoAD's MAD_named_anno_dict_pd.pkl or the MAD-v2 CSV instead",
        )
    ads: list[ADRecord] = []
    for key, frame in obj.items():
        movie = str(key).strip()
        if not isinstance(frame, pd.DataFrame):
            raise DataFormatError(
                path, f"the value is a {type(frame).__name__}, not a pandas DataFrame",
                "store one DataFrame with start, end and text columns per movie", record=f"movie {movie!r}",
            )
        ads.extend(_ads_from_frame(path, movie, frame))
    return sort_and_index(repair_ads(path, ads))


def read_mad_v1_json(path: str | Path) -> list[ADRecord]:
    """Read MAD-v1 JSON: ``{anno_id: {"movie", "movie_duration", "ext_timestamps": [start, end], "sentence"}}``.

    ``movie_duration`` is not needed and may be absent.
    """
    path = Path(path)
    data = load_json(path)
    if not isinstance(data, dict):
        raise DataFormatError(
            path, f"expected a JSON object {{anno_id: annotation}}, found a {type(data).__name__}",
            "use MAD-v1's annotation file (an object keyed by annotation id)",
        )
    ads = []
    for anno_id, anno in data.items():
        record = f"key {anno_id!r}"
        require_keys(path, record, anno, ("movie", "ext_timestamps", "sentence"), what="annotation")
        stamps = anno["ext_timestamps"]
        if not isinstance(stamps, list) or len(stamps) != 2:
            raise DataFormatError(
                path, f"ext_timestamps must be a list [start, end], found {stamps!r}",
                "write ext_timestamps as two numbers in seconds, e.g. [12.5, 15.0]", record,
            )
        start, end = parse_interval(path, record, stamps[0], stamps[1], ("ext_timestamps[0]", "ext_timestamps[1]"))
        movie = require_id(path, record, "movie", anno["movie"])
        text = require_text(path, record, "sentence", anno["sentence"])
        ads.append(ADRecord(movie=movie, index=-1, start=start, end=end, text=text))
    return sort_and_index(repair_ads(path, ads))


def read_ad_annotations(path: str | Path) -> list[ADRecord]:
    """Read AD annotations in any MAD format, chosen by suffix: ``.csv``, ``.pkl`` (AutoAD) or ``.json`` (MAD-v1).

    Every reader clamps negative starts to 0 and drops exact duplicates, with a warning (:func:`repair_ads`).
    """
    path = Path(path)
    readers = {
        ".csv": read_ad_csv, ".pkl": read_autoad_pickle, ".pickle": read_autoad_pickle, ".json": read_mad_v1_json
    }
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise DataFormatError(
            path, f"unknown annotation format {path.suffix or '(no suffix)'!r}",
            "give a MAD-v2 .csv, AutoAD's .pkl or MAD-v1's .json (LSMDC, Storyboard, TV-AD and CMD-AD have "
            "their own readers)",
        )
    return reader(path)


def read_subtitles_csv(path: str | Path) -> list[SubtitleRecord]:
    """Read a MAD-v2 subtitles CSV (``movie, start, end, text``), sorted by movie then start.

    Rows with empty text or a zero-length/inverted interval (real subtitle files have a few) are skipped
    and counted in the log; all other problems raise.
    """
    path = Path(path)
    columns, rows = read_csv_rows(path, ("movie", "start", "end", "text"))
    subs: list[SubtitleRecord] = []
    skipped = 0
    for row in rows:
        v = row.values
        movie = require_id(path, row.record, columns["movie"], v[columns["movie"]])
        start = parse_time(path, row.record, "start", v[columns["start"]])
        end = parse_time(path, row.record, "end", v[columns["end"]])
        if is_missing(v[columns["text"]]) or not start < end:
            skipped += 1
            continue
        subs.append(SubtitleRecord(movie=movie, start=start, end=end, text=v[columns["text"]].strip()))
    if skipped:
        logger.info("%s: skipped %d subtitle rows with empty text or start >= end", path, skipped)
    return [sub for movie in index_by_movie((), subs).values() for sub in movie.subtitles]


def read_split_json(path: str | Path) -> dict[str, list[str]]:
    """Read a split file like AutoAD's ``mad_split.json``: ``{"TRAIN": [ids], "EVAL": [ids]}``; ids as strings."""
    path = Path(path)
    data = load_json(path)
    if not isinstance(data, dict):
        raise DataFormatError(
            path, f"expected a JSON object {{split name: [movie ids]}}, found a {type(data).__name__}",
            'write the split as {"TRAIN": ["id", ...], "EVAL": ["id", ...]}',
        )
    split: dict[str, list[str]] = {}
    for name, ids in data.items():
        record = f"split {name!r}"
        if not isinstance(ids, list):
            raise DataFormatError(
                path, f"expected a list of movie ids, found a {type(ids).__name__}",
                'write each split as a list of ids, e.g. "TRAIN": ["1001", "1002"]', record,
            )
        bad = [x for x in ids if isinstance(x, bool) or not isinstance(x, (str, int)) or is_missing(x)]
        if bad:
            raise DataFormatError(
                path, f"movie ids must be non-empty strings, found {bad[0]!r}",
                "write every id as a string, e.g. \"0012\"", record,
            )
        split[str(name)] = [x.strip() if isinstance(x, str) else str(x) for x in ids]
    return split


def check_split(split: dict[str, list[str]], known_movies: set[str], path: str | Path) -> None:
    """Raise if a split names a movie that has no annotations or features.

    Raises:
        DataFormatError: naming the split file, the split, the first few unknown ids and the fix.
    """
    for name, ids in split.items():
        unknown = [movie for movie in ids if movie not in known_movies]
        if unknown:
            shown = ", ".join(repr(m) for m in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
            raise DataFormatError(
                path,
                f"{len(unknown)} of {len(ids)} movies have no annotations or features: {shown}",
                "remove them from the split, or add their annotations and features (ids are compared as strings: "
                "'0012' is not '12')",
                record=f"split {name!r}",
            )


def _first_disagreement(
    only_named: list[ADRecord], only_unnamed: list[ADRecord]
) -> tuple[ADRecord, ADRecord, int] | None:
    """The first (by the unnamed AD's time) unmatched named/unnamed pair of one movie whose intervals overlap, and
    how many unmatched unnamed ADs overlap an unmatched named one."""
    by_movie: dict[str, list[ADRecord]] = defaultdict(list)
    for n in sorted(only_named, key=lambda ad: ad.start):
        by_movie[n.movie].append(n)
    starts = {movie: [n.start for n in ads] for movie, ads in by_movie.items()}
    pairs = []
    for u in only_unnamed:
        candidates = by_movie.get(u.movie, [])[: bisect.bisect_left(starts.get(u.movie, []), u.end)]
        overlapping = [n for n in candidates if n.end > u.start]
        if overlapping:
            pairs.append((u, min(overlapping, key=lambda n: abs(n.start - u.start) + abs(n.end - u.end))))
    if not pairs:
        return None
    u, n = min(pairs, key=lambda pair: (pair[0].movie, pair[0].start, pair[0].end))
    return n, u, len(pairs)


def merge_named_unnamed(
    named: Iterable[ADRecord],
    unnamed: Iterable[ADRecord],
    named_path: str | Path | None = None,
    unnamed_path: str | Path | None = None,
) -> list[ADRecord]:
    """Join MAD-v2's named and unnamed ADs on ``(movie, start, end)`` (times to the millisecond).

    Matched records get ``text = text_named`` = the named text and ``text_unnamed`` = the unnamed text. A
    record present in only one file keeps the other field ``None`` (an unnamed-only record uses its unnamed
    text as ``text``). Repeated keys are paired in order of appearance. Counts of unmatched rows are logged.

    Raises:
        DataFormatError: an unmatched named AD and an unmatched unnamed AD of the same movie overlap in time:
        the same AD with different times in the two files (it would otherwise become two targets). The message
        names both rows (movie, times, text), both files and how many such pairs there are.
    """

    def key(ad: ADRecord) -> tuple[str, float, float]:
        return ad.movie, round(ad.start, _TIME_DECIMALS), round(ad.end, _TIME_DECIMALS)

    pending: dict[tuple[str, float, float], list[ADRecord]] = defaultdict(list)
    for ad in unnamed:
        pending[key(ad)].append(ad)
    merged: list[ADRecord] = []
    only_named: list[ADRecord] = []
    for ad in named:
        partners = pending.get(key(ad))
        partner = partners.pop(0) if partners else None
        if partner is None:
            only_named.append(ad)
        merged.append(dataclasses.replace(
            ad, text_named=ad.text, text_unnamed=None if partner is None else partner.text,
        ))
    only_unnamed = [ad for ads in pending.values() for ad in ads]
    clash = _first_disagreement(only_named, only_unnamed)
    if clash is not None:
        n, u, count = clash
        raise DataFormatError(
            unnamed_path,
            f"{count} AD(s) have different times in the named and unnamed files, e.g. the named row "
            f"({n.start:.3f}-{n.end:.3f} s, {n.text!r}) of {named_path or 'the named file'} and the unnamed row "
            f"({u.start:.3f}-{u.end:.3f} s, {u.text!r}) of this file",
            "give the same AD the same start and end (to the millisecond) in both files, or remove the stray row "
            "from one of them",
            record=f"movie {u.movie!r}, {u.start:.3f}-{u.end:.3f} s",
        )
    merged.extend(dataclasses.replace(ad, text_named=None, text_unnamed=ad.text) for ad in only_unnamed)
    if only_named or only_unnamed:
        logger.warning(
            "named/unnamed merge: %d AD(s) only in the named file (no unnamed text), %d only in the unnamed file "
            "(their unnamed text is their target)", len(only_named), len(only_unnamed),
        )
    return sort_and_index(merged)
