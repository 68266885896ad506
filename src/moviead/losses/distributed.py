"""Rows of every rank, for losses taken over the global batch under ``torch.distributed``.

Contrastive losses (VTC, CLIP global, frame-word) compare each local item with the items of all ranks. The
gather keeps the graph through :func:`torch.distributed.nn.functional.all_gather`, whose backward pass sums, over
ranks, the gradient each rank's loss sends to a slice of the gathered tensor and returns to every rank the sum
for its own slice: the gradient of the *sum* of all ranks' losses with respect to this rank's rows. DDP then
averages parameter gradients over ranks, so a DDP step equals one process on the joined batch with the mean of
the per-rank losses (``tests/test_losses.py``, ``tests/test_losses_clip.py`` check this on two gloo processes).

That collective needs the same shape on every rank; per-rank batch sizes may differ (a last partial batch),
so rows are padded to the largest batch and the padding is dropped after the gather (its gradient is never used).
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
import torch.nn.functional as F


def distributed() -> bool:
    """True under an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def pad_dim1(x: torch.Tensor, length: int, value: float | int | bool = 0) -> torch.Tensor:
    """``x`` (B, S, ...) with dim 1 padded with ``value`` to ``length`` (>= S); ``x`` itself when S == length."""
    if x.shape[1] == length:
        return x
    pad = [0, 0] * (x.ndim - 2) + [0, length - x.shape[1]]
    return F.pad(x, pad, value=value)


def pad_dim1_to_global_max(x: torch.Tensor, value: float | int | bool = 0) -> torch.Tensor:
    """``x`` (B, S, ...) with dim 1 padded with ``value`` to the largest S over ranks (unchanged on one process)."""
    if not distributed():
        return x
    longest = torch.tensor([x.shape[1]], device=x.device, dtype=torch.long)
    dist.all_reduce(longest, op=dist.ReduceOp.MAX)
    return pad_dim1(x, int(longest.item()), value)


def _batch_sizes(x: torch.Tensor) -> list[int]:
    """Every rank's ``x.shape[0]``, in rank order."""
    local = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    sizes = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, local)
    return [int(size.item()) for size in sizes]


def _gather_with_grad(x: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's ``x`` (same shape on all ranks) through the autograd-aware collective."""
    with warnings.catch_warnings():
        # torch 2.14 warns, on every call, that it is deprecated in favour of the private
        # torch.distributed._functional_collectives; it is the public autograd-aware gather, kept on purpose.
        warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\.all_gather is deprecated",
                                category=FutureWarning)
        return list(dist_fn.all_gather(x))


def all_gather_batch(x: torch.Tensor, with_grad: bool = True) -> tuple[torch.Tensor, int]:
    """Concatenate ``x`` over all ranks along dim 0 (in rank order).

    Args:
        x: (B_r, ...) this rank's rows; B_r may differ between ranks, the other dims may not.
        with_grad: keep the graph: the backward pass sends each rank the gradient of the sum of all ranks'
            losses with respect to its own rows (see the module docstring).

    Returns:
        ``(x_all, offset)``: (sum_r B_r, ...) and the index of this rank's first row in ``x_all``.
        Without an initialised process group (or with one process) returns ``(x, 0)``.
    """
    if not distributed():
        return x, 0
    sizes = _batch_sizes(x)
    offset = sum(sizes[: dist.get_rank()])
    longest = max(sizes)
    if not with_grad:
        x = x.detach()
    if x.shape[0] < longest:
        x = torch.cat([x, x.new_zeros((longest - x.shape[0], *x.shape[1:]))])
    if with_grad:
        parts = _gather_with_grad(x.contiguous())
    else:
        parts = [torch.empty_like(x) for _ in sizes]
        dist.all_gather(parts, x.contiguous())
    return torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)]), offset


def gather_padded(x: torch.Tensor, value: float | int | bool = 0) -> torch.Tensor:
    """All ranks' rows of ``x`` (B_r, S_r, ...) without gradient, dim 1 padded with ``value`` to the largest S_r.

    Returns:
        (sum_r B_r, max_r S_r, ...); ``x`` itself on one process.
    """
    return all_gather_batch(pad_dim1_to_global_max(x, value), with_grad=False)[0]
