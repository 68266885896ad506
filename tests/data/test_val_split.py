"""Honest selection, data side: validation is carved deterministically, and never shares a movie with test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from moviead.config import ConfigError, load_config
from moviead.data.errors import DataFormatError
from moviead.data.sources import load_split
from moviead.data.val_split import carve_validation, resolve_mad_splits, split_overlaps, storyboard_splits

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "data"
MOVIES = [f"{1000 + i}" for i in range(30)]


def test_carving_is_deterministic_disjoint_and_independent_of_order() -> None:
    train, val = carve_validation(MOVIES, 5)
    assert len(val) == 5 and len(train) == 25 and not set(train) & set(val)
    assert set(train) | set(val) == set(MOVIES)
    assert set(carve_validation(list(reversed(MOVIES)), 5)[1]) == set(val)  # file order does not matter
    assert train == [m for m in MOVIES if m not in val]  # the given order is kept
    assert set(carve_validation(MOVIES, 6)[1]) > set(val)  # one more movie adds to the set


def test_carving_does_not_depend_on_the_hash_seed() -> None:
    code = "from moviead.data.val_split import carve_validation as c; print(c([str(i) for i in range(50)], 7)[1])"
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(outs) == 1 and "[" in outs.pop()


@pytest.mark.parametrize("n", [0, -1, 3, 4])
def test_carving_refuses_to_leave_training_empty(n: int) -> None:
    with pytest.raises(ValueError, match="cannot carve"):
        carve_validation(["a", "b", "c"], n)


def test_val_key_movies_leave_train_and_must_not_be_test_movies() -> None:
    split = {"TRAIN": ["a", "b", "c", "d"], "VAL": ["d"], "EVAL": ["e"]}
    assert resolve_mad_splits(split, "TRAIN", "VAL", "EVAL", 10) == {"train": ["a", "b", "c"], "val": ["d"],
                                                                      "test": ["e"]}
    with pytest.raises(DataFormatError, match="also in the test key 'EVAL': e"):
        resolve_mad_splits({**split, "VAL": ["d", "e"]}, "TRAIN", "VAL", "EVAL", 10)
    with pytest.raises(DataFormatError, match="also in the test key"):  # the old default: val_split=EVAL
        resolve_mad_splits(split, "TRAIN", "EVAL", "EVAL", 10)


def test_carving_never_takes_a_test_movie_and_says_which_key_to_set() -> None:
    split = {"TRAIN": ["a", "b", "c", "e"], "EVAL": ["e"]}
    for _ in range(3):
        got = resolve_mad_splits(split, "TRAIN", None, "EVAL", 2)
        assert len(got["val"]) == 2 and "e" not in got["val"] and not set(got["val"]) & set(got["train"])
    with pytest.raises(DataFormatError, match="data.val_movies") as err:
        resolve_mad_splits(split, "TRAIN", None, "EVAL", 3)
    assert "data.mad.val_split" in str(err.value)
    assert resolve_mad_splits(split, "TRAIN", None, "EVAL", 3, test_only=True) == {"test": ["e"]}


def test_val_movies_is_range_checked() -> None:
    with pytest.raises(ConfigError, match="data.val_movies=0 is out of range"):
        load_config([], ["data.val_movies=0"])


def test_toy_v1_val_is_carved_from_train_and_disjoint_from_test(toy_root: Path) -> None:
    cfg = load_config([CONFIGS / "toy.yaml"], [f"data.root={toy_root / 'mad'}"]).data
    assert cfg.mad.val_split is None and cfg.val_movies == 2
    movies = {stage: set(load_split(cfg, stage).movies) for stage in ("train", "val", "test")}
    split = json.loads((toy_root / "mad" / "mad_split.json").read_text())
    assert sorted(split) == ["EVAL", "TRAIN"]
    assert movies["test"] == set(split["EVAL"]) and len(movies["val"]) == 2
    assert movies["train"] | movies["val"] == set(split["TRAIN"])
    assert split_overlaps(movies) == {}
    again = {stage: set(load_split(cfg, stage).movies) for stage in ("train", "val")}
    assert again == {"train": movies["train"], "val": movies["val"]}


def test_mad_without_a_split_file_reads_only_test(toy_root: Path) -> None:
    cfg = load_config([CONFIGS / "toy.yaml"], [f"data.root={toy_root / 'mad'}", "data.mad.split=null"]).data
    assert len(load_split(cfg, "test").movies) == 6
    with pytest.raises(DataFormatError, match="no split file"):
        load_split(cfg, "val")


def test_storyboard_sets_are_disjoint_sorted_and_need_three_movies() -> None:
    got = storyboard_splits([f"tt{i:02d}" for i in reversed(range(12))], 0.25)
    assert got == {"train": [f"tt{i:02d}" for i in range(6)], "val": [f"tt{i:02d}" for i in range(6, 9)],
                   "test": [f"tt{i:02d}" for i in range(9, 12)]}
    assert storyboard_splits(["a", "b", "c"], 0.5) == {"train": ["a"], "val": ["b"], "test": ["c"]}
    assert storyboard_splits([f"{i:02d}" for i in range(20)], 0.1)["test"] == ["18", "19"]
    with pytest.raises(ValueError, match="at least 3 movies"):
        storyboard_splits(["a", "b"], 0.1)


def test_toy_storyboard_splits_are_disjoint(toy_root: Path) -> None:
    cfg = load_config([CONFIGS / "toy_storyboard.yaml"], [f"data.root={toy_root / 'storyboard'}"]).data
    movies = {stage: set(load_split(cfg, stage).movies) for stage in ("train", "val", "test")}
    assert all(movies.values()) and split_overlaps(movies) == {}


def test_split_overlaps_names_each_pair() -> None:
    found = split_overlaps({"test": ["x", "y"], "val": ["y", "x"], "train": ["a", "x"]})
    assert found == {("train", "val"): ["x"], ("train", "test"): ["x"], ("val", "test"): ["x", "y"]}


def test_toy_v2_selects_on_its_val_key_when_asked(tmp_path: Path, capsys) -> None:
    from moviead.cli import main

    assert main(["make-toy-data", "--out", str(tmp_path), "--movies", "4", "--world", "v2"]) == 0
    assert "data.mad.val_split=VAL" in capsys.readouterr().out
    split = json.loads((tmp_path / "mad" / "mad_split.json").read_text())
    cfg = load_config([CONFIGS / "toy.yaml"], [f"data.root={tmp_path / 'mad'}", "data.mad.val_split=VAL"]).data
    movies = {stage: set(load_split(cfg, stage).movies) for stage in ("train", "val", "test")}
    assert movies == {"train": set(split["TRAIN"]), "val": set(split["VAL"]), "test": set(split["EVAL"])}
    carved = load_config([CONFIGS / "toy.yaml"], [f"data.root={tmp_path / 'mad'}", "data.val_movies=1"]).data
    assert load_split(carved, "val").movies.keys() <= set(split["TRAIN"])
