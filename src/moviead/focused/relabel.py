"""Re-label a Storyboard-v2 record file with a best-query bank (``moviead recognise``).

Every detection is recognised again from its face embedding (:func:`moviead.focused.recognition.recognise_record`):
its name becomes the recognised character (or ``"other"``) and its distance the L2 distance to the nearest best
query; its ground truth is kept under ``true characters`` (the file's, else the name it was stored with), so that
re-labelling a re-labelled file with another bank scores against the same truth. The other keys of each record
are kept as they are. The file is written atomically (a temporary file in the same folder, then renamed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from moviead.atomic_files import write_text_atomically
from moviead.data.errors import DataFormatError
from moviead.data.formats.storyboard import detections_json, read_best_query_bank, storyboard_items
from moviead.data.records import StoryboardRecord
from moviead.focused.recognition import (
    DEFAULT_THRESHOLD,
    MIN_CONFIDENCE,
    RecognitionScore,
    movie_queries,
    recognise_record,
    recognition_accuracy,
)


@dataclass(frozen=True)
class RelabelResult:
    """The re-labelled records (file order, duplicates included) and their recognition score."""

    records: list[StoryboardRecord]
    score: RecognitionScore


def write_json_atomic(path: str | Path, obj: object) -> Path:
    """Write ``obj`` as UTF-8 JSON (indent 1) to ``path`` atomically."""
    return write_text_atomically(path, json.dumps(obj, indent=1, ensure_ascii=False) + "\n")


def relabel_records(records_path: str | Path, bank_dir: str | Path, out: str | Path | None,
                    threshold: float = DEFAULT_THRESHOLD, min_confidence: float = MIN_CONFIDENCE) -> RelabelResult:
    """Recognise every detection of ``records_path`` with the bank of ``bank_dir`` (a ``best_query`` folder) and
    write the re-labelled file to ``out`` (None: write nothing).

    Raises:
        DataFormatError: an unreadable record file or bank, a movie with detections but no best queries in the bank,
            or a detection without a face embedding.
    """
    data, items = storyboard_items(records_path)
    bank = read_best_query_bank(bank_dir)
    queries = movie_queries(bank)
    missing = sorted({record.movie_id for _, _, record in items if record.detections} - set(queries))
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise DataFormatError(bank_dir, f"no best queries for {len(missing)} movie(s) with detections ({shown})",
                              "build their bank with `moviead build-char-bank`, or leave their records out")
    recognised = []
    for _, obj, record in items:
        relabelled = recognise_record(record, queries.get(record.movie_id), threshold, min_confidence, records_path)
        recognised.append(relabelled)
        if relabelled.detections:
            obj.update(detections_json(relabelled.detections))
    if out is not None:
        write_json_atomic(out, data)
    score = recognition_accuracy(recognised, {m: q.names for m, q in queries.items()}, min_confidence)
    return RelabelResult(recognised, score)
