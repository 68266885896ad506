"""The frozen-encoder cache: each clip's Stage-I output is computed once, then served from memory."""

from __future__ import annotations

import pytest
import torch

from moviead.models.frozen_cache import FrozenEncoderCache


class CountingEncoder:
    """A frozen 'encoder': masked mean of the frames, repeated as 2 tokens; counts the samples it encodes."""

    def __init__(self) -> None:
        self.samples = 0

    def __call__(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        self.samples += frames.shape[0]
        m = mask.unsqueeze(-1).float()
        mean = (frames * m).sum(1) / m.sum(1)
        return torch.stack([mean, 2 * mean], dim=1)  # (B, 2, D)


def _batch(seed: int, b: int = 4, t: int = 5, d: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    frames = torch.randn(b, t, d, generator=g)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[0, 3:] = False
    return frames, mask


def test_second_epoch_encodes_nothing_and_returns_the_same_outputs() -> None:
    encoder, cache = CountingEncoder(), FrozenEncoderCache(max_bytes=10_000)
    frames, mask = _batch(0)
    first = cache(encoder, frames, mask)
    assert encoder.samples == 4 and torch.equal(first, encoder(frames, mask))
    encoder.samples = 0
    again = cache(encoder, frames.flip(0), mask.flip(0))  # the same clips in another order
    assert encoder.samples == 0 and torch.equal(again, first.flip(0))
    assert (cache.hits, cache.misses, len(cache)) == (4, 4, 4)


def test_padding_does_not_change_the_key_but_other_frames_do() -> None:
    encoder, cache = CountingEncoder(), FrozenEncoderCache(max_bytes=10_000)
    frames, mask = _batch(0)
    cache(encoder, frames, mask)
    padded = frames.clone()
    padded[0, 3:] = 99.0  # masked positions: not part of the clip
    mixed = torch.cat([padded[:2], _batch(1)[0][:2]])
    encoder.samples = 0
    cache(encoder, mixed, mask)
    assert encoder.samples == 2  # two old clips served, two new ones encoded


def test_budget_stops_adding_but_still_encodes() -> None:
    encoder = CountingEncoder()
    cache = FrozenEncoderCache(max_bytes=2 * 2 * 3 * 4)  # room for two (2, 3) float32 outputs
    frames, mask = _batch(0)
    out = cache(encoder, frames, mask)
    assert len(cache) == 2 and cache.bytes == 48
    encoder.samples = 0
    assert torch.equal(cache(encoder, frames, mask), out) and encoder.samples == 2
    with pytest.raises(ValueError, match="max_bytes"):
        FrozenEncoderCache(0)
