"""FocusedAD recognition from the faces' embeddings and the best-query bank's vectors (eqs. 5-6): exact labels at
τ, the confidence rule, the ground truth kept for scoring, and the error for a detection without an embedding."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from moviead.data.errors import DataFormatError
from moviead.data.formats.storyboard import read_storyboard_json
from moviead.data.records import CharacterBox, StoryboardRecord
from moviead.focused.recognition import MovieQueries, movie_queries, recognise_record, recognition_accuracy

# unit queries in 3-d: ANNA e1, BEN e2; distances below are L2 (τ is on the L2 distance, released code: 1.3)
BANK = {"tt01": {"BEN": np.array([[0.0, 1.0, 0.0]], np.float32), "ANNA": np.array([[1.0, 0.0, 0.0]], np.float32)}}


def _box(label: str, embedding, confidence: float = 0.9, truth: str | None = None) -> CharacterBox:
    return CharacterBox(label, (0.0, 0.0, 10.0, 10.0), confidence, 0.0,
                        None if embedding is None else tuple(map(float, embedding)), truth)


def _record(*boxes: CharacterBox, movie: str = "tt01") -> StoryboardRecord:
    return StoryboardRecord(movie, f"{movie}_0000", 1, (100, 100), ("ANNA", "BEN"), len(boxes), "ANNA runs.",
                            "clips/x.mp4", boxes)


def test_names_come_from_the_vectors_at_tau() -> None:
    near_anna = (0.8, 0.6, 0.0)  # 0.632 from ANNA, 0.894 from BEN
    between = (0.0, 0.0, 1.0)  # 1.414 from both
    ben_ish = (0.0, 0.6, 0.8)  # 0.894 from BEN, 1.265 from ANNA
    record = _record(_box("BEN", near_anna), _box("ANNA", between), _box("other", ben_ish),
                     _box("ANNA", near_anna, confidence=0.69))  # the labels stored are wrong on purpose
    queries = movie_queries(BANK)["tt01"]
    assert queries.names == ("ANNA", "BEN")
    got = recognise_record(record, queries, threshold=1.3)
    assert [b.name for b in got.detections] == ["ANNA", "other", "BEN", "other"]  # the last: confidence < 0.7
    assert [round(b.distance, 3) for b in got.detections] == [0.632, 1.414, 0.894, 0.632]
    assert [b.truth for b in got.detections] == ["BEN", "ANNA", "other", "ANNA"]  # the stored labels, for scoring
    assert [b.name for b in recognise_record(record, queries, threshold=0.7).detections] == [
        "ANNA", "other", "other", "other"]  # τ 0.7: only the face 0.632 from ANNA
    assert [b.name for b in recognise_record(record, queries, threshold=1.5).detections] == [
        "ANNA", "ANNA", "BEN", "other"]  # τ 1.5: the equidistant face goes to the first name (argmin)
    # the confidence rule: 0.7 itself is kept
    assert recognise_record(_record(_box("x", near_anna, 0.7)), queries).detections[0].name == "ANNA"


def test_changing_the_bank_changes_the_names() -> None:
    record = _record(_box("ANNA", (0.8, 0.6, 0.0)))
    swapped = {"tt01": {"ANNA": BANK["tt01"]["BEN"], "BEN": BANK["tt01"]["ANNA"]}}
    assert recognise_record(record, movie_queries(BANK)["tt01"]).detections[0].name == "ANNA"
    assert recognise_record(record, movie_queries(swapped)["tt01"]).detections[0].name == "BEN"
    # a movie without queries: every face is "other"
    assert recognise_record(record, None).detections[0].name == "other"
    assert recognise_record(record, MovieQueries((), np.zeros((0, 0)))).detections[0].distance == math.inf


def test_a_detection_without_an_embedding_is_an_error_naming_the_record() -> None:
    record = _record(_box("ANNA", (1.0, 0.0, 0.0)), _box("BEN", None))
    with pytest.raises(DataFormatError) as err:
        recognise_record(record, movie_queries(BANK)["tt01"], source="board.json")
    message = str(err.value)
    assert "board.json" in message and "tt01_0000" in message and "detection 1 ('BEN') has no face embedding" in message
    assert "face embeddings" in err.value.fix and "record_detections" in err.value.fix
    with pytest.raises(DataFormatError, match="2-d but the best queries of tt01 are 3-d"):
        recognise_record(_record(_box("ANNA", (1.0, 0.0))), movie_queries(BANK)["tt01"])


def test_recognition_accuracy_counts_named_and_unknown_faces() -> None:
    queries = movie_queries(BANK)
    record = _record(_box("x", (1.0, 0.0, 0.0), truth="ANNA"),  # right
                     _box("x", (0.0, 0.6, 0.8), truth="ANNA"),  # recognised BEN: wrong
                     _box("x", (0.0, 0.0, 1.0), truth="other"),  # other: right
                     _box("x", (0.0, 1.0, 0.0), truth="CARL"),  # not in the bank, recognised BEN: wrong
                     _box("x", (1.0, 0.0, 0.0), confidence=0.5, truth="BEN"))  # skipped
    score = recognition_accuracy([recognise_record(record, queries["tt01"])], {"tt01": queries["tt01"].names})
    assert (score.correct, score.total, score.named_correct, score.named_total) == (2, 4, 1, 2)
    assert (score.other_correct, score.other_total) == (1, 2) and score.accuracy == 0.5


def test_storyboard_json_carries_embeddings_and_truth(tmp_path) -> None:
    record = {"movie_id": "tt01", "global_id": "g1", "type": 1, "resolution": [100, 100],
              "main characters": ["ANNA"], "#characters": 2, "synopses": "ANNA runs.", "movie_clips": "c.mp4",
              "detect characters": [{"ANNA": [0, 0, 5, 5, 0.9, 0.4]}, {"other": [1, 1, 4, 4, 0.8, 1.5]}],
              "face embeddings": [[1.0, 0.0], None], "true characters": ["ANNA", "BEN"]}
    path = tmp_path / "board.json"
    path.write_text(json.dumps([record]), encoding="utf-8")
    (read,) = read_storyboard_json(path)
    assert [(b.embedding, b.truth) for b in read.detections] == [((1.0, 0.0), "ANNA"), (None, "BEN")]
    for key, value, words in (("face embeddings", [[1.0, 0.0]], "a list of 2 embeddings"),
                              ("face embeddings", [[1.0, 0.0], [1.0]], "embeddings of one dimension"),
                              ("true characters", ["ANNA"], "a list of 2 names")):
        path.write_text(json.dumps([{**record, key: value}]), encoding="utf-8")
        with pytest.raises(DataFormatError, match=words):
            read_storyboard_json(path)
