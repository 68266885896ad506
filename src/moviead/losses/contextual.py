"""Stage-II loss: the Contextual Contrastive Loss (CCL) of LoCo-MAD's Dynamic Selection Module (eq. 8-9).

For one sample with context-proposal sentence features ``T_i`` (valid items only), the selected (top-k) set
``K`` and relevance scores ``s_i``:

    T+ = (1/k) * sum_{i in K} s_i T_i,      T- = [T_i for valid i not in K],
    L  = -log exp(cos(T+, v)/tau) / sum_{t in {T+} u T-} exp(cos(t, v)/tau)

with ``v`` the clip's visual summary. ``cos`` is scale-invariant, so neither the ``1/k`` nor the overall scale of
the ``s_i`` change the loss: only the *relative* weights of the selected items do. We keep the formula as
written. Two consequences worth knowing (the tests pin both):

- with k = 1 the loss does not depend on the scores at all (no gradient reaches the sampler);
- the loss is homogeneous of degree 0 in the selected scores, so sum_{i in K} s_i dL/ds_i = 0 (Euler). When
  the scores are a softmax over logits ``z``, dL/dz_j = s_j (g_j - sum_{i in K} s_i g_i) with g = dL/ds restricted
  to K, i.e. dL/dz_j = s_j g_j for selected j and exactly 0 for unselected j; the selected logits' gradients
  sum to 0. The sampler only learns to re-rank items *within* the selected set. With a deterministic top-k, an
  item the sampler ranks low is never selected, so it is never re-ranked; the DSM therefore draws its k items from
  ``s_c`` in training (:func:`moviead.models.dsm.sample_k_mask`, ``DSMConfig.train_selection``), which selects
  every item now and then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from moviead.models.dsm import DSMOutput


def contextual_contrastive_loss(
    scores: torch.Tensor,
    selected: torch.Tensor,
    valid: torch.Tensor,
    text_features: torch.Tensor,
    visual_summary: torch.Tensor,
    temperature: torch.Tensor | float,
) -> torch.Tensor:
    """LoCo-MAD's CCL (eq. 8-9), averaged over the samples that have a positive.

    Args:
        scores: (B, P) relevance scores ``s_c`` (the sampler's softmax); only the selected entries are used.
        selected: (B, P) bool, the top-k items (``K``); entries that are not ``valid`` are ignored.
        valid: (B, P) bool, real (non-padded) proposal items.
        text_features: (B, P, Dc) sentence features ``T_c`` of the items.
        visual_summary: (B, Dc) the clip's visual summary ``v``.
        temperature: scalar ``tau`` (> 0), a tensor (learnable) or a float.

    Returns:
        Scalar: the mean of the per-sample losses over the samples with at least one selected valid item
        (with selection from top-k clipped to the number of valid items, those are the samples with at least
        one valid item). ``k`` is the number of selected valid items of each sample. Samples without a positive
        are left out; when no sample has one, the result is 0 but still attached to the graph (a finite
        per-sample value times 0), so ``backward`` works and gives zero gradients.
    """
    selected = selected.bool() & valid.bool()
    negative = valid.bool() & ~selected
    weights = torch.where(selected, scores, torch.zeros_like(scores))  # (B, P)
    count = selected.sum(dim=1)  # (B,) k per sample
    weights = weights / count.clamp(min=1).unsqueeze(1).to(weights.dtype)
    positive = torch.einsum("bp,bpd->bd", weights, text_features)  # (B, Dc)  T+

    v = F.normalize(visual_summary, dim=-1)  # (B, Dc)
    pos_sim = (F.normalize(positive, dim=-1) * v).sum(-1)  # (B,)  0 when T+ = 0 (no positive)
    neg_sim = torch.einsum("bpd,bd->bp", F.normalize(text_features, dim=-1), v)  # (B, P)
    logits = torch.cat([pos_sim.unsqueeze(1), neg_sim], dim=1) / temperature  # (B, 1+P)
    keep = torch.cat([torch.ones_like(negative[:, :1]), negative], dim=1)  # the positive is always a candidate
    logits = logits.masked_fill(~keep, float("-inf"))
    per_sample = torch.logsumexp(logits, dim=1) - logits[:, 0]  # (B,) finite: logits[:, 0] is never masked

    has_positive = (count > 0).to(per_sample.dtype)
    return (per_sample * has_positive).sum() / has_positive.sum().clamp(min=1.0)


def dsm_contextual_loss(out: DSMOutput) -> torch.Tensor:
    """The CCL of one :class:`~moviead.models.dsm.DynamicSelectionModule` pass: its scores and selection, the
    proposal features it scored, the clip's visual summary and its (clamped, learnable) temperature (scalar)."""
    return contextual_contrastive_loss(
        out.scores, out.selected, out.valid, out.proposal_features, out.visual_summary, out.temperature
    )
