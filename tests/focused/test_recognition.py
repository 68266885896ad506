"""Recognition with a threshold τ (FocusedAD eqs. 5-6), the τ sweep, labelled-face files and clip detections."""

from __future__ import annotations

import numpy as np
import pytest

from moviead.data.errors import DataFormatError
from moviead.data.records import CharacterBox
from moviead.focused.face_sets import make_face_set, read_face_set, write_face_set
from moviead.focused.recognition import nearest_queries, recognise, recognised_detections, sweep_thresholds

QUERIES = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
NAMES = ["ANNA", "BEN"]


def test_nearest_query_and_its_l2_distance() -> None:
    faces = np.array([[0.6, 0.8, 0.0], [0.0, 0.0, 1.0]])
    index, distance = nearest_queries(faces, QUERIES)
    assert index.tolist() == [1, 0]  # ties go to the first query
    np.testing.assert_allclose(distance, [np.sqrt(0.6**2 + 0.2**2), np.sqrt(2)])


def test_faces_beyond_the_threshold_are_other() -> None:
    faces = np.array([[0.6, 0.8, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # distances 0.632, 1.414, 0
    assert recognise(faces, QUERIES, NAMES, threshold=1.3) == ["BEN", "other", "ANNA"]
    assert recognise(faces, QUERIES, NAMES, threshold=0.5) == ["other", "other", "ANNA"]
    assert recognise(faces, QUERIES, NAMES, threshold=np.sqrt(0.4)) == ["other", "other", "ANNA"]  # strict <
    assert recognise(faces, np.zeros((0, 3)), [], threshold=2.0) == ["other"] * 3


def test_sweep_counts_correct_faces_per_threshold_and_skips_unsure_ones() -> None:
    faces = make_face_set(
        [[0.6, 0.8, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.8, 0.6, 0.0]],
        labels=["BEN", "other", "ANNA", "ANNA"], movies=["tt01"] * 4, confidences=[0.9, 0.99, 0.95, 0.5])
    bank = {"tt01": {"ANNA": QUERIES[:1], "BEN": QUERIES[1:]}}
    points = sweep_thresholds(faces, bank, [0.5, 1.3, 1.5])
    assert [(p.correct, p.total) for p in points] == [(2, 3), (3, 3), (2, 3)]  # the 0.5-confidence face is skipped
    assert points[1].accuracy == 1.0
    with pytest.raises(KeyError, match="tt01"):
        sweep_thresholds(faces, {}, [1.0])


def test_face_sets_round_trip_through_npz_and_folder(tmp_path) -> None:
    faces = make_face_set([[3.0, 4.0], [0.0, 2.0]], ["ANNA", "other"], ["tt01", "tt01"], [0.9, 0.8])
    np.testing.assert_allclose(faces.embeddings, [[0.6, 0.8], [0.0, 1.0]])  # rows normalised
    back = read_face_set(write_face_set(faces, tmp_path / "faces.npz"))
    assert back.labels.tolist() == ["ANNA", "other"] and back.movies.tolist() == ["tt01", "tt01"]
    np.testing.assert_allclose(back.confidences, [0.9, 0.8])
    (tmp_path / "f" / "tt02" / "BEN").mkdir(parents=True)
    np.save(tmp_path / "f" / "tt02" / "BEN" / "a.npy", np.array([[1.0, 0.0], [0.0, 5.0]]))
    folder = read_face_set(tmp_path / "f")
    assert folder.labels.tolist() == ["BEN", "BEN"] and folder.movies.tolist() == ["tt02", "tt02"]
    np.testing.assert_allclose(folder.embeddings, [[1, 0], [0, 1]])
    with pytest.raises(DataFormatError, match="missing arrays"):
        np.savez(tmp_path / "bad.npz", embeddings=np.eye(2))
        read_face_set(tmp_path / "bad.npz")


def test_clip_detections_keep_confident_known_close_faces_once_each() -> None:
    boxes = [
        CharacterBox("ANNA", (0, 0, 10, 10), 0.9, 0.8),
        CharacterBox("other", (5, 5, 9, 9), 0.99, 1.5),
        CharacterBox("BEN", (1, 1, 4, 4), 0.6, 0.3),  # detector unsure: skipped
        CharacterBox("CARL", (2, 2, 6, 6), 0.95, 0.4),  # not in the bank
        CharacterBox("ANNA", (7, 7, 9, 9), 0.8, 0.5),  # ANNA again, closer: replaces the first
        CharacterBox("DORA", (3, 3, 5, 5), 0.9, 1.31),  # beyond τ
    ]
    kept = recognised_detections(boxes, {"ANNA", "BEN", "DORA"}, threshold=1.3)
    assert [(b.name, b.box) for b in kept] == [("ANNA", (7, 7, 9, 9))]
    given = recognised_detections(boxes, None, threshold=float("inf"))
    assert [b.name for b in given] == ["CARL", "ANNA", "DORA"]
    assert [b.name for b in recognised_detections(boxes, None, float("inf"), max_characters=2)] == ["CARL", "ANNA"]
