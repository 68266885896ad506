"""Honest model selection: every data set's validation movies are disjoint from its test movies.

Pure functions, no I/O beyond the error they raise:

* :func:`carve_validation` takes ``n`` movies out of a training list, deterministically (sorted by the SHA-256 of the
  id, so independent of file order and of Python's hash seed);
* :func:`resolve_mad_splits` turns a MAD-style split JSON (``{"TRAIN": [...], "EVAL": [...], "VAL": [...]}``) and
  the ``data.mad.*_split`` keys into the movies of train, val and test. With ``val_split`` set, val is that key's
  movies (an error if any is also in the test key) and train is the train key minus them; with ``val_split`` None,
  val is ``data.val_movies`` movies carved from the train key (never from the test key). The choice is explicit:
  a split JSON that has a ``VAL`` key (toy world v2) is used only when ``data.mad.val_split=VAL`` says so;
* :func:`storyboard_splits`: Storyboard-v2's three disjoint sets of sorted movie ids (test last, val before it);
* :func:`split_overlaps`: the movies two or more loaded splits share (``moviead data-summary`` refuses them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from moviead.data.errors import DataFormatError

STAGE_NAMES = ("train", "val", "test")


def _digest(movie: str) -> str:
    return hashlib.sha256(movie.encode("utf-8")).hexdigest()


def carve_validation(train_movies: Sequence[str], n: int) -> tuple[list[str], list[str]]:
    """Split ``train_movies`` into (train, val): val is the ``n`` ids with the smallest SHA-256 (ties: the id).

    Both lists keep the order of ``train_movies``. The choice depends only on the set of ids and ``n``.

    Raises:
        ValueError: ``n`` < 1, or ``n`` >= the number of (distinct) movies (training would be left empty).
    """
    unique = list(dict.fromkeys(train_movies))
    if n < 1:
        raise ValueError(f"cannot carve {n} validation movie(s): need at least 1")
    if n >= len(unique):
        raise ValueError(f"cannot carve {n} validation movie(s) out of {len(unique)}: no training movie would be left")
    chosen = set(sorted(unique, key=lambda m: (_digest(m), m))[:n])
    return [m for m in unique if m not in chosen], [m for m in unique if m in chosen]


def resolve_mad_splits(
    split: Mapping[str, Sequence[str]],
    train_key: str,
    val_key: str | None,
    test_key: str,
    val_movies: int,
    path: str | Path | None = None,
    test_only: bool = False,
) -> dict[str, list[str]]:
    """The movie ids of ``train``, ``val`` and ``test`` of a MAD split JSON; val never shares a movie with test.

    Args:
        split: the split JSON (key → movie ids).
        train_key, val_key, test_key: ``data.mad.train_split``, ``.val_split`` (None: carve), ``.test_split``.
        val_movies: ``data.val_movies``, the number carved from the train key when ``val_key`` is None.
        path: the split file, for error messages.
        test_only: return only ``test`` (reading the test split needs no validation movies, so nothing is carved).

    Raises:
        DataFormatError: a key is missing; a val movie is also a test movie; carving is impossible (names the
            setting to change: ``data.val_movies`` or ``data.mad.val_split``).
    """
    for key, setting in ((train_key, "train_split"), (test_key, "test_split"), (val_key, "val_split")):
        if key is not None and key not in split:
            raise DataFormatError(path, f"no split named {key!r} (found {sorted(split)})", f"set data.mad.{setting}")
    test = list(split[test_key])
    if test_only:
        return {"test": test}
    if val_key is not None:
        val = list(split[val_key])
        shared = sorted(set(val) & set(test))
        if shared:
            raise DataFormatError(
                path, f"{len(shared)} movie(s) of the validation key {val_key!r} are also in the test key "
                f"{test_key!r}: {', '.join(shared[:5])}{', ...' if len(shared) > 5 else ''}",
                "model selection must not see test movies: set data.mad.val_split to a key disjoint from "
                f"data.mad.test_split, or data.mad.val_split=null to carve data.val_movies movies from {train_key!r}",
                record=f"split {val_key!r}",
            )
        excluded = set(val)
        return {"train": [m for m in split[train_key] if m not in excluded], "val": val, "test": test}
    test_set = set(test)
    candidates = [m for m in split[train_key] if m not in test_set]
    try:
        _, val = carve_validation(candidates, val_movies)
    except ValueError as err:
        raise DataFormatError(
            path, f"data.mad.val_split is not set and {err} (key {train_key!r}, test movies excluded)",
            f"set data.val_movies to fewer movies than {train_key!r} holds ({len(candidates)}), or name a disjoint "
            "validation key with data.mad.val_split (e.g. data.mad.val_split=VAL)",
            record=f"split {train_key!r}",
        ) from None
    chosen = set(val)
    return {"train": [m for m in split[train_key] if m not in chosen], "val": val, "test": test}


def storyboard_splits(movies: Iterable[str], fraction: float) -> dict[str, list[str]]:
    """Storyboard-v2's split of its (sorted) movie ids: test the last ``fraction`` (at least one), val the same
    number just before them, train the rest.

    Raises:
        ValueError: fewer than 3 movies (three disjoint sets need three).
    """
    ordered = sorted(set(movies))
    if len(ordered) < 3:
        raise ValueError(f"Storyboard-v2 needs at least 3 movies for disjoint train, val and test; found {len(ordered)}")
    n = max(1, round(len(ordered) * fraction))
    n = min(n, (len(ordered) - 1) // 2)  # leave at least one training movie
    return {"train": ordered[: len(ordered) - 2 * n], "val": ordered[-2 * n : -n], "test": ordered[-n:]}


def split_overlaps(movies: Mapping[str, Iterable[str]]) -> dict[tuple[str, str], list[str]]:
    """For each pair of splits (in :data:`STAGE_NAMES` order) that share movies, the sorted shared ids."""
    names = sorted(movies, key=lambda s: STAGE_NAMES.index(s) if s in STAGE_NAMES else len(STAGE_NAMES))
    sets = {name: set(movies[name]) for name in names}
    found: dict[tuple[str, str], list[str]] = {}
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            shared = sorted(sets[first] & sets[second])
            if shared:
                found[(first, second)] = shared
    return found
