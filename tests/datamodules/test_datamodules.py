"""DataModules on the toy data: batches, per-worker feature handles, and all three on-disk layouts."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from moviead.config import ContextMode, load_config
from moviead.data.collate import BatchKey
from moviead.data.features import H5FeatureStore
from moviead.data.requirements import DataRequirements
from moviead.datamodules import (
    LSMDCDataModule,
    MADDataModule,
    StoryboardDataModule,
    ToyDataModule,
    build_datamodule,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "data"


def test_toy_batches_with_two_workers(toy_cfg, bert_tokenizer) -> None:
    toy_cfg.loader.num_workers, toy_cfg.loader.batch_size = 2, 4
    dm = ToyDataModule(toy_cfg.data, toy_cfg.loader, tokenizer=bert_tokenizer)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch[BatchKey.FRAMES].shape == (4, 8, 768) and batch[BatchKey.FRAME_MASK].all()
    assert batch[BatchKey.TEXT_IDS].dtype == torch.int64 and batch[BatchKey.TEXT_IDS].shape[0] == 4
    assert batch[BatchKey.CONTEXT_IDS].shape[0] == 4 and len(batch[BatchKey.META]) == 4
    assert torch.isfinite(batch[BatchKey.FRAMES]).all()


def test_feature_file_is_opened_in_the_workers_not_kept_open_in_the_main_process(toy_cfg) -> None:
    toy_cfg.loader.num_workers = 2
    dm = ToyDataModule(toy_cfg.data, toy_cfg.loader)
    dm.setup("fit")
    store = dm.dataset("train").features
    assert isinstance(store, H5FeatureStore) and store._handle is None  # closed after the split was checked
    for _, _ in zip(range(3), dm.train_dataloader()):
        pass
    assert store._handle is None  # only the workers opened the file
    clone = pickle.loads(pickle.dumps(store))  # what a spawned worker receives
    assert clone._handle is None and clone.num_frames(clone.movies()[0]) > 0


def test_val_split_is_disjoint_from_train_and_test_and_has_no_frame_shift(toy_cfg) -> None:
    dm = MADDataModule(toy_cfg.data, toy_cfg.loader)
    dm.setup("fit")
    train_movies = {i.record.movie for i in dm.dataset("train").items}
    val_movies = {i.record.movie for i in dm.dataset("val").items}
    test_movies = {i.record.movie for i in dm.dataset("test").items}
    assert train_movies and val_movies and test_movies
    assert not train_movies & val_movies and not val_movies & test_movies and not train_movies & test_movies
    val = dm.dataset("val")
    assert not val.training and val.sampler.train_shift > 0  # a shift the val split must not draw
    item = val.items[0]
    start, end = item.record.start - item.offset, item.record.end - item.offset
    unshifted = val.sampler.indices(start, end, item.num_frames, 0)
    assert not np.array_equal(unshifted, val.sampler.indices(start, end, item.num_frames, 1))
    torch.manual_seed(0)  # a shift drawn from torch's generator would show in one of the reads below
    for _ in range(3):  # every read is the unshifted window
        np.testing.assert_array_equal(val[0].frames, val.features.read(item.feature_key, unshifted))


def test_oracle_and_local_context(toy_cfg) -> None:
    dm = ToyDataModule(toy_cfg.data, toy_cfg.loader)
    oracle = dm.dataset("val")
    assert oracle[1].context.ads and oracle[1].context.ads[-1].text == oracle.items[0].record.text
    local = ToyDataModule(toy_cfg.data, toy_cfg.loader, needs=DataRequirements(context_mode=ContextMode.local))
    local = local.dataset("val")
    assert local[1].context.as_text() == ""


def test_lsmdc_datamodule_reads_the_toy_lsmdc_files(toy_root: Path) -> None:
    cfg = load_config([CONFIGS / "lsmdc.yaml"], [f"data.root={toy_root / 'lsmdc'}", "loader.num_workers=0"])
    dm = build_datamodule(cfg)
    assert isinstance(dm, LSMDCDataModule)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch[BatchKey.FRAMES].shape[0] == cfg.loader.batch_size
    clip_ids = [i.feature_key for i in dm.dataset("train").items]
    assert len(clip_ids) > len(set(clip_ids))  # duplicate clip ids (two sentences, one clip) both kept


def test_storyboard_datamodule_reads_the_toy_json(toy_root: Path) -> None:
    cfg = load_config(
        [CONFIGS / "storyboard.yaml"], [f"data.root={toy_root / 'storyboard'}", "loader.num_workers=0"]
    )
    dm = build_datamodule(cfg)
    assert isinstance(dm, StoryboardDataModule)
    train, val = dm.dataset("train"), dm.dataset("val")
    assert {i.record.movie for i in train.items}.isdisjoint({i.record.movie for i in val.items})
    assert dm.splits["train"].dropped == 0
    example = train[1]
    assert example.frames.shape[1] == 768 and example.context.ads[-1].text == train.items[0].record.text


def test_datamodule_refuses_another_dataset(toy_cfg) -> None:
    with pytest.raises(ValueError, match="LSMDCDataModule"):
        LSMDCDataModule(toy_cfg.data, toy_cfg.loader)


def test_toy_datamodule_generates_missing_data(tmp_path: Path) -> None:
    cfg = load_config([CONFIGS / "toy.yaml"], [f"data.root={tmp_path / 'toy' / 'mad'}", "data.toy.movies=3",
                                                  "data.val_movies=1"])
    dm = ToyDataModule(cfg.data, cfg.loader)
    assert len(dm.dataset("train")) > 0 and (tmp_path / "toy" / "lsmdc").is_dir()
