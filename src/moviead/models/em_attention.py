"""Contextual EM attention of DistinctAD Stage-II (SPEC §5.3): Expectation-Maximization Attention over the frames of a
clip and its neighbouring clips (EMANet's EM attention applied to a movie's context; not a moving average of weights).

Per sample, X (N, D) = the frames of the current clip followed by those of its ``n_context_clips`` neighbours
(padded frames masked out). Starting from the initial bases μ⁰ (K, D), L2-normalised, each of ``n_iters``
iterations does

    E-step   Z = softmax_K(λ · X μᵀ)                        (N, K), rows of padded frames set to 0
    M-step   μ = normalise((Z / Σ_n Z)ᵀ X)                   (K, D), each basis the Z-weighted mean of the frames

The bases are the context's common components. The current clip's frames are then projected onto the final
bases, Z_cur = softmax_K(λ · X_cur μᵀ), reconstructed as Z_cur μ, and the prefix gets the K bases, the residual
X_cur − Z_cur μ (what the common components do not explain: what is distinctive), or both.

Choices where SPEC/EMANet leave room (the first and third are options):

- ``normalize_input`` (default True): X is L2-normalised per frame first, so the E-step logits are λ·cos (CLIP
  features are compared by cosine) and the residual is on the scale of the unit-norm bases. False uses X as is.
- The projection of the current clip uses the *final* bases (one more E-step on X_cur); EMANet reuses the last
  iteration's Z, which was computed against the bases before the last M-step.
- ``grad_last_only`` (default True, EMANet): iterations 1 … n−1 run without gradient; the last iteration and the
  projection carry it. The initial bases then get no gradient at all when n_iters > 1, so they are a fixed buffer
  (DDP would otherwise wait for a gradient that never comes); EMANet moves its initial bases by a moving average
  of the batches' final bases, we keep them fixed: they only seed the iterations. With ``grad_last_only=False``
  (or n_iters = 1) they are a parameter learned by back-propagation through every iteration.
- ``bases_from`` (default ``"clip_and_context"``, SPEC §5.3): X holds the current clip's frames and its neighbours'.
  ``"context"`` estimates the bases from the neighbouring clips' frames only, so they are the context's common
  components by construction and the current clip's residual is exactly what its context does not explain; with
  ``"clip_and_context"`` some of the K bases can fit the current clip itself, and its residual then loses what tells
  it apart (scripts/em_attention_probe.py measures both). A sample without any real neighbouring frame then has
  zero bases (masked out of the prefix) and its whole clip as residual.
- The initial bases are drawn from a generator seeded with ``init_seed``, N(0, 2/K) as EMANet, then L2-normalised,
  so rebuilding the module from its config gives the same fixed bases whatever the global RNG state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

EMA_OUTPUTS = ("bases", "residual", "both")
BASES_FROM = ("clip_and_context", "context")


@dataclass
class EMAttentionOutput:
    """What :class:`ContextualEMAttention` returns.

    Attributes:
        tokens: (B, Q, D) the prefix tokens: bases (Q = K), residual (Q = T) or both (Q = K + T, bases first).
        mask: (B, Q) bool, True on real tokens (bases: always with ``bases_from="clip_and_context"``, only where the
            sample has a real neighbouring frame with ``"context"``; residual rows follow the frame mask).
        bases: (B, K, D) the final bases μ, unit norm.
        responsibilities: (B, N, K) the last iteration's Z over the frames the bases were estimated from (the clip's
            and its neighbours', or the neighbours' only), 0 on padded frames.
        projection: (B, T, K) Z_cur, the current clip's frames against the final bases (0 on padded frames).
        residual: (B, T, D) X_cur − Z_cur μ (0 on padded frames).
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    bases: torch.Tensor
    responsibilities: torch.Tensor
    projection: torch.Tensor
    residual: torch.Tensor


