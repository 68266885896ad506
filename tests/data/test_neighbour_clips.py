"""Neighbouring clips in the data layer (DistinctAD): the previous ADs' frames of the same movie, and their batch
tensors with a mask; nothing changes when they are not asked for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from moviead.data.captioning_collate import CaptioningCollator
from moviead.data.collate import BatchKey
from moviead.data.requirements import DataRequirements
from moviead.data.sources import load_split, make_dataset
from moviead.toy.tokenizers import write_toy_bpe_tokenizer

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "data"


@pytest.fixture(scope="module")
def split(toy_root):
    from moviead.config import load_config

    cfg = load_config([CONFIGS / "toy.yaml"], [f"data.root={toy_root / 'mad'}", "loader.frames.train_shift=0"])
    return cfg, load_split(cfg.data, "train")  # several movies


def neighbours(cfg, data, count: int):
    """The dataset of ``data`` with proposals and ``count`` neighbouring clips per example."""
    needs = DataRequirements(proposal=True, neighbour_clips=count)
    return make_dataset(data, cfg.data, cfg.loader.frames, needs, training=False)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoTokenizer

    folder = write_toy_bpe_tokenizer(["Tamsin opens the map."], tmp_path_factory.mktemp("bpe"))
    return AutoTokenizer.from_pretrained(folder)


def test_examples_carry_the_frames_of_the_previous_clips_of_their_movie(split) -> None:
    cfg, data = split
    dataset = neighbours(cfg, data, 2)
    first = dataset[0]
    assert first.record.index == 0 and first.neighbour_frames == ()  # a movie's first AD has none
    assert len(dataset[1].neighbour_frames) == 1
    np.testing.assert_array_equal(dataset[1].neighbour_frames[0], dataset.frames(dataset.items[0]))
    fifth = dataset[4]
    assert [n.record.index for n in dataset.neighbours(dataset.items[4])] == [2, 3]  # oldest first
    for frames, item in zip(fifth.neighbour_frames, dataset.items[2:4]):
        np.testing.assert_array_equal(frames, dataset.frames(item))
    movies = [item.record.movie for item in dataset.items]
    start = movies.index(movies[-1])  # the last movie's first AD: never the previous movie's clips
    assert movies[start - 1] != movies[start] and dataset[start].neighbour_frames == ()
    assert neighbours(cfg, data, 0)[4].neighbour_frames == ()  # default: none


def test_collate_pads_neighbours_to_the_configured_count_with_a_mask(split, tokenizer) -> None:
    cfg, data = split
    dataset = neighbours(cfg, data, 3)
    examples = [dataset[i] for i in (0, 1, 5)]
    batch = CaptioningCollator(tokenizer, neighbour_clips=3)(examples)
    frames, mask = batch[BatchKey.NEIGHBOUR_FRAMES], batch[BatchKey.NEIGHBOUR_MASK]
    num_frames = cfg.loader.frames.num_frames
    assert frames.shape == (3, 3, num_frames, cfg.data.feature_dim) and mask.dtype == torch.bool
    assert mask.sum(-1).tolist() == [[0, 0, 0], [num_frames, 0, 0], [num_frames] * 3]
    assert torch.equal(frames[1, 0], torch.from_numpy(examples[1].neighbour_frames[0]))
    assert torch.equal(frames[0], torch.zeros_like(frames[0]))
    assert torch.equal(frames[2, 2], torch.from_numpy(examples[2].neighbour_frames[2]))  # the newest, last

    plain = CaptioningCollator(tokenizer)(examples)  # unchanged behaviour without neighbour_clips
    assert BatchKey.NEIGHBOUR_FRAMES not in plain and BatchKey.DISTINCT_TARGETS not in plain
    assert set(plain) == set(batch) - {BatchKey.NEIGHBOUR_FRAMES, BatchKey.NEIGHBOUR_MASK}
