"""Character recognition with the best-query bank (FocusedAD eqs. 5-6) and the threshold sweep (Fig. 7).

A face f is character argmin_c ||f − q_c||² when that character's L2 distance ||f − q_c|| is below τ, else
``"other"``. τ is on the L2 distance, not its square, as in FocusedAD's released code (which accepts
distance < 1.3); the argmin is the same either way. Faces whose detector confidence is below the minimum
(0.7) are skipped: they are neither recognised nor counted.

Storyboard-v2 clips (:func:`recognise_record`) are recognised the same way, from each detection's face embedding
and the best queries of the clip's movie: the names stored with the detections are never the recognised names,
only the ground truth that :func:`recognition_accuracy` scores against (``true characters`` when the file has
them). A detection without an embedding is a :class:`~moviead.data.errors.DataFormatError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from moviead.data.errors import DataFormatError
from moviead.data.records import CharacterBox, StoryboardRecord
from moviead.focused.face_sets import OTHER, FaceSet

DEFAULT_THRESHOLD = 1.3
MIN_CONFIDENCE = 0.7

Bank = Mapping[str, Mapping[str, np.ndarray]]
"""imdbid → name → (1, D) or (D,) best query, as :func:`moviead.data.formats.storyboard.read_best_query_bank` reads."""


def nearest_queries(faces: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For faces (N, D) and queries (C, D): the nearest query's index (N,) int64 and its L2 distance (N,) float64."""
    faces, queries = np.asarray(faces, dtype=np.float64), np.asarray(queries, dtype=np.float64)
    squared = ((faces[:, None, :] - queries[None, :, :]) ** 2).sum(-1)  # (N, C)
    index = squared.argmin(1)
    return index, np.sqrt(squared[np.arange(len(faces)), index])


def recognise(faces: np.ndarray, queries: np.ndarray, names: Sequence[str], threshold: float) -> list[str]:
    """Name of each face (N, D): its nearest query's name (queries (C, D), ``names`` (C,)) when the L2 distance is
    below ``threshold``, else ``"other"``. No queries: every face is ``"other"``."""
    if len(names) != len(queries):
        raise ValueError(f"{len(queries)} queries but {len(names)} names")
    if len(faces) == 0:
        return []
    if len(queries) == 0:
        return [OTHER] * len(faces)
    index, distance = nearest_queries(faces, queries)
    return [names[i] if d < threshold else OTHER for i, d in zip(index.tolist(), distance.tolist())]


def _movie_queries(bank: Bank, movie: str, dim: int) -> tuple[list[str], np.ndarray]:
    characters = bank.get(movie, {})
    names = sorted(characters)
    queries = np.stack([np.asarray(characters[n], dtype=np.float64).reshape(-1) for n in names]) if names else (
        np.zeros((0, dim)))
    if names and queries.shape[1] != dim:
        raise ValueError(f"the bank's queries of {movie} are {queries.shape[1]}-d but the faces are {dim}-d")
    return names, queries


def recognise_face_set(faces: FaceSet, bank: Bank, threshold: float, min_confidence: float = MIN_CONFIDENCE
                       ) -> tuple[np.ndarray, list[str]]:
    """Recognise every face of ``faces`` with its movie's queries.

    Returns:
        the (N,) bool mask of faces kept (confidence >= ``min_confidence``) and the kept faces' names.

    Raises:
        KeyError: a movie of ``faces`` has no queries in ``bank``.
    """
    missing = sorted(set(faces.movies.tolist()) - set(bank))
    if missing:
        raise KeyError(f"no best queries for movies {missing[:5]}: build them with `moviead build-char-bank`")
    keep = faces.confidences >= min_confidence
    kept = faces.select(keep)
    predictions = np.empty(len(kept), dtype=object)
    for movie in sorted(set(kept.movies.tolist())):
        rows = np.nonzero(kept.movies == movie)[0]
        names, queries = _movie_queries(bank, movie, kept.embeddings.shape[1])
        predictions[rows] = recognise(kept.embeddings[rows], queries, names, threshold)
    return keep, [str(p) for p in predictions]


