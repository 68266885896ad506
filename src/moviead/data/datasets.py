"""Torch datasets of AD clips: records + frame features + context → :class:`ClipExample`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from moviead.data.collate import ClipExample
from moviead.data.context import ContextBuilder, previous_window
from moviead.data.features import FeatureStore
from moviead.data.frames import FrameSampler
from moviead.data.records import ADRecord


@dataclass(frozen=True)
class ClipItem:
    """One AD and where its frames are.

    Attributes:
        record: the AD.
        feature_key: key of the feature sequence (the movie for MAD, the clip id for LSMDC, the global id
            for Storyboard-v2).
        offset: seconds subtracted from the record's times to index that sequence (0 for whole movies; the
            clip's extracted start for LSMDC).
        num_frames: length of that feature sequence, checked when the split was loaded.
    """

    record: ADRecord
    feature_key: str
    offset: float
    num_frames: int


class ADClipDataset(Dataset):
    """Map-style dataset of :class:`ClipExample`.

    Args:
        items: the clips.
        features: where frames are read from (opened lazily in each worker).
        sampler: which frames of an interval.
        context: builds each AD's context.
        training: draw the random frame shift (from torch's RNG, seeded per worker by the DataLoader).
        with_proposal: also build each AD's DSM proposal (:meth:`ContextBuilder.build_proposal`) into
            :attr:`ClipExample.proposal`.
        neighbour_clips: also read the frames of the previous this many ADs' clips of the same movie (those among
            ``items``; fewer at a movie's start) into :attr:`ClipExample.neighbour_frames` (DistinctAD). Their
            intervals are known in every context mode, recurrent included: only their texts are predicted. An AD
            with a ``context_group`` (LSMDC's 5-clip sets) takes them as its context ADs: from its own set only,
            never a clip with its own interval (its duplicate).
        name_swap: training only: each example's names are swapped by a freshly drawn renaming
            (:class:`moviead.data.name_swap.NameSwap`; torch's RNG, as the frame shift).
    """

    def __init__(
        self,
        items: list[ClipItem],
        features: FeatureStore,
        sampler: FrameSampler,
        context: ContextBuilder,
        training: bool = False,
        with_proposal: bool = False,
        neighbour_clips: int = 0,
        name_swap: Callable[[ClipExample], ClipExample] | None = None,
    ) -> None:
        if neighbour_clips < 0:
            raise ValueError(f"neighbour_clips must be >= 0, got {neighbour_clips}")
        if name_swap is not None and not training:
            raise ValueError("name_swap is a training-time transform: give it to training datasets only")
        self.items = items
        self.features = features
        self.sampler = sampler
        self.context = context
        self.training = training
        self.with_proposal = with_proposal
        self.neighbour_clips = neighbour_clips
        self.name_swap = name_swap
        self._by_position = {(it.record.movie, it.record.index): it for it in items} if neighbour_clips else {}

    def __len__(self) -> int:
        return len(self.items)

    def frames(self, item: ClipItem) -> np.ndarray:
        """The sampled frames of ``item``, (T, D) float32."""
        shift = 0
        if self.training and self.sampler.train_shift > 0:
            shift = int(torch.randint(0, self.sampler.train_shift + 1, ()))
        start, end = item.record.start - item.offset, item.record.end - item.offset
        picked = self.sampler.indices(start, end, item.num_frames, shift)
        return self.features.read(item.feature_key, picked)

    def neighbours(self, item: ClipItem) -> list[ClipItem]:
        """The clips of the previous ``neighbour_clips`` ADs of ``item``'s movie in this dataset, oldest first: the
        ADs its context would hold (:func:`~moviead.data.context.previous_window`: never one with its own interval,
        and only of its own LSMDC set when it has a ``context_group``)."""
        record = item.record
        window = previous_window(self.context.movies[record.movie].ads, record, self.neighbour_clips)
        found = (self._by_position.get((ad.movie, ad.index)) for ad in window)
        return [neighbour for neighbour in found if neighbour is not None]

    def __getitem__(self, index: int) -> ClipExample:
        item = self.items[index]
        proposal = tuple(self.context.build_proposal(item.record)) if self.with_proposal else ()
        neighbours = tuple(self.frames(n) for n in self.neighbours(item)) if self.neighbour_clips else ()
        example = ClipExample(item.record, self.frames(item), self.context.build(item.record), proposal, neighbours)
        return self.name_swap(example) if self.name_swap is not None else example
