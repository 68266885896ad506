"""The streamed predictions file of an evaluation run, resumable after a kill.

``predictions.jsonl`` holds one JSON object per decoded AD, written and flushed as soon as its batch is decoded::

    {"movie": "tt0111", "index": 3, "start": 61.2, "end": 64.0, "gt": "...", "pred": "...",
     "context": ["previous AD used", ...], "selected": [0, 2]}

``run.json`` beside it records what produced the rows: the settings (checkpoint, mode, beams, split) and content
hashes of the checkpoint, the data, the subtitles and the resolved config (:func:`content_identity`); a rerun with
other settings, or whose inputs changed since (a retrained checkpoint at the same path, edited annotations), refuses
to append to them and names what changed (``--restart`` starts over). Opening the store reads the complete rows, drops a last line cut short by a kill
(rewriting the file through a temporary file and a rename), and reports which ADs are done, so a rerun decodes
exactly the missing ones: no row lost, none duplicated. A bad row in the middle of the file (not a cut-short last
one) is refused with :class:`CorruptPredictionsError`, which says how to recover. The store refuses a folder that
another process is writing (:mod:`moviead.evaluation.locks`).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from moviead.atomic_files import write_text_atomically
from moviead.evaluation.identity import describe_change
from moviead.evaluation.locks import check_not_locked
from moviead.export import write_jsonl

log = logging.getLogger(__name__)

ROW_KEYS = ("movie", "index", "start", "end", "gt", "pred", "context")
PREDICTIONS_FILE = "predictions.jsonl"
RUN_FILE = "run.json"


class ResumeMismatchError(ValueError):
    """The output folder holds predictions made with other settings (or from other inputs) than this run's."""


class CorruptPredictionsError(ValueError):
    """A row in the middle of ``predictions.jsonl`` is not valid JSON (the file was edited or damaged)."""


def row_key(row: Mapping[str, Any]) -> tuple[str, int]:
    """(movie, index): what identifies an AD."""
    return str(row["movie"]), int(row["index"])


class PredictionStore:
    """Append-only predictions of one run in ``folder`` (``predictions.jsonl`` + ``run.json``).

    Args:
        folder: the output folder (created).
        settings: what produced the rows (JSON-serialisable); compared with the stored ``run.json``.
        restart: discard earlier rows instead of resuming.

    Raises:
        ResumeMismatchError: earlier rows were produced with different ``settings`` (and not ``restart``).
    """

    def __init__(self, folder: str | Path, settings: Mapping[str, Any], restart: bool = False) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / PREDICTIONS_FILE
        run_file = self.folder / RUN_FILE
        settings = json.loads(json.dumps(dict(settings)))  # as it will read back
        check_not_locked(self.folder)
        if restart:
            self.path.unlink(missing_ok=True)
        if self.path.exists() and run_file.exists():
            stored = json.loads(run_file.read_text(encoding="utf-8"))
            if stored != settings:
                raise ResumeMismatchError(f"{self.path} was written by another run: {describe_change(stored, settings)}; "
                                          "use another output folder, or --restart to discard those predictions")
        write_text_atomically(run_file, json.dumps(settings, indent=2) + "\n")
        self.rows: list[dict[str, Any]] = []
        if self.path.exists():
            self.rows = self._load_complete_rows()
        self.done = {row_key(row) for row in self.rows}
        if len(self.done) != len(self.rows):
            raise ValueError(f"{self.path} holds duplicate (movie, index) rows; it was not written by this evaluator")

    def _load_complete_rows(self) -> list[dict[str, Any]]:
        rows = _read_rows(self.path)
        with open(self.path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            last = b"\n"
            if size:
                handle.seek(size - 1)
                last = handle.read(1)
        if last != b"\n":  # a row cut short by a kill: rewrite the file without it
            write_text_atomically(self.path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            log.warning("%s: dropped an incomplete last row; it will be decoded again", self.path)
        if rows:
            log.info("resuming %s: %d predictions already done", self.path, len(rows))
        return rows

    def append(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Write ``rows`` (each flushed) and sync the file; they count as done from now on."""
        rows = [dict(row) for row in rows]
        for row in rows:
            missing = [k for k in ROW_KEYS if k not in row]
            if missing:
                raise ValueError(f"prediction row without {missing}: {row}")
            if row_key(row) in self.done:
                raise ValueError(f"prediction for {row_key(row)} is already in {self.path}")
        write_jsonl(rows, self.path, append=True)
        with open(self.path, "rb+") as handle:
            os.fsync(handle.fileno())
        self.rows.extend(rows)
        self.done.update(row_key(row) for row in rows)


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """The complete rows of ``path``; a last line cut short by a kill is left out (it is decoded again).

    Raises:
        CorruptPredictionsError: a line before the last is not a JSON object (says how to recover).
    """
    lines = path.read_text(encoding="utf-8").split("\n")
    rows: list[dict[str, Any]] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            problem = None if isinstance(row, dict) else f"a JSON {type(row).__name__}, not an object"
        except ValueError as err:
            problem = str(err)
        if problem is not None:
            if n == len(lines):  # after the final newline: the row a kill cut short
                warnings.warn(f"{path}: ignoring an incomplete last line ({len(line)} characters)", stacklevel=3)
                break
            raise CorruptPredictionsError(
                f"{path}:{n}: not a prediction row ({problem}); the {len(rows)} row(s) before it are intact. Recover: "
                f"rerun with --restart to decode everything again, or keep the first {n - 1} line(s) and resume "
                f"(`head -n {n - 1} {path} > {path}.ok && mv {path}.ok {path}`)"
            ) from None
        rows.append(row)
    return rows
