"""Storyboard-v2 (FocusedAD) records and the best-query character bank.

Record JSON: a list of records, or an object ``{id: record}``. Each record::

    {"movie_id": "tt0926084", "global_id": 1257, "type": 1, "resolution": [800, 1920],
     "main characters": ["ANNA", "BEN"], "#characters": 2,
     "synopses": "ANNA ...",                       # the AD: a string, or a list of strings (joined by a space)
     "movie_clips": "movie_clips/tt0926084/1257/5.mp4",
     "detect characters": [{"ANNA": [x1, y1, x2, y2, conf, dist]}, ...],  # optional, each dict 1+ names
     "face embeddings": [[e1, ..., eD], ...],      # optional (ours): one per detection, in detection order
     "true characters": ["ANNA", "other", ...],    # optional (ours): ground truth per detection, for scoring only
     "frame boxes": [[[x1, y1, x2, y2], ...], ...]}  # optional (ours): per detection (or null), its box on each
                                                   # feature frame of the clip (T boxes, pixels): a tracked character

``type`` is 1 (main characters only), 2 (main and other characters) or 3 (no main character). The detections are
numbered in file order (a dict with two names gives two detections). A detection's stored name is not what
FocusedAD uses: Stage-II recognises each face again from its embedding with the best-query bank
(:mod:`moviead.focused.recognition`); the stored names (or ``true characters`` when given) are the ground truth
recognition is scored against. ``moviead recognise`` rewrites the names and distances with a given bank.

Best-query bank: ``best_query/{imdbid}/{NAME}.npy``, each float32 of shape (1, D), L2-normalised.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from moviead.data.errors import DataFormatError
from moviead.data.formats._validate import load_json, require_id, require_keys, require_text
from moviead.data.records import CharacterBox, StoryboardRecord

logger = logging.getLogger(__name__)

KEYS = ("movie_id", "global_id", "type", "resolution", "main characters", "#characters", "synopses", "movie_clips")
DETECTIONS = "detect characters"
EMBEDDINGS = "face embeddings"
TRUTH = "true characters"
FRAME_BOXES = "frame boxes"
NORM_TOLERANCE = 1e-3
_SAFE_NAME = re.compile(r"^[^/\\\x00]+$")


_JSON_NUMBERS = frozenset((int, float))


def _all_numbers(values: list[Any]) -> bool:
    """Every item a finite JSON number (an int or a float, not a bool), checked without a Python call per item (a
    face embedding has hundreds; a Storyboard-v2 file, thousands of them)."""
    return set(map(type, values)) <= _JSON_NUMBERS and all(map(math.isfinite, values))


def _bad(path: Path, record: str, key: str, expected: str, value: Any, fix: str) -> DataFormatError:
    return DataFormatError(path, f"{key!r} must be {expected}, found {value!r}", fix, record)


def _detections(path: Path, record: str, value: Any) -> tuple[CharacterBox, ...]:
    fix = 'write detections as [{"NAME": [x1, y1, x2, y2, confidence, distance]}, ...]'
    if not isinstance(value, list):
        raise _bad(path, record, DETECTIONS, "a list of {name: box} objects", value, fix)
    boxes = []
    for item in value:
        if not isinstance(item, dict) or not item:
            raise _bad(path, record, DETECTIONS, "a list of non-empty {name: box} objects", item, fix)
        for name, box in item.items():
            if not isinstance(box, list) or len(box) != 6 or not _all_numbers(box):
                raise _bad(path, record, f"{DETECTIONS}: {name}", "6 numbers [x1, y1, x2, y2, conf, dist]", box, fix)
            x1, y1, x2, y2, confidence, distance = (float(x) for x in box)
            if x2 < x1 or y2 < y1:
                raise _bad(path, record, f"{DETECTIONS}: {name}", "a box with x1 <= x2 and y1 <= y2", box, fix)
            boxes.append(CharacterBox(str(name), (x1, y1, x2, y2), confidence, distance))
    return tuple(boxes)


def _with_extras(path: Path, record: str, obj: Any, boxes: tuple[CharacterBox, ...]) -> tuple[CharacterBox, ...]:
    """``boxes`` with the record's optional ``face embeddings`` and ``true characters`` attached, in order."""
    embeddings, truth = obj.get(EMBEDDINGS), obj.get(TRUTH)
    fix = f"give one entry per detection of {DETECTIONS!r}, in the same order"
    if embeddings is not None:
        if not isinstance(embeddings, list) or len(embeddings) != len(boxes):
            found = len(embeddings) if isinstance(embeddings, list) else embeddings
            raise _bad(path, record, EMBEDDINGS, f"a list of {len(boxes)} embeddings (one per detection)", found, fix)
        dims = set()
        for i, vector in enumerate(embeddings):
            if vector is None:
                continue
            if not isinstance(vector, list) or not vector or not _all_numbers(vector):
                raise _bad(path, record, f"{EMBEDDINGS}[{i}]", "a list of finite numbers", str(vector)[:60],
                           "write each face embedding as a list of D numbers (or null)")
            dims.add(len(vector))
        if len(dims) > 1:
            raise _bad(path, record, EMBEDDINGS, "embeddings of one dimension", sorted(dims), "embed every face alike")
        boxes = tuple(box if e is None else replace(box, embedding=tuple(map(float, e)))
                      for box, e in zip(boxes, embeddings))
    if truth is not None:
        if (not isinstance(truth, list) or len(truth) != len(boxes)
                or not all(t is None or (isinstance(t, str) and t.strip()) for t in truth)):
            raise _bad(path, record, TRUTH, f"a list of {len(boxes)} names (one per detection, or null)", truth, fix)
        boxes = tuple(box if t is None else replace(box, truth=t.strip()) for box, t in zip(boxes, truth))
    return _with_frame_boxes(path, record, obj.get(FRAME_BOXES), boxes)


