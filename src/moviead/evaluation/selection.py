"""The split a run selected its checkpoint on: ``<run>/selection.json``, written when training starts and read by
``moviead evaluate`` to say whether its scores are honest.

``selection.json`` holds ``{"monitor": "val/cider", "split": "val", "dataset": "toy", "movies": [sorted ids]}``.
Evaluating on a split that shares movies with it gives optimistic scores (``best.ckpt`` was chosen on those very
movies); :func:`describe_selection` words the line ``evaluate`` prints and the warning it gives then.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moviead.atomic_files import write_text_atomically

SELECTION_FILE = "selection.json"
BEST = "best.ckpt"


def write_selection(run_dir: str | Path, monitor: str, dataset: str, movies: Iterable[str],
                    split: str = "val") -> Path:
    """Write ``<run_dir>/selection.json`` atomically (temporary file, fsync, rename); returns its path."""
    record = {"monitor": monitor, "split": split, "dataset": dataset, "movies": sorted(set(movies))}
    return write_text_atomically(Path(run_dir) / SELECTION_FILE, json.dumps(record, indent=1) + "\n")


def read_selection(run_dir: str | Path) -> dict[str, Any] | None:
    """``<run_dir>/selection.json``, or None when it is missing or unreadable (a run from before it existed)."""
    path = Path(run_dir) / SELECTION_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("movies"), list) else None


@dataclass(frozen=True)
class SelectionReport:
    """What ``evaluate`` says about its checkpoint: ``line`` always; ``warning`` when the evaluated split shares
    movies with the selection split (``overlap``: those movies, sorted)."""

    line: str
    warning: str | None
    overlap: tuple[str, ...] = ()


def describe_selection(checkpoint: str | Path, selection: dict[str, Any] | None, split: str,
                       movies: Iterable[str]) -> SelectionReport:
    """The report for evaluating ``checkpoint`` on ``split`` (whose movie ids are ``movies``).

    ``best.ckpt`` was selected by the run's monitor on the selection movies; other checkpoints (``last.ckpt``, the
    export) hold the final weights, yet the run still validated on those movies, so an overlap is reported for them
    as well, in other words.
    """
    checkpoint = Path(checkpoint)
    if selection is None:
        return SelectionReport(f"checkpoint: {checkpoint} (selection split unknown: no {SELECTION_FILE} in its run "
                               "folder)", None)
    monitor = selection.get("monitor", "?")
    chosen = {str(m) for m in selection.get("movies", [])}
    where = f"{selection.get('split', '?')} split of {selection.get('dataset', '?')} ({len(chosen)} movies)"
    is_best = checkpoint.name == BEST
    line = (f"checkpoint: {checkpoint} (selected on the {where} by {monitor})" if is_best
            else f"checkpoint: {checkpoint} (final weights; the run validated on the {where}, monitor {monitor})")
    overlap = tuple(sorted(chosen & {str(m) for m in movies}))
    if not overlap:
        return SelectionReport(line, None)
    why = "was selected on" if is_best else "was validated on"
    warning = (f"WARNING: the {split} split shares {len(overlap)} movie(s) with the {where} that this checkpoint "
               f"{why} (by {monitor}): its scores are optimistic, not a held-out result "
               f"(shared: {', '.join(overlap[:5])}{', ...' if len(overlap) > 5 else ''})")
    return SelectionReport(line, warning, overlap)
