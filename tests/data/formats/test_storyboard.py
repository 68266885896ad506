"""Storyboard-v2 JSON reader and best-query bank: exact mapping, both JSON layouts, and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from moviead.data.errors import DataFormatError
from moviead.data.formats.storyboard import read_best_query_bank, read_storyboard_json, write_best_query
from moviead.data.records import CharacterBox, StoryboardRecord


def record(**changes):
    base = {
        "movie_id": "tt0000001",
        "global_id": 17,
        "type": 2,
        "resolution": [720, 1280],
        "main characters": ["MARA"],
        "#characters": 2,
        "synopses": ["MARA hands TOM a key.", " They leave. "],
        "movie_clips": "movie_clips/tt0000001/17/3.mp4",
        "detect characters": [
            {"MARA": [10.5, 20, 110.5, 220, 0.98, 87]},
            {"TOM": [300, 40, 400, 240, 0.6, 250], "OTHER": [0, 0, 5, 5, 0.1, 400]},
        ],
    }
    base.update(changes)
    return base


def write_json(tmp_path, data, name="storyboard.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_storyboard_maps_every_field(tmp_path):
    path = write_json(tmp_path, [record()])
    assert read_storyboard_json(path) == [StoryboardRecord(
        movie_id="tt0000001",
        global_id="17",
        clip_type=2,
        resolution=(720, 1280),
        main_characters=("MARA",),
        num_characters=2,
        synopsis="MARA hands TOM a key. They leave.",
        clip_path="movie_clips/tt0000001/17/3.mp4",
        detections=(
            CharacterBox("MARA", (10.5, 20.0, 110.5, 220.0), 0.98, 87.0),
            CharacterBox("TOM", (300.0, 40.0, 400.0, 240.0), 0.6, 250.0),
            CharacterBox("OTHER", (0.0, 0.0, 5.0, 5.0), 0.1, 400.0),
        ),
    )]


def test_storyboard_accepts_dict_layout_string_synopsis_and_no_detections(tmp_path):
    plain = record(type=3, synopses="A street at night.", **{"main characters": [], "#characters": 0})
    del plain["detect characters"]
    records = read_storyboard_json(write_json(tmp_path, {"a": plain, "b": record(global_id="x9")}))
    assert [(r.global_id, r.clip_type, r.synopsis, r.detections) for r in records][0] == (
        "17", 3, "A street at night.", ())
    assert records[1].global_id == "x9"


@pytest.mark.parametrize(("changes", "where", "words"), [
    ({"type": 4}, "item 1", "'type' must be 1, 2 or 3"),
    ({"resolution": [720]}, "item 1", "'resolution' must be [height, width]"),
    ({"synopses": "  "}, "item 1", "empty"),
    ({"detect characters": [{"MARA": [1, 2, 3]}]}, "item 1", "6 numbers"),
    ({"#characters": "two"}, "item 1", "non-negative integer"),
    ({"detect characters": [{"MARA": [1, 2, 3, 4, True, 0.5]}]}, "item 1", "6 numbers"),  # a bool is no number
    ({"detect characters": [{"MARA": [1, 2, 3, 4, float("nan"), 0.5]}]}, "item 1", "6 numbers"),
    ({"face embeddings": [[0.6, 0.8], [1, "x"], None]}, "item 1", "'face embeddings[1]' must be a list of finite"),
    ({"face embeddings": [[0.6, 0.8], [False, 1.0], None]}, "item 1", "'face embeddings[1]' must be a list of finite"),
    ({"face embeddings": [[0.6, float("inf")], None, None]}, "item 1", "'face embeddings[0]' must be a list of finite"),
    ({"face embeddings": [[0.6, 0.8], [1, 0], [0.0]]}, "item 1", "embeddings of one dimension"),
])
def test_storyboard_bad_record_names_file_item_and_fix(tmp_path, changes, where, words):
    path = write_json(tmp_path, [record(), record(**changes)])
    with pytest.raises(DataFormatError) as exc:
        read_storyboard_json(path)
    message = str(exc.value)
    assert path.name in message and f"[{where}]" in message and words in message and "Fix:" in message


def test_storyboard_missing_keys_and_malformed_json(tmp_path):
    partial = record()
    del partial["main characters"], partial["synopses"]
    path = write_json(tmp_path, {"clip-5": partial})
    with pytest.raises(DataFormatError, match="missing key\\(s\\) 'main characters', 'synopses'") as exc:
        read_storyboard_json(path)
    assert "[key 'clip-5']" in str(exc.value) and path.name in str(exc.value)
    broken = tmp_path / "broken.json"
    broken.write_text("[{]", encoding="utf-8")
    with pytest.raises(DataFormatError, match="malformed JSON") as exc:
        read_storyboard_json(broken)
    assert "broken.json [line 1, column 3]" in str(exc.value)


def test_best_query_round_trip_is_float32_unit_norm(tmp_path):
    root = tmp_path / "best_query"
    out = write_best_query(root, "tt0000001", "MARA", np.array([3.0, 4.0]))
    assert out == root / "tt0000001" / "MARA.npy"
    write_best_query(root, "tt0000001", "TOM", np.ones((1, 2)))
    for where in (root, tmp_path):  # the bank folder itself, or its parent
        bank = read_best_query_bank(where)
        assert sorted(bank["tt0000001"]) == ["MARA", "TOM"]
        mara = bank["tt0000001"]["MARA"]
        assert mara.dtype == np.float32 and mara.shape == (1, 2)
        np.testing.assert_allclose(mara, [[0.6, 0.8]], rtol=1e-6)


def test_best_query_rejects_wrong_shape_and_non_unit_norm(tmp_path):
    folder = tmp_path / "best_query" / "tt1"
    folder.mkdir(parents=True)
    np.save(folder / "MARA.npy", np.ones((2, 4), dtype=np.float32) / 2.0)
    with pytest.raises(DataFormatError, match=r"shape \(1, D\)") as exc:
        read_best_query_bank(tmp_path)
    assert "MARA.npy" in str(exc.value) and "write_best_query" in exc.value.fix
    np.save(folder / "MARA.npy", np.full((1, 4), 0.6, dtype=np.float32))
    with pytest.raises(DataFormatError, match="L2 norm is 1.2") as exc:
        read_best_query_bank(tmp_path)
    assert "MARA.npy" in str(exc.value)
    with pytest.raises(DataFormatError, match="no best-query vectors"):
        read_best_query_bank(tmp_path / "nowhere")
    with pytest.raises(ValueError):
        write_best_query(tmp_path, "tt1", "../X", np.ones(3))
