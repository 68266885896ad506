"""The training sampler: a shuffled order fixed by (seed, epoch), per rank, that can start an epoch part-way.

Resuming a run killed mid-epoch must serve exactly the batches the killed run had not trained on yet. The order
of an epoch is ``torch.randperm`` of a generator seeded with ``seed + epoch`` (as ``DistributedSampler``), so it
is the same in the resumed process; :meth:`ResumableShuffleSampler.resume_at` makes the next pass over that epoch
skip the items already trained on. Being a ``DistributedSampler``, Lightning uses it as it is under DDP (it wraps
other samplers), and calls :meth:`set_epoch` at each epoch start.
"""

from __future__ import annotations

from typing import Iterator, Sized

import torch.distributed as dist
from torch.utils.data import DistributedSampler


class ResumableShuffleSampler(DistributedSampler):
    """Shuffled indices of ``dataset`` for one rank; an epoch's order depends only on ``seed`` and the epoch.

    Args:
        dataset: anything with ``len``.
        seed: the run's seed.
        num_replicas, rank: the data-parallel layout; by default that of the initialised process group, or 1 and 0.

    As ``DistributedSampler(shuffle=True, drop_last=False)``: each rank gets ``ceil(len / num_replicas)`` indices
    (the order is padded with its own first indices), ``len(sampler)`` is that number whatever the resume point.
    """

    def __init__(self, dataset: Sized, seed: int, num_replicas: int | None = None, rank: int | None = None) -> None:
        distributed = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if distributed else 1
        if rank is None:
            rank = dist.get_rank() if distributed else 0
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self._resume: tuple[int, int] | None = None

    def resume_at(self, epoch: int, items_done: int) -> None:
        """Make the next pass serve epoch ``epoch`` from its ``items_done``-th index of this rank on.

        The skip applies once, and only if the epoch is still ``epoch`` when the pass starts (a later
        :meth:`set_epoch` to another epoch cancels it).
        """
        if items_done < 0 or items_done > self.num_samples:
            raise ValueError(f"items_done={items_done} is outside 0..{self.num_samples} (this rank's epoch length)")
        self.set_epoch(epoch)
        self._resume = (epoch, items_done)

    def __iter__(self) -> Iterator[int]:
        order = list(super().__iter__())  # (num_samples,) this rank's indices of epoch self.epoch
        skip = 0
        if self._resume is not None:
            epoch, items_done = self._resume
            self._resume = None
            if epoch == self.epoch:
                skip = items_done
        return iter(order[skip:])
