"""Character recognition with the best-query bank (FocusedAD eqs. 5-6) and the threshold sweep (Fig. 7).

A face f is character argmin_c ||f − q_c||² when that character's L2 distance ||f − q_c|| is below τ, else
``"other"``. τ is on the L2 distance, not its square, as in FocusedAD's released code (which accepts
distance < 1.3); the argmin is the same either way. Faces whose detector confidence is below the minimum
(0.7) are skipped: they are neither recognised nor counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from moviead.data.records import CharacterBox
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

    A detection is kept when its confidence is >= ``min_confidence``, its label is not ``"other"``, its stored
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