class ContextualEMAttention(nn.Module):
    """EM attention over a clip and its context clips.

    Args:
        dim: D, the frame-feature width.
        num_bases: K (16 in SPEC §5.3).
        n_iters: EM iterations (3).
        lam: λ, the scale of the E-step logits.
        output: ``"bases"``, ``"residual"`` or ``"both"`` (default).
        grad_last_only: gradient through the final iteration only (EMANet); False: through every iteration.
        normalize_input: L2-normalise the frames before EM (see the module docstring).
        init_seed: seed of the initial bases.
        bases_from: ``"clip_and_context"`` (SPEC) or ``"context"`` (the neighbours only; see the module docstring).
    """

    def __init__(
        self,
        dim: int,
        num_bases: int = 16,
        n_iters: int = 3,
        lam: float = 10.0,
        output: str = "both",
        grad_last_only: bool = True,
        normalize_input: bool = True,
        init_seed: int = 0,
        bases_from: str = "clip_and_context",
    ) -> None:
        super().__init__()
        if output not in EMA_OUTPUTS:
            raise ValueError(f"output must be one of {EMA_OUTPUTS}, got {output!r}")
        if bases_from not in BASES_FROM:
            raise ValueError(f"bases_from must be one of {BASES_FROM}, got {bases_from!r}")
        if num_bases < 1 or n_iters < 1:
            raise ValueError(f"num_bases and n_iters must be >= 1, got {num_bases}, {n_iters}")
        self.num_bases = num_bases
        self.n_iters = n_iters
        self.lam = float(lam)
        self.output = output
        self.grad_last_only = grad_last_only
        self.normalize_input = normalize_input
        self.bases_from = bases_from
        generator = torch.Generator().manual_seed(init_seed)
        initial = F.normalize(torch.randn(num_bases, dim, generator=generator) * (2.0 / num_bases) ** 0.5, dim=-1)
        self.learned_init = not grad_last_only or n_iters == 1
        if self.learned_init:
            self.initial_bases = nn.Parameter(initial)
        else:
            self.register_buffer("initial_bases", initial)

    def e_step(self, x: torch.Tensor, bases: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Z = softmax_K(λ X μᵀ): x (B, N, D), bases (B, K, D), mask (B, N) bool -> (B, N, K), 0 on padded rows."""
        z = torch.softmax(self.lam * torch.einsum("bnd,bkd->bnk", x, bases), dim=-1)
        return z * mask.unsqueeze(-1).to(z.dtype)

    @staticmethod
    def m_step(x: torch.Tensor, z: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        """μ = normalise((Z / Σ_n Z)ᵀ X): x (B, N, D), z (B, N, K) -> (B, K, D), unit rows."""
        weights = z / (z.sum(dim=1, keepdim=True) + eps)
        return F.normalize(torch.einsum("bnk,bnd->bkd", weights, x), dim=-1)

    def em(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``n_iters`` EM iterations: x (B, N, D), mask (B, N) -> final bases (B, K, D) and last Z (B, N, K)."""
        bases = F.normalize(self.initial_bases, dim=-1).to(x.dtype).expand(x.shape[0], -1, -1)
        z = x.new_zeros(*x.shape[:2], self.num_bases)
        early = self.n_iters - 1 if self.grad_last_only else 0
        if early:
            with torch.no_grad():
                for _ in range(early):
                    z = self.e_step(x, bases, mask)
                    bases = self.m_step(x, z)
        for _ in range(self.n_iters - early):
            z = self.e_step(x, bases, mask)
            bases = self.m_step(x, z)
        return bases, z

    def forward(
        self,
        frames: torch.Tensor,
        frame_mask: torch.Tensor,
        context_frames: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> EMAttentionOutput:
        """Bases of the clip and its context, and the clip's residual.

        Args:
            frames: (B, T, D) the current clip's frames; frame_mask: (B, T) bool, True on real frames.
            context_frames: (B, M, D) the neighbouring clips' frames, concatenated (any order); None: none.
            context_mask: (B, M) bool; required with ``context_frames``.

        Returns:
            :class:`EMAttentionOutput`; ``tokens`` (B, Q, D) and ``mask`` (B, Q) are what the projector reads.
        """
        cur_mask = frame_mask.bool()
        if context_frames is None:
            if self.bases_from == "context":
                raise ValueError("bases_from='context' needs context_frames (B, M, D) and context_mask (B, M)")
            x_all, mask_all = frames, cur_mask
        else:
            if context_mask is None:
                raise ValueError("context_frames needs context_mask (B, M) bool")
            x_all = torch.cat([frames, context_frames.to(frames.dtype)], dim=1)
            mask_all = torch.cat([cur_mask, context_mask.bool()], dim=1)
        if self.normalize_input:
            x_all = F.normalize(x_all, dim=-1)
        x_cur = x_all[:, : frames.shape[1]]
        if self.bases_from == "context":
            em_x, em_mask = x_all[:, frames.shape[1]:], mask_all[:, frames.shape[1]:]
            has_context = em_mask.any(dim=1)  # (B,)
        else:
            em_x, em_mask, has_context = x_all, mask_all, torch.ones_like(cur_mask[:, 0])
        # EM over frames that are all padding gives zero bases (Z = 0, normalise(0) = 0): no neighbour, the clip is
        # all residual
        bases, z = self.em(em_x, em_mask)
        projection = self.e_step(x_cur, bases, cur_mask)  # (B, T, K)
        residual = (x_cur - torch.einsum("btk,bkd->btd", projection, bases)) * cur_mask.unsqueeze(-1).to(x_cur.dtype)
        base_mask = has_context[:, None].expand(bases.shape[:2]).clone()
        if self.output == "bases":
            tokens, mask = bases, base_mask
        elif self.output == "residual":
            tokens, mask = residual, cur_mask
        else:
            tokens, mask = torch.cat([bases, residual], dim=1), torch.cat([base_mask, cur_mask], dim=1)
        return EMAttentionOutput(tokens, mask, bases, z, projection, residual)
