"""Loading a split from a config: bad input gets one clear error; out-of-range intervals are dropped and counted."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from moviead.config import load_config
from moviead.data.errors import DataFormatError
from moviead.data.requirements import DataRequirements
from moviead.data.sources import load_split, make_dataset

FPS, DIM = 5.0, 8


def write_mad(
    root: Path,
    lengths: dict[str, int],
    ads: list[tuple[str, float, float, str]],
    split=None,
    dim: int = DIM,
    subs: list[tuple[str, float, float, str]] = (),
) -> Path:
    """A tiny MAD-v2 layout: h5 features, named AD CSV, subtitles CSV, split JSON."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with h5py.File(root / "CLIP_L14_frames_features_5fps.h5", "w") as h5:
        for movie, length in lengths.items():
            h5.create_dataset(movie, data=rng.standard_normal((length, dim)).astype(np.float16))
    rows = ["movie,start,end,text"] + [f"{m},{s},{e},{t}" for m, s, e, t in ads]
    (root / "mad-v2-ad-named.csv").write_text("\n".join(rows) + "\n")
    (root / "mad-v2-subs.csv").write_text(
        "\n".join(["movie,start,end,text"] + [f"{m},{s},{e},{t}" for m, s, e, t in subs]) + "\n"
    )
    split = split if split is not None else {"TRAIN": sorted(lengths), "EVAL": sorted(lengths)}
    (root / "mad_split.json").write_text(json.dumps(split))
    return root


def frames(*overrides: str):
    """``loader.frames`` of the schema defaults (8 linspace frames) with ``key=value`` overrides (no prefix)."""
    return load_config([], [f"loader.frames.{item}" for item in overrides]).loader.frames


def cfg_for(root: Path, *overrides: str):
    return load_config(
        [],
        [
            "data.dataset=mad",
            f"data.root={root}",
            f"data.feature_dim={DIM}",
            "data.mad.annotations_unnamed=null",
            *overrides,
        ],
    ).data


ADS = [("m1", 0.0, 2.0, "A man walks."), ("m1", 3.0, 5.0, "He sits."), ("m2", 1.0, 2.0, "A dog barks.")]


def test_loads_items_in_time_order(tmp_path: Path) -> None:
    root = write_mad(tmp_path, {"m1": 50, "m2": 50}, ADS, subs=[("m1", 2.2, 2.8, "Sit down.")])
    data = load_split(cfg_for(root), "test")
    assert [(i.record.movie, i.record.index, i.record.text) for i in data.items] == [
        ("m1", 0, "A man walks."),
        ("m1", 1, "He sits."),
        ("m2", 0, "A dog barks."),
    ]
    dataset = make_dataset(data, cfg_for(root), frames(), DataRequirements(), training=False)
    example = dataset[1]
    assert example.frames.shape == (8, DIM) and example.frames.dtype == np.float32
    assert [c.text for c in example.context.in_time_order()] == ["A man walks.", "Sit down."]


def test_frames_are_the_sampled_rows_of_the_feature_file(tmp_path: Path) -> None:
    root = write_mad(tmp_path, {"m1": 50, "m2": 50}, ADS)
    cfg = cfg_for(root)
    four = frames("num_frames=4")
    example = make_dataset(load_split(cfg, "test"), cfg, four, DataRequirements(), training=False)[1]  # frames 15..24
    with h5py.File(root / "CLIP_L14_frames_features_5fps.h5") as h5:
        expected = h5["m1"][[15, 18, 21, 24]].astype(np.float32)
    np.testing.assert_array_equal(example.frames, expected)


def test_interval_past_the_end_of_features_is_dropped_and_counted(tmp_path: Path, caplog) -> None:
    root = write_mad(tmp_path, {"m1": 20, "m2": 50}, ADS)  # m1 has 4 s of features; "He sits." ends at 5 s
    data = load_split(cfg_for(root), "test")
    assert data.dropped == 1 and [i.record.text for i in data.items] == ["A man walks.", "A dog barks."]
    assert "dropped 1 clip" in caplog.text


def test_missing_movie_in_feature_file_names_the_movie_and_the_fix(tmp_path: Path) -> None:
    root = write_mad(tmp_path, {"m1": 50}, ADS, split={"TRAIN": ["m1"], "EVAL": ["m1", "m2"]})
    with pytest.raises(DataFormatError) as err:
        load_split(cfg_for(root), "test")
    message = str(err.value)
    assert "CLIP_L14_frames_features_5fps.h5" in message and "m2" in message and "extract" in message


