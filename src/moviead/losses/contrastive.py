"""Symmetric InfoNCE over the global batch: shared by the PME's VTC and the CLIP adaptation losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from moviead.losses.distributed import all_gather_batch


def normalized_pair(
    a: torch.Tensor, b: torch.Tensor, gather: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """L2-normalise both sides (last dim); with ``gather``, also all ranks' rows (with gradient).

    Args:
        a: (B, ..., E); b: (B, ..., E), item i of ``a`` pairs with item i of ``b``.
        gather: all-gather both sides over ranks when torch.distributed is initialised.

    Returns:
        ``(a, b, a_all, b_all, offset)``: the local normalised tensors, the global ones (N = sum of the ranks'
        B rows) and the global index of this rank's first row.
    """
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    if not gather:
        return a, b, a, b, 0
    a_all, offset = all_gather_batch(a)
    b_all, _ = all_gather_batch(b)
    return a, b, a_all, b_all, offset


def info_nce(
    sim_v2t: torch.Tensor,
    sim_t2v: torch.Tensor,
    temp: torch.Tensor | float,
    offset: int = 0,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Symmetric InfoNCE: (CE(sim_v2t / temp, pos) + CE(sim_t2v / temp, pos)) / 2, pos_i = offset + i.

    Args:
        sim_v2t, sim_t2v: (B, N) similarities of local rows against all N candidates.
        temp: scalar temperature (a learnable Parameter or a float).
        offset: global index of local row 0.
        label_smoothing: as in ``F.cross_entropy`` (LAVIS's BLIP-2 uses 0.1; InfoNCE proper is 0).

    Returns:
        scalar loss (mean over the B local rows).
    """
    targets = torch.arange(sim_v2t.shape[0], device=sim_v2t.device) + offset
    loss_v2t = F.cross_entropy(sim_v2t / temp, targets, label_smoothing=label_smoothing)
    loss_t2v = F.cross_entropy(sim_t2v / temp, targets, label_smoothing=label_smoothing)
    return (loss_v2t + loss_t2v) / 2
