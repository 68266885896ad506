"""FocusedAD's name accuracy on characters seen / unseen in training, for a Storyboard-v2 data config.

:func:`storyboard_name_scoring` returns a scoring function ``(references, predictions) -> scores`` (the shape of
``ScoringOptions.extra`` in :mod:`moviead.evaluation.scoring`) built from the Storyboard-v2 records: the candidate
names are every movie's main characters, and a name is seen when it occurs in the synopses of the training split's
movies (:func:`moviead.data.val_split.storyboard_splits`, the split ``moviead train`` uses).

``moviead evaluate`` uses it on Storyboard-v2 data (``evaluation/commands.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from moviead.data.formats.storyboard import read_storyboard_json
from moviead.data.val_split import storyboard_splits
from moviead.metrics.names import name_accuracy_by_seen, seen_names


def storyboard_name_sets(annotations: str | Path, val_fraction: float) -> tuple[list[str], set[str]]:
    """Every main-character name of the records (sorted) and those occurring in the training movies' synopses."""
    records = read_storyboard_json(annotations)
    train = set(storyboard_splits((r.movie_id for r in records), val_fraction)["train"])
    names = sorted({n for r in records for n in r.main_characters})
    return names, seen_names((r.synopsis for r in records if r.movie_id in train), names)


def storyboard_name_scoring(data_cfg: Any) -> Callable[[Sequence[str], Sequence[str]], dict[str, float]]:
    """The seen / unseen name accuracy of :func:`moviead.metrics.names.name_accuracy_by_seen` for the data config's
    Storyboard-v2 records (``data.root``, ``data.storyboard.annotations`` and ``val_fraction``)."""
    names, seen = storyboard_name_sets(Path(data_cfg.root) / data_cfg.storyboard.annotations,
                                       float(data_cfg.storyboard.val_fraction))

    def score(references: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
        return name_accuracy_by_seen(references, predictions, names, seen)

    return score
