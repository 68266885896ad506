"""A split never comes out silently wrong: empty splits, negative starts, one movie's features of another width."""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np
import pytest

from moviead.data.datasets import ClipItem
from moviead.data.errors import DataFormatError
from moviead.data.records import ADRecord
from moviead.data.sources import _keep_in_range, load_split
from tests.data.test_sources import ADS, cfg_for, write_mad


def test_a_split_with_every_ad_past_the_features_is_an_error_with_the_counts(tmp_path: Path) -> None:
    in_ms = [("m1", 1000.0, 2000.0, "A man walks."), ("m1", 3000.0, 5000.0, "He sits."), ("m2", 500.0, 900.0, "Dog.")]
    root = write_mad(tmp_path, {"m1": 50, "m2": 40}, in_ms)
    with pytest.raises(DataFormatError) as err:
        load_split(cfg_for(root), "test")
    assert str(err.value) == (
        f"{root / 'mad-v2-ad-named.csv'} [split 'EVAL']: the split is empty: 3 of 3 ADs past the end of the "
        "features (the longest features last 10.0 s at 5 fps; the ADs end as late as 5000.0 s). Fix: are the times "
        "in seconds? Write AD times in seconds (not milliseconds or frames) and set data.fps to the frame rate the "
        "features were extracted at"
    )


def test_a_split_whose_movies_have_no_ad_is_an_error(tmp_path: Path) -> None:
    root = write_mad(tmp_path, {"m1": 50, "m2": 50, "m3": 50}, ADS, split={"TRAIN": ["m1"], "EVAL": ["m3"]},
                     subs=[("m3", 1.0, 2.0, "Only dialogue here.")])
    with pytest.raises(DataFormatError, match=r"\[split 'EVAL'\]: the split is empty: its 1 movie\(s\) have no AD"):
        load_split(cfg_for(root), "test")


def test_a_negative_start_is_clamped_and_kept_not_dropped_as_past_the_features(tmp_path: Path, caplog) -> None:
    root = write_mad(tmp_path, {"m1": 50, "m2": 50}, [("m1", -0.6, 2.0, "Dawn.")] + ADS[1:])
    with caplog.at_level(logging.WARNING):
        data = load_split(cfg_for(root), "test")
    assert data.dropped == 0
    assert [(i.record.start, i.record.end, i.record.text) for i in data.items] == [
        (0.0, 2.0, "Dawn."), (3.0, 5.0, "He sits."), (1.0, 2.0, "A dog barks.")]
    assert "1 AD(s) started before 0 s: clamped to 0" in caplog.text and "dropped" not in caplog.text


def test_clips_outside_their_features_are_counted_by_reason(caplog) -> None:
    ad = ADRecord("m", 0, 1.0, 2.0, "x")
    items = [ClipItem(ad, "inside", 0.0, 50), ClipItem(ad, "late", 1.5, 50), ClipItem(ad, "short", 0.0, 8)]
    with caplog.at_level(logging.WARNING, logger="moviead.data.sources"):
        kept, reasons = _keep_in_range(items, 5.0, Path("f.h5"))
    assert [item.feature_key for item in kept] == ["inside"]
    assert dict(reasons) == {"before the start of the features": 1, "past the end of the features": 1}
    assert "f.h5: dropped 2 clip(s): 1 whose interval lies before the start of the features, 1 whose interval lies " \
        "past the end of the features" in caplog.text


def test_one_movie_with_features_of_another_width_is_named(tmp_path: Path) -> None:
    root = write_mad(tmp_path, {"m1": 50, "m2": 50}, ADS)
    with h5py.File(root / "CLIP_L14_frames_features_5fps.h5", "a") as h5:
        del h5["m2"]
        h5.create_dataset("m2", data=np.zeros((50, 12), dtype=np.float16))
    with pytest.raises(DataFormatError) as err:
        load_split(cfg_for(root), "test")
    message = str(err.value)
    assert message.startswith(f"{root / 'CLIP_L14_frames_features_5fps.h5'} [movie m2]: features are 12-d but the "
                              "config expects 8-d. Fix: set data.feature_dim=12")
    assert "re-extract them with the same model as the others" in message


def test_one_npy_movie_with_features_of_another_width_is_named(tmp_path: Path) -> None:
    root = write_mad(tmp_path, {"m1": 50, "m2": 50}, ADS)
    folder = root / "npy"
    folder.mkdir()
    np.save(folder / "m1.npy", np.zeros((50, 8), dtype=np.float32))
    np.save(folder / "m2.npy", np.zeros((50, 8, 2), dtype=np.float32))
    with pytest.raises(DataFormatError, match=r"m2\.npy \[movie m2\]: features have shape \(50, 8, 2\), expected"):
        load_split(cfg_for(root, "data.mad.features=npy"), "test")