def test_feature_dimension_different_from_config(tmp_path: Path) -> None:
    root = write_mad(tmp_path, {"m1": 50, "m2": 50}, ADS, dim=12)
    with pytest.raises(DataFormatError, match=r"12-d but the config expects 8-d.*data.feature_dim=12"):
        load_split(cfg_for(root), "test")


def test_nan_features_name_the_movie_and_frame(tmp_path: Path) -> None:
    root = write_mad(tmp_path, {"m1": 50, "m2": 50}, ADS)
    with h5py.File(root / "CLIP_L14_frames_features_5fps.h5", "a") as h5:
        h5["m1"][18, 3] = np.nan  # frames 15..24 sampled at 15, 16, 18, ...: a NaN reaches the model
    cfg = cfg_for(root)
    dataset = make_dataset(load_split(cfg, "test"), cfg, frames(), DataRequirements(), training=False)
    dataset[0]  # frames 0..9 are fine
    with pytest.raises(DataFormatError, match=r"m1.*non-finite.*frame 18"):
        dataset[1]


def test_split_naming_an_unknown_movie(tmp_path: Path) -> None:
    root = write_mad(tmp_path, {"m1": 50, "m2": 50}, ADS, split={"TRAIN": ["m1", "ghost"], "EVAL": ["m2"]})
    with pytest.raises(DataFormatError) as err:
        load_split(cfg_for(root), "test")
    assert "mad_split.json" in str(err.value) and "ghost" in str(err.value)


def test_empty_ad_text_names_the_line(tmp_path: Path) -> None:
    root = write_mad(tmp_path, {"m1": 50, "m2": 50}, ADS + [("m2", 4.0, 5.0, "   ")])
    with pytest.raises(DataFormatError, match=r"mad-v2-ad-named.csv \[line 5\].*empty"):
        load_split(cfg_for(root), "test")


def test_start_not_before_end_names_the_line(tmp_path: Path) -> None:
    root = write_mad(tmp_path, {"m1": 50, "m2": 50}, ADS + [("m2", 4.0, 4.0, "Nothing happens.")])
    with pytest.raises(DataFormatError, match=r"mad-v2-ad-named.csv \[line 5\]"):
        load_split(cfg_for(root), "test")


def test_unreadable_encoding(tmp_path: Path) -> None:
    root = write_mad(tmp_path, {"m1": 50, "m2": 50}, ADS)
    (root / "mad-v2-ad-named.csv").write_bytes("movie,start,end,text\nm1,0,1,x\n".encode("utf-16"))
    with pytest.raises(DataFormatError) as err:
        load_split(cfg_for(root), "test")
    assert "mad-v2-ad-named.csv" in str(err.value)


def test_missing_columns_are_listed(tmp_path: Path) -> None:
    root = write_mad(tmp_path, {"m1": 50, "m2": 50}, ADS)
    (root / "mad-v2-ad-named.csv").write_text("movie,begin,end,text\nm1,0,1,x\n")
    with pytest.raises(DataFormatError, match="start"):
        load_split(cfg_for(root), "test")


def test_unnamed_variant_without_unnamed_file_is_an_error(tmp_path: Path) -> None:
    root = write_mad(tmp_path, {"m1": 50, "m2": 50}, ADS)
    with pytest.raises(DataFormatError, match="text_variant"):
        load_split(cfg_for(root, "data.text_variant=unnamed"), "test")


def test_npy_folder_features_read_like_h5(tmp_path: Path) -> None:
    root = write_mad(tmp_path, {"m1": 50, "m2": 50}, ADS)
    folder = root / "npy"
    folder.mkdir()
    with h5py.File(root / "CLIP_L14_frames_features_5fps.h5") as h5:
        for movie in h5:
            np.save(folder / f"{movie}.npy", h5[movie][:])
    cfg_h5, cfg_npy = cfg_for(root), cfg_for(root, "data.mad.features=npy")
    a = make_dataset(load_split(cfg_h5, "test"), cfg_h5, frames(), DataRequirements(), training=False)[2].frames
    b = make_dataset(load_split(cfg_npy, "test"), cfg_npy, frames(), DataRequirements(), training=False)[2].frames
    np.testing.assert_array_equal(a, b)
