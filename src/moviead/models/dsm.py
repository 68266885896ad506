"""DSM — the Dynamic Selection Module of LoCo-MAD (§3.2, eq. 5-9).

Picks the k context-proposal items (previous ADs with their subtitles) most relevant to the current clip:

- **CPE** (Context Proposal Encoder): ``n_layers`` blocks of self-attention over the items' sentence features
  ``T_c`` (eq. 5), cross-attention from the items to the clip's visual features ``V`` (eq. 6), and a
  feed-forward network. Blocks are **pre-LN** (LayerNorm before each sub-layer, residual around it) with a final
  LayerNorm on the output.
- **Sampler** (eq. 7): ``Linear(Dc -> 1)`` and a softmax over the valid items of each sample, then top-k.
- **CCL** (eq. 8-9), the loss that trains the sampler, is not computed here: the DSM returns what it needs (scores,
  selection, the items' features, the clip's visual summary ``v`` = the masked mean of ``V`` projected to ``Dc``
  when the widths differ, and its learnable temperature), and :func:`moviead.losses.contextual.dsm_contextual_loss`
  computes it (the Stage-II objective: :class:`moviead.losses.captioning.CaptioningLoss`).

Our choices beyond the paper, both off by default: an optional **similarity prior**, which adds the CCL's own
similarity ``cos(T_i, v) / tau`` to the sampler's logits (§3.2 says the DSM selects "according to the similarities
between the context descriptions and the current movie clip", but eq. 7's linear sampler over ``T_ca`` has to learn
that similarity from the CCL, whose gradient only re-ranks the items it already selected); and an optional learned
**recency embedding** added to ``T_c`` before the CPE, off by
default (as in the paper; its ablation row is ``configs/experiment/locomad/t6_dsm_top3_recency.yaml``). The
paper gives the items no position, which leaves self-attention blind to their order; we index positions from
the newest valid item backwards (newest = 0), so "the previous AD" has the same embedding whatever the number
of items or the padding. Items older than ``max_proposal - 1`` share the last embedding.

Top-k is not differentiable: the sampler gets gradient only through the relevance scores that weight ``T+``
in the CCL (see :mod:`moviead.losses.contextual` for what that gradient can and cannot do). That gradient never
reaches an item outside the selection, so in training (``train_selection="sample"``, the default) the k items are
*drawn* from ``s_c`` without replacement (Gumbel top-k): §3.2 calls the component the Sampler and says "we sample
top k"; every item is selected now and then, and the CCL can rank it. In eval mode the selection is the top k.
``train_selection="top_k"`` selects the top k in training too (scripts/dsm_selection_probe.py compares the two).

Inputs are tensors only; the item axis is in time order, oldest first, with padded items marked invalid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from moviead.models.qformer_passes import attend


@dataclass
class DSMOutput:
    """What :class:`DynamicSelectionModule` returns.

    Attributes:
        scores: (B, P) relevance scores, a softmax over each sample's valid items; 0 on padded items and all 0
            for a sample without valid items.
        selected: (B, P) bool, the top-k valid items in the caller's (oldest-first) item order; no gradient.
        temperature: scalar, the CCL temperature (the learnable one, clamped).
        valid: (B, P) bool, the real (non-padded) items.
        proposal_features: (B, P, Dc) the items' sentence features ``T_c`` as given (the CCL's candidates).
        visual_summary: (B, Dc) the clip's visual summary ``v`` (:meth:`DynamicSelectionModule.visual_summary`).
    """

    scores: torch.Tensor
    selected: torch.Tensor
    temperature: torch.Tensor
    valid: torch.Tensor
    proposal_features: torch.Tensor
    visual_summary: torch.Tensor


def recency_positions(valid: torch.Tensor) -> torch.Tensor:
    """Index of each item counted from the newest valid item backwards.

    Args:
        valid: (B, P) bool, items oldest first.

    Returns:
        (B, P) long: for item j, the number of valid items after it (newest valid item -> 0). Padded items get
        the count of their newer valid items too; their value is never used.
    """
    v = valid.long()
    return v.flip(-1).cumsum(-1).flip(-1) - v


def top_k_mask(scores: torch.Tensor, valid: torch.Tensor, k: int) -> torch.Tensor:
    """The k highest-scoring valid items of each sample, ties broken toward the newer (later) item.

    Args:
        scores: (B, P) float, items oldest first.
        valid: (B, P) bool.
        k: items to keep; clipped to the number of valid items per sample.

    Returns:
        (B, P) bool in the same item order; no gradient.
    """
    with torch.no_grad():
        keys = scores.detach().float().masked_fill(~valid, float("-inf")).flip(-1)  # newest first
        order = torch.sort(keys, dim=-1, descending=True, stable=True).indices  # equal keys keep newest first
        ranks = torch.empty_like(order)
        arange = torch.arange(order.shape[-1], device=order.device).expand_as(order)
        ranks.scatter_(-1, order, arange)  # rank of each (flipped) item
        keep = ranks < valid.sum(-1, keepdim=True).clamp(max=k)
        return keep.flip(-1) & valid


def sample_k_mask(logits: torch.Tensor, valid: torch.Tensor, k: int) -> torch.Tensor:
    """k valid items drawn without replacement from ``softmax(logits)`` (Gumbel top-k; torch's RNG).

    Args:
        logits: (B, P) float, the sampler's logits (invalid entries are ignored).
        valid: (B, P) bool.
        k: items to draw; clipped to the number of valid items per sample.

    Returns:
        (B, P) bool in the same item order; no gradient.
    """
    with torch.no_grad():
        # torch.rand is in [0, 1): only 0 needs keeping off (log 0); 1 never comes
        uniform = torch.rand(logits.shape, device=logits.device).clamp_min(torch.finfo(torch.float32).tiny)
        gumbel = -torch.log(-torch.log(uniform))
        keys = logits.detach().float().masked_fill(~valid, 0.0) + gumbel
        return top_k_mask(keys, valid, k)


def _any_key(mask: torch.Tensor) -> torch.Tensor:
    """A key-padding mask (True = ignore) from a validity mask (B, N), with rows that have no valid key fully
    unmasked: attention over nothing is NaN in PyTorch, and those rows' outputs are never used."""
    ignore = ~mask
    return ignore & mask.any(dim=-1, keepdim=True)


def multihead_attention(
    mha: nn.MultiheadAttention, query: torch.Tensor, key: torch.Tensor, ignore: torch.Tensor
) -> torch.Tensor:
    """What ``mha(query, key, key, key_padding_mask=ignore, need_weights=False)[0]`` computes (batch first), with
    ``mha`` as the holder of the weights: the projections as one or two matrix products and one
    ``scaled_dot_product_attention`` call (:func:`~moviead.models.qformer_passes.attend`), without ``nn.MultiheadAttention``'s per-call checks and reshapes, which
    cost more than the arithmetic at the DSM's sizes (tens of items).

    Args:
        mha: a batch-first ``nn.MultiheadAttention`` with biases.
        query: (B, N, D); key: (B, M, Dk), the values too (self-attention when ``key is query``).
        ignore: (B, M) bool key-padding mask, True = not attended; each row needs an attended key.

    Returns:
        (B, N, D).
    """
    dim, heads = mha.embed_dim, mha.num_heads
    if key is query:
        q, k, v = F.linear(query, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
    else:
        w_kv = (mha.in_proj_weight[dim:] if mha._qkv_same_embed_dim
                else torch.cat([mha.k_proj_weight, mha.v_proj_weight]))
        w_q = mha.in_proj_weight[:dim] if mha._qkv_same_embed_dim else mha.q_proj_weight
        q = F.linear(query, w_q, mha.in_proj_bias[:dim])
        k, v = F.linear(key, w_kv, mha.in_proj_bias[dim:]).chunk(2, dim=-1)

    def split(x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, h, L, D/h)
        return x.unflatten(-1, (heads, dim // heads)).transpose(1, 2)

    attended = attend(split(q), split(k), split(v), ~ignore[:, None, None, :],
                      mha.dropout if mha.training else 0.0, "sdpa")  # (B, N, D)
    return mha.out_proj(attended)


class ContextProposalLayer(nn.Module):
    """One pre-LN CPE block: self-attention over items, cross-attention to the frames, feed-forward."""

    def __init__(self, dim: int, visual_dim: int, n_heads: int, dropout: float, ffn_mult: int = 4) -> None:
        super().__init__()
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, n_heads, dropout=dropout, batch_first=True)
        self.norm_cross = nn.LayerNorm(dim)
        self.cross_attn = nn.MultiheadAttention(
            dim, n_heads, dropout=dropout, kdim=visual_dim, vdim=visual_dim, batch_first=True
        )
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_mult * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_mult * dim, dim)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, items: torch.Tensor, item_ignore: torch.Tensor, visual: torch.Tensor, visual_ignore: torch.Tensor
    ) -> torch.Tensor:
        """items (B, P, Dc), item_ignore (B, P) bool, visual (B, T, Dv), visual_ignore (B, T) bool -> (B, P, Dc).

        ``*_ignore`` are key-padding masks (True = not attended).
        """
        x = self.norm_self(items)
        items = items + self.dropout(multihead_attention(self.self_attn, x, x, item_ignore))
        attended = multihead_attention(self.cross_attn, self.norm_cross(items), visual, visual_ignore)
        items = items + self.dropout(attended)
        return items + self.dropout(self.ffn(self.norm_ffn(items)))


class DynamicSelectionModule(nn.Module):
    """LoCo-MAD's DSM: scores the context-proposal items against the clip and selects the top k.

    Args:
        text_dim: Dc, width of the sentence features (and of the CPE).
        visual_dim: Dv, width of the visual features the CPE cross-attends to.
        n_layers: CPE blocks.
        n_heads: attention heads (must divide ``text_dim``).
        top_k: items selected per sample (clipped to the number of valid items).
        temp_init: initial CCL temperature (learnable, clamped to >= ``min_temperature``).
        max_proposal: rows of the recency embedding (L_c, the most proposal items).
        recency_embedding: add the learned recency embedding to ``T_c`` (see the module docstring); off in
            the paper.
        dropout: dropout inside the CPE.
        project_visual: force a ``Linear(Dv -> Dc)`` on the visual summary even when ``Dv == Dc``; when the
            widths differ the projection is always there.
        similarity_prior: add ``cos(T_i, v) / tau`` (the CCL's similarity and temperature) to the sampler's
            logits; off in the paper (see the module docstring).
        hidden_dim: Dh, width of the CPE blocks and the sampler; None = ``text_dim`` (the paper: the CPE runs on
            ``T_c`` itself). Otherwise ``T_c`` enters through a ``Linear(Dc -> Dh)`` (a small recipe's DSM need not
            be as wide as its sentence features); the CCL still compares ``T_c`` with ``v`` at Dc.
    """

    min_temperature = 1e-3

    def __init__(
        self,
        text_dim: int,
        visual_dim: int,
        n_layers: int = 2,
        n_heads: int = 8,
        top_k: int = 3,
        temp_init: float = 0.05,
        max_proposal: int = 32,
        recency_embedding: bool = False,
        dropout: float = 0.1,
        project_visual: bool = False,
        similarity_prior: bool = False,
        hidden_dim: int | None = None,
        train_selection: str = "sample",
    ) -> None:
        super().__init__()
        if train_selection not in ("top_k", "sample"):
            raise ValueError(f"train_selection must be 'top_k' or 'sample', got {train_selection!r}")
        self.train_selection = train_selection
        width = text_dim if hidden_dim is None else int(hidden_dim)
        if width % n_heads:
            raise ValueError(f"the CPE width {width} (hidden_dim, else text_dim) is not divisible by n_heads={n_heads}")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.top_k = top_k
        self.input_proj: nn.Module = nn.Identity() if width == text_dim else nn.Linear(text_dim, width)
        self.recency = nn.Embedding(max_proposal, width) if recency_embedding else None
        if self.recency is not None:
            nn.init.normal_(self.recency.weight, std=0.02)
        self.layers = nn.ModuleList(
            [ContextProposalLayer(width, visual_dim, n_heads, dropout) for _ in range(n_layers)]
        )
        self.final_norm = nn.LayerNorm(width)
        self.sampler = nn.Linear(width, 1)
        project = project_visual or visual_dim != text_dim
        self.visual_proj: nn.Module = nn.Linear(visual_dim, text_dim) if project else nn.Identity()
        self.temperature = nn.Parameter(torch.tensor(float(temp_init)))
        self.similarity_prior = similarity_prior

    def clamped_temperature(self) -> torch.Tensor:
        """The CCL temperature, clamped to >= ``min_temperature`` (scalar)."""
        return self.temperature.clamp(min=self.min_temperature)

    def visual_summary(self, visual: torch.Tensor, visual_mask: torch.Tensor | None) -> torch.Tensor:
        """Masked mean of the frames, projected to Dc: visual (B, T, Dv), visual_mask (B, T) -> (B, Dc).

        A sample without valid frames gets the projection of a zero vector.
        """
        if visual_mask is None:
            mean = visual.mean(dim=1)
        else:
            weights = visual_mask.to(visual.dtype).unsqueeze(-1)  # (B, T, 1)
            mean = (visual * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.visual_proj(mean)

    def relevance_logits(
        self,
        proposal_features: torch.Tensor,
        proposal_valid: torch.Tensor,
        visual: torch.Tensor,
        visual_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """CPE + sampler projection: (B, P, Dc), (B, P), (B, T, Dv), (B, T) -> logits (B, P) (before masking)."""
        items = self.input_proj(proposal_features)  # (B, P, Dh)
        if self.recency is not None:
            positions = recency_positions(proposal_valid).clamp(max=self.recency.num_embeddings - 1)
            items = items + self.recency(positions)
        if visual_mask is None:
            visual_mask = torch.ones(visual.shape[:2], dtype=torch.bool, device=visual.device)
        item_ignore, visual_ignore = _any_key(proposal_valid), _any_key(visual_mask.bool())
        for layer in self.layers:
            items = layer(items, item_ignore, visual, visual_ignore)
        return self.sampler(self.final_norm(items)).squeeze(-1)

    def forward(
        self,
        proposal_features: torch.Tensor,
        proposal_valid: torch.Tensor,
        visual: torch.Tensor,
        visual_mask: torch.Tensor | None = None,
    ) -> DSMOutput:
        """Score and select; also return what the CCL needs.

        Args:
            proposal_features: (B, P, Dc) sentence features ``T_c`` of the items, oldest first.
            proposal_valid: (B, P) bool, False on padded items (a sample may have none).
            visual: (B, T, Dv) the clip's visual features (frames or PME query outputs).
            visual_mask: (B, T) bool, True on real positions; None = all real.

        Returns:
            :class:`DSMOutput`: scores (B, P), selected (B, P) bool, the temperature, the validity mask, the
            proposal features and the visual summary (B, Dc).
        """
        valid = proposal_valid.bool()
        logits = self.relevance_logits(proposal_features, valid, visual, visual_mask)
        summary = self.visual_summary(visual, visual_mask)  # (B, Dc)
        if self.similarity_prior:
            cosine = torch.einsum("bpd,bd->bp", F.normalize(proposal_features, dim=-1), F.normalize(summary, dim=-1))
            logits = logits + cosine / self.clamped_temperature()
        has_item = valid.any(dim=-1, keepdim=True)
        # empty samples: softmax over unmasked zeros (finite), then zeroed by the valid mask
        logits = logits.masked_fill(~valid & has_item, float("-inf")).masked_fill(~has_item, 0.0)
        scores = torch.softmax(logits, dim=-1) * valid.to(logits.dtype)
        if self.training and self.train_selection == "sample":
            selected = sample_k_mask(logits, valid, self.top_k)
        else:
            selected = top_k_mask(scores, valid, self.top_k)
        return DSMOutput(
            scores=scores, selected=selected, temperature=self.clamped_temperature(), valid=valid,
            proposal_features=proposal_features, visual_summary=summary,
        )