def _with_frame_boxes(path: Path, record: str, tracks: Any, boxes: tuple[CharacterBox, ...]
                      ) -> tuple[CharacterBox, ...]:
    """``boxes`` with the record's optional per-frame boxes (one track, or null, per detection) attached."""
    if tracks is None:
        return boxes
    fix = f"give one list of [x1, y1, x2, y2] per feature frame (or null) for each detection of {DETECTIONS!r}"
    if not isinstance(tracks, list) or len(tracks) != len(boxes):
        found = len(tracks) if isinstance(tracks, list) else tracks
        raise _bad(path, record, FRAME_BOXES, f"a list of {len(boxes)} box tracks (one per detection)", found, fix)
    out = []
    for i, (box, track) in enumerate(zip(boxes, tracks)):
        if track is None:
            out.append(box)
            continue
        if (not isinstance(track, list) or not track
                or not all(isinstance(b, list) and len(b) == 4 and _all_numbers(b) for b in track)):
            raise _bad(path, record, f"{FRAME_BOXES}[{i}]", "a non-empty list of [x1, y1, x2, y2]", str(track)[:60], fix)
        if any(b[2] < b[0] or b[3] < b[1] for b in track):
            raise _bad(path, record, f"{FRAME_BOXES}[{i}]", "boxes with x1 <= x2 and y1 <= y2", str(track)[:60], fix)
        out.append(replace(box, frame_boxes=tuple((float(a), float(b), float(c), float(d)) for a, b, c, d in track)))
    return tuple(out)


def _record(path: Path, record: str, obj: Any) -> StoryboardRecord:
    require_keys(path, record, obj, KEYS)
    clip_type = obj["type"]
    if type(clip_type) is not int or clip_type not in (1, 2, 3):
        fix = "set type to 1 (main only), 2 (main + others) or 3 (none)"
        raise _bad(path, record, "type", "1, 2 or 3", clip_type, fix)
    resolution = obj["resolution"]
    if (not isinstance(resolution, list) or len(resolution) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in resolution)):
        raise _bad(path, record, "resolution", "[height, width] in pixels", resolution, "write it as e.g. [800, 1920]")
    names = obj["main characters"]
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise _bad(path, record, "main characters", "a list of names", names, 'write it as e.g. ["ANNA", "BEN"] or []')
    count = obj["#characters"]
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise _bad(path, record, "#characters", "a non-negative integer", count, "give the number of characters")
    synopsis = obj["synopses"]
    if isinstance(synopsis, list):
        if not all(isinstance(s, str) for s in synopsis):
            raise _bad(path, record, "synopses", "a string or a list of strings", synopsis, "write the AD as text")
        synopsis = " ".join(s.strip() for s in synopsis if s.strip())
    clip_path = obj["movie_clips"]
    if not isinstance(clip_path, str) or not clip_path.strip():
        fix = "give the path of the clip, e.g. movie_clips/ID/1.mp4"
        raise _bad(path, record, "movie_clips", "the clip's path", clip_path, fix)
    return StoryboardRecord(
        movie_id=require_id(path, record, "movie_id", obj["movie_id"]),
        global_id=require_id(path, record, "global_id", obj["global_id"]),
        clip_type=clip_type,
        resolution=(resolution[0], resolution[1]),
        main_characters=tuple(n.strip() for n in names),
        num_characters=count,
        synopsis=require_text(path, record, "synopses", synopsis),
        clip_path=clip_path.strip(),
        detections=_with_extras(path, record, obj, _detections(path, record, obj.get(DETECTIONS, []))),
    )


def storyboard_items(path: str | Path) -> tuple[Any, list[tuple[str, Any, StoryboardRecord]]]:
    """The parsed JSON of a Storyboard-v2 file and, in file order, each record's (where, JSON object, record),
    duplicates included (what a tool rewriting the file in place needs)."""
    path = Path(path)
    data = load_json(path)
    if isinstance(data, list):
        items = [(f"item {i}", obj) for i, obj in enumerate(data)]
    elif isinstance(data, dict):
        items = [(f"key {key!r}", obj) for key, obj in data.items()]
    else:
        raise DataFormatError(
            path, f"expected a JSON list of records (or an object of id -> record), found {type(data).__name__}",
            "use FocusedAD's Storyboard-v2 JSON",
        )
    return data, [(where, obj, _record(path, where, obj)) for where, obj in items]


