"""Retrieval metrics for Stage-I alignment: R@k both ways and median rank, ground truth on the diagonal."""

from __future__ import annotations

import torch


def ranks_of_diagonal(sim: torch.Tensor) -> torch.Tensor:
    """1-based rank of the correct item of each row, the correct item of row i being column i.

    Args:
        sim: (N, N) similarities, query rows against candidate columns.

    Returns:
        (N,) long. Ties count against the correct item (a tie with a wrong candidate ranks it lower), so a
        constant similarity matrix scores R@1 = 0 rather than 1.
    """
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"expected a square similarity matrix, got shape {tuple(sim.shape)}")
    correct = sim.diagonal().unsqueeze(1)  # (N, 1)
    others = sim.clone()
    others.fill_diagonal_(float("-inf"))
    return (others >= correct).sum(dim=1) + 1


def retrieval_metrics(sim_t2v: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Text→video and video→text R@k (in %) and median rank from a (N_text, N_video) similarity matrix.

    Returns keys ``t2v_r{k}``, ``v2t_r{k}``, ``t2v_medr``, ``v2t_medr``.
    """
    sim = sim_t2v.float()
    out: dict[str, float] = {}
    for name, matrix in (("t2v", sim), ("v2t", sim.T)):
        ranks = ranks_of_diagonal(matrix)
        for k in ks:
            out[f"{name}_r{k}"] = 100.0 * (ranks <= k).float().mean().item()
        out[f"{name}_medr"] = ranks.float().median().item()
    return out
