"""ResumableShuffleSampler: (seed, epoch) fixes the order; resume_at serves the rest of an epoch exactly once."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from moviead.data.resumable_sampler import ResumableShuffleSampler


def test_the_order_is_a_permutation_fixed_by_seed_and_epoch() -> None:
    sampler = ResumableShuffleSampler(range(10), seed=7)
    first = list(sampler)
    assert sorted(first) == list(range(10))
    assert list(ResumableShuffleSampler(range(10), seed=7)) == first
    # As DistributedSampler: torch.randperm of a generator seeded with seed + epoch.
    assert first == torch.randperm(10, generator=torch.Generator().manual_seed(7)).tolist()
    sampler.set_epoch(1)
    assert list(sampler) == torch.randperm(10, generator=torch.Generator().manual_seed(8)).tolist() != first


def test_resume_skips_the_batches_done_once_and_len_stays_the_epoch_length() -> None:
    full = list(ResumableShuffleSampler(range(10), seed=0))
    sampler = ResumableShuffleSampler(range(10), seed=0)
    sampler.resume_at(epoch=0, items_done=6)
    loader = DataLoader(list(range(10)), batch_size=3, sampler=sampler)
    assert len(loader) == 4  # Lightning counts the epoch's batches from len: unchanged by the resume point
    assert [b.tolist() for b in loader] == [full[6:9], full[9:]]
    assert [x for b in loader for x in b.tolist()] == full  # the next pass is whole again


def test_resume_in_a_later_epoch_and_a_cancelling_set_epoch() -> None:
    epoch2 = torch.randperm(8, generator=torch.Generator().manual_seed(2)).tolist()
    sampler = ResumableShuffleSampler(range(8), seed=0)
    sampler.resume_at(epoch=2, items_done=3)
    sampler.set_epoch(2)  # what Lightning calls at the start of the resumed epoch
    assert list(sampler) == epoch2[3:]
    sampler.resume_at(epoch=2, items_done=3)
    sampler.set_epoch(3)  # another epoch: the skip no longer applies
    assert list(sampler) == torch.randperm(8, generator=torch.Generator().manual_seed(3)).tolist()
    with pytest.raises(ValueError, match="outside 0..8"):
        sampler.resume_at(0, 9)


def test_ranks_split_one_epoch_order_and_each_resumes_its_own_part() -> None:
    order = torch.randperm(7, generator=torch.Generator().manual_seed(0)).tolist()
    padded = order + order[:1]  # 7 items over 2 ranks: 4 each, the first index repeated
    rank0 = ResumableShuffleSampler(range(7), seed=0, num_replicas=2, rank=0)
    rank1 = ResumableShuffleSampler(range(7), seed=0, num_replicas=2, rank=1)
    assert list(rank0) == padded[0::2] and list(rank1) == padded[1::2]
    rank1.resume_at(0, 2)
    assert list(rank1) == padded[1::2][2:]