@dataclass(frozen=True)
class SweepPoint:
    """Recognition accuracy at one threshold: correct / total over the faces kept by the confidence filter."""

    threshold: float
    accuracy: float
    correct: int
    total: int


def sweep_thresholds(faces: FaceSet, bank: Bank, thresholds: Sequence[float],
                     min_confidence: float = MIN_CONFIDENCE) -> list[SweepPoint]:
    """Accuracy of :func:`recognise_face_set` at each threshold; a face is right when its name (or ``"other"``)
    equals its label."""
    points = []
    for threshold in thresholds:
        keep, predicted = recognise_face_set(faces, bank, float(threshold), min_confidence)
        labels = faces.labels[keep].tolist()
        correct = sum(p == label for p, label in zip(predicted, labels))
        points.append(SweepPoint(float(threshold), correct / len(labels) if labels else 0.0, correct, len(labels)))
    return points


def recognised_detections(
    detections: Sequence[CharacterBox], known: set[str] | None, threshold: float = DEFAULT_THRESHOLD,
    min_confidence: float = MIN_CONFIDENCE, max_characters: int | None = None,
) -> list[CharacterBox]:
    """The detections of a Storyboard-v2 clip that name a character, in detection order.

    For FocusedAD the detections are those of :func:`recognise_record` (names and distances from the embeddings and
    the bank); on a file's detections as stored it would trust their labels. A detection is kept when its confidence is >= ``min_confidence``, its label is not ``"other"``, its stored
    face distance is < ``threshold`` and, when ``known`` is given (the movie's best-query names), its name is
    one of them. A name detected twice keeps its closest face. At most ``max_characters`` are kept.
    """
    closest: dict[str, CharacterBox] = {}
    for box in detections:
        if box.confidence < min_confidence or box.name == OTHER or not box.distance < threshold:
            continue
        if known is not None and box.name not in known:
            continue
        if box.name not in closest or box.distance < closest[box.name].distance:
            closest[box.name] = box
    kept = [box for box in detections if closest.get(box.name) is box]
    return kept[:max_characters] if max_characters is not None else kept


# facenet-pytorch without its dependencies: its metadata pins torch < 2.3; its code runs on the project's torch
FACENET_INSTALL = "pip install --no-deps facenet-pytorch==2.6.0"
EMBEDDING_FIX = (
    "store a face embedding per detection under 'face embeddings' (one list of D numbers per detection, in "
    "detection order), computed with the FaceNet model that built the best-query bank: "
    "moviead.focused.faces.record_detections(frame, load_face_embedder(WEIGHTS), queries, tau) on the clip's key "
    f"frames gives both keys (WEIGHTS as for `moviead build-char-bank --weights`; `{FACENET_INSTALL}`)"
)


@dataclass(frozen=True)
class MovieQueries:
    """One movie's best queries: names (C,) sorted and their vectors (C, D) float64."""

    names: tuple[str, ...]
    vectors: np.ndarray


def movie_queries(bank: Bank) -> dict[str, MovieQueries]:
    """The bank (imdbid → name → (1, D)) as :class:`MovieQueries` per movie."""
    out = {}
    for movie, characters in bank.items():
        names = tuple(sorted(characters))
        vectors = (np.stack([np.asarray(characters[n], dtype=np.float64).reshape(-1) for n in names]) if names
                   else np.zeros((0, 0)))
        out[str(movie)] = MovieQueries(names, vectors)
    return out