def detections_json(detections: tuple[CharacterBox, ...]) -> dict[str, list[Any]]:
    """The record keys that hold ``detections``: ``detect characters`` (one {name: [x1, y1, x2, y2, conf, dist]}
    each) and, when any detection has them, ``face embeddings`` and ``true characters``."""
    out: dict[str, list[Any]] = {DETECTIONS: [{b.name: [*b.box, b.confidence, b.distance]} for b in detections]}
    if any(b.embedding is not None for b in detections):
        out[EMBEDDINGS] = [None if b.embedding is None else list(b.embedding) for b in detections]
    if any(b.truth is not None for b in detections):
        out[TRUTH] = [b.truth for b in detections]
    return out


def read_storyboard_json(path: str | Path) -> list[StoryboardRecord]:
    """Read Storyboard-v2 records (a JSON list, or an object of id -> record), in file order.

    A record equal in every field to an earlier one is dropped; the count is logged.
    """
    path = Path(path)
    _, items = storyboard_items(path)
    records: list[StoryboardRecord] = []
    seen: set[StoryboardRecord] = set()
    duplicates: list[str] = []
    for where, _, parsed in items:
        if parsed in seen:
            duplicates.append(where)
            continue
        seen.add(parsed)
        records.append(parsed)
    if duplicates:
        shown = ", ".join(duplicates[:5]) + (", ..." if len(duplicates) > 5 else "")
        logger.warning("%s: %d exact duplicate record(s) dropped (%s)", path, len(duplicates), shown)
    return records


def _bank_dir(root: Path) -> Path:
    nested = root / "best_query"
    return nested if nested.is_dir() else root


def read_best_query_bank(root: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Read ``{imdbid: {NAME: vector}}`` from ``root/{imdbid}/{NAME}.npy`` (``root`` is the ``best_query``
    folder, or a folder containing it). Vectors are float32 of shape (1, D), L2-normalised, one D for all.

    Raises:
        DataFormatError: no bank found, or a file that is not (1, D), not finite, not unit norm (within
        1e-3) or of another D than the rest, naming the file.
    """
    bank_dir = _bank_dir(Path(root))
    files = sorted(bank_dir.glob("*/*.npy")) if bank_dir.is_dir() else []
    if not files:
        raise DataFormatError(
            bank_dir, "no best-query vectors found (expected best_query/{imdbid}/{NAME}.npy)",
            "point the data config at the best_query folder, or build the bank (write_best_query)",
        )
    bank: dict[str, dict[str, np.ndarray]] = {}
    dim: int | None = None
    for file in files:
        fix = "rebuild this vector with write_best_query (float32, shape (1, D), L2-normalised)"
        try:
            vector = np.load(file, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataFormatError(file, f"not a readable .npy array ({exc})", fix) from exc
        if vector.ndim != 2 or vector.shape[0] != 1 or vector.shape[1] < 1 or vector.dtype.kind != "f":
            found = f"{vector.dtype} {vector.shape}"
            raise DataFormatError(file, f"expected a float array of shape (1, D), found {found}", fix)
        if dim is not None and vector.shape[1] != dim:
            raise DataFormatError(file, f"dimension {vector.shape[1]} differs from the bank's {dim}", fix)
        dim = vector.shape[1]
        vector = vector.astype(np.float32, copy=False)
        norm = float(np.linalg.norm(vector)) if np.isfinite(vector).all() else math.nan
        if not abs(norm - 1.0) <= NORM_TOLERANCE:
            raise DataFormatError(file, f"the vector's L2 norm is {norm:.6g}, not 1 (within {NORM_TOLERANCE})", fix)
        bank.setdefault(file.parent.name, {})[file.stem] = vector
    return bank


def write_best_query(root: str | Path, imdbid: str, name: str, vector: np.ndarray) -> Path:
    """L2-normalise ``vector`` (shape (D,) or (1, D)) and save it as float32 (1, D) to ``root/imdbid/NAME.npy``.

    ``root`` is the ``best_query`` folder. Returns the written path.
    """
    for label, value in (("imdbid", imdbid), ("name", name)):
        if not _SAFE_NAME.match(str(value)) or str(value) in (".", ".."):
            raise ValueError(f"{label} {value!r} cannot be used as a file name")
    array = np.asarray(vector, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[0] != 1 or array.shape[1] < 1:
        raise ValueError(f"expected a vector of shape (D,) or (1, D), got {array.shape}")
    norm = float(np.linalg.norm(array))
    if not math.isfinite(norm) or norm == 0.0:
        raise ValueError(f"cannot normalise a vector with norm {norm}")
    out = Path(root) / str(imdbid) / f"{name}.npy"
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, (array / norm).astype(np.float32))
    return out