def recognise_record(
    record: StoryboardRecord, queries: MovieQueries | None, threshold: float = DEFAULT_THRESHOLD,
    min_confidence: float = MIN_CONFIDENCE, source: str | Path | None = None,
) -> StoryboardRecord:
    """``record`` with every detection named from its face embedding (eqs. 5-6): the nearest best query of the movie
    when its L2 distance is below ``threshold``, else ``"other"``; ``distance`` becomes that nearest distance.

    Detections less confident than ``min_confidence`` are not recognised: they become ``"other"`` (with their
    nearest distance) and :func:`recognised_detections` skips them anyway. Each detection keeps its ground truth
    (``truth``: the file's ``true characters``, else the name stored with it). ``queries`` None or empty (a movie
    absent from the bank): every face is ``"other"`` at distance inf.

    Raises:
        DataFormatError: a detection without an embedding (naming ``source``, the record and the detection), or an
            embedding of another dimension than the bank's.
    """
    if not record.detections:
        return record
    where = f"global_id {record.global_id!r} (movie {record.movie_id})"
    missing = [i for i, box in enumerate(record.detections) if box.embedding is None]
    if missing:
        raise DataFormatError(source, f"detection {missing[0]} ({record.detections[missing[0]].name!r}) has no face "
                              "embedding, so it cannot be recognised with the best-query bank", EMBEDDING_FIX, where)
    faces = np.asarray([box.embedding for box in record.detections], dtype=np.float64)
    if queries is None or not queries.names:
        names, distance = [OTHER] * len(faces), np.full(len(faces), np.inf)
    else:
        if queries.vectors.shape[1] != faces.shape[1]:
            raise DataFormatError(source, f"face embeddings are {faces.shape[1]}-d but the best queries of "
                                  f"{record.movie_id} are {queries.vectors.shape[1]}-d", EMBEDDING_FIX, where)
        index, distance = nearest_queries(faces, queries.vectors)
        names = [queries.names[i] if d < threshold else OTHER for i, d in zip(index.tolist(), distance.tolist())]
    boxes = tuple(
        replace(box, name=name if box.confidence >= min_confidence else OTHER, distance=float(d), truth=box.reference)
        for box, name, d in zip(record.detections, names, distance.tolist()))
    return replace(record, detections=boxes)


@dataclass(frozen=True)
class RecognitionScore:
    """Recognition of detections with a ground-truth name, confidence >= the minimum (the others are skipped).

    ``correct / total`` overall; ``named_*``: detections whose truth is a character of the movie's bank (right
    when recognised as that name); ``other_*``: truth ``"other"`` or a name absent from the bank (right when
    recognised as ``"other"``: the unknown face is not given a main character's name).
    """

    correct: int = 0
    total: int = 0
    named_correct: int = 0
    named_total: int = 0
    other_correct: int = 0
    other_total: int = 0

    @property
    def accuracy(self) -> float:
        return _ratio(self.correct, self.total)

    def scores(self) -> dict[str, float]:
        return {"accuracy": self.accuracy, "named_accuracy": _ratio(self.named_correct, self.named_total),
                "other_accuracy": _ratio(self.other_correct, self.other_total), "detections": float(self.total),
                "named_detections": float(self.named_total), "other_detections": float(self.other_total)}


def _ratio(part: int, whole: int) -> float:
    """``part / whole``, NaN when there is nothing to count."""
    return part / whole if whole else float("nan")


def recognition_accuracy(recognised: Sequence[StoryboardRecord], bank_names: Mapping[str, Sequence[str]],
                         min_confidence: float = MIN_CONFIDENCE) -> RecognitionScore:
    """Score the names of :func:`recognise_record`'s output against each detection's ``truth``.

    ``bank_names``: imdbid → the bank's names (a ground-truth name outside them counts as ``"other"``).
    Detections without ``truth`` or below ``min_confidence`` are not counted.
    """
    counts = dict.fromkeys(("correct", "total", "named_correct", "named_total", "other_correct", "other_total"), 0)
    for record in recognised:
        known = set(bank_names.get(record.movie_id, ()))
        for box in record.detections:
            if box.truth is None or box.confidence < min_confidence:
                continue
            expected = box.truth if box.truth in known else OTHER
            right = int(box.name == expected)
            kind = "other" if expected == OTHER else "named"
            counts["correct"] += right
            counts["total"] += 1
            counts[f"{kind}_correct"] += right
            counts[f"{kind}_total"] += 1
    return RecognitionScore(**counts)
