"""LoCo-MAD Stage-I losses of the PME (SPEC §4.1, BLIP-2): video-text contrastive (VTC), video-text matching (VTM)
with hard negatives, video-grounded text generation (VTG), their weights, and :class:`PMELoss`, which computes
the weighted objective of a :class:`~moviead.models.qformer.PretrainedMovieEncoder` on a Stage-I batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from moviead.data.collate import BatchKey
from moviead.losses.contrastive import info_nce, normalized_pair
from moviead.losses.distributed import distributed, gather_padded, pad_dim1

if TYPE_CHECKING:
    from moviead.models.qformer import PretrainedMovieEncoder
    from moviead.models.qformer_passes import QueryCache

# ---------------------------------------------------------------------------------------------- VTC


def vtc_similarities(
    query_feats: torch.Tensor, text_feats: torch.Tensor, gather: bool = True
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Max-over-queries cosine similarities between local and (if ``gather``) global items.

    s(v, t) = max_q cos(query_q(v), t).

    Args:
        query_feats: (B, Nq, E) query features of the local videos (normalised here).
        text_feats: (B, E) [CLS] features of the local texts (normalised here).
        gather: all-gather (with gradient) the other side over ranks when torch.distributed is initialised.

    Returns:
        ``(sim_v2t, sim_t2v, offset)``: (B, N) local videos vs all N texts, (B, N) local texts vs all N videos,
        and the global index of this rank's first item (the positive of local row i is column offset + i).
    """
    query_feats, text_feats, query_all, text_all, offset = normalized_pair(query_feats, text_feats, gather)
    sim_v2t = torch.einsum("bqe,ne->bnq", query_feats, text_all).amax(dim=-1)  # (B, N)
    sim_t2v = torch.einsum("be,nqe->bnq", text_feats, query_all).amax(dim=-1)  # (B, N)
    return sim_v2t, sim_t2v, offset


def vtc_loss(
    query_feats: torch.Tensor,
    text_feats: torch.Tensor,
    temp: torch.Tensor | float,
    gather: bool = True,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """VTC loss: max-over-queries cosine, symmetric InfoNCE over the global batch.

    Args:
        query_feats: (B, Nq, E); text_feats: (B, E); temp: scalar; gather: use the global batch under DDP.

    Returns:
        scalar: this rank's loss; averaged over ranks (as DDP does with gradients) it equals the loss of one
        process on the joined batch.
    """
    sim_v2t, sim_t2v, offset = vtc_similarities(query_feats, text_feats, gather)
    return info_nce(sim_v2t, sim_t2v, temp, offset, label_smoothing)


# ---------------------------------------------------------------------------------------------- VTM


def positive_mask(batch_size: int, num_candidates: int, offset: int = 0, device: Any = None) -> torch.Tensor:
    """(B, N) bool, True at ``[i, offset + i]``: the positive pair of each local row."""
    mask = torch.zeros(batch_size, num_candidates, dtype=torch.bool, device=device)
    rows = torch.arange(batch_size, device=device)
    mask[rows, rows + offset] = True
    return mask


@torch.no_grad()
def sample_hard_negatives(
    sim_v2t: torch.Tensor,
    sim_t2v: torch.Tensor,
    temp: torch.Tensor | float = 1.0,
    offset: int = 0,
    positives: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hard negatives for VTM, sampled from softmax(similarity / temp) with the positives excluded.

    Args:
        sim_v2t: (B, N) local videos vs all texts; sim_t2v: (B, N) local texts vs all videos.
        temp: temperature of the sampling softmax.
        offset: global index of local row 0 (used when ``positives`` is None).
        positives: (B, N) bool, pairs never to sample (default: ``[i, offset + i]``); add pairs that share
            a text or a clip to keep duplicates from being drawn as negatives. Every row needs a non-positive.
        generator: for reproducible draws; the sampling runs on ``generator.device``.

    Returns:
        ``(neg_text, neg_video)``: (B,) long each: for local video i the index of a negative text among the N
        texts, and for local text i the index of a negative video among the N videos.
    """
    if positives is None:
        positives = positive_mask(sim_v2t.shape[0], sim_v2t.shape[1], offset, sim_v2t.device)

    def draw(sim: torch.Tensor) -> torch.Tensor:
        logits = (sim.detach().float() / temp).masked_fill(positives, float("-inf"))
        probs = logits.softmax(dim=-1)
        if generator is not None:
            probs = probs.to(generator.device)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1).to(sim.device)

    return draw(sim_v2t), draw(sim_t2v)


def vtm_loss(itm_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """VTM cross-entropy on query-averaged 2-way logits.

    Args:
        itm_logits: (N, Nq, 2) per-query logits (or (N, 2), already averaged).
        labels: (N,) long, 1 = matching pair, 0 = not matching.

    Returns:
        scalar mean cross-entropy.
    """
    if itm_logits.dim() == 3:
        itm_logits = itm_logits.mean(dim=1)  # (N, 2)
    return F.cross_entropy(itm_logits, labels)


# ---------------------------------------------------------------------------------------------- VTG


def lm_labels(text_ids: torch.Tensor, text_mask: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """(B, L) labels for :func:`vtg_loss`: the token ids with padding set to ``ignore_index``."""
    return text_ids.masked_fill(~text_mask.bool(), ignore_index)


def vtg_loss(
    logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.1, ignore_index: int = -100
) -> torch.Tensor:
    """Shifted next-token cross-entropy: logits at position t predict ``labels[:, t + 1]``.

    Args:
        logits: (B, L, V); labels: (B, L) long with ``ignore_index`` where no loss is taken.
        label_smoothing: LoCo-MAD / BLIP-2 use 0.1.

    Returns:
        scalar mean over the non-ignored target positions.
    """
    shifted = logits[:, :-1].reshape(-1, logits.shape[-1])  # (B*(L-1), V)
    targets = labels[:, 1:].reshape(-1)  # (B*(L-1),)
    return F.cross_entropy(shifted, targets, ignore_index=ignore_index, label_smoothing=label_smoothing)


def vtg_loss_at_labels(
    hidden: torch.Tensor,
    lm_head: nn.Module,
    labels: torch.Tensor,
    label_smoothing: float = 0.1,
    ignore_index: int = -100,
) -> torch.Tensor:
    """:func:`vtg_loss` of ``lm_head(hidden)``, with the LM head run only at the positions that predict a label.

    Args:
        hidden: (B, L, H) text outputs of the causal pass; lm_head: (.., H) -> (.., V).
        labels: (B, L) long with ``ignore_index`` where no loss is taken (padding).

    Returns:
        scalar, the same value as ``vtg_loss(lm_head(hidden), labels, ...)``: the head is skipped at padding
        positions and at the last one (B*(L-1) - M rows of a V-way projection, M = the counted targets).
    """
    targets = labels[:, 1:]  # (B, L-1)
    counted = targets != ignore_index
    logits = lm_head(hidden[:, :-1][counted])  # (M, V)
    return F.cross_entropy(logits, targets[counted], label_smoothing=label_smoothing)


# ---------------------------------------------------------------------------------------------- weights


@dataclass
class PMELossWeights:
    """L_s1 = vtc * L_VTC + vtm * L_VTM + vtg * L_VTG; a weight of 0 switches the loss off (not computed).

    VTM's hard negatives use the VTC similarities, so VTM needs them computed even when ``vtc == 0``.
    """

    vtc: float = 1.0
    vtm: float = 1.0
    vtg: float = 1.0

    def __post_init__(self) -> None:
        for name in ("vtc", "vtm", "vtg"):
            if getattr(self, name) < 0:
                raise ValueError(f"loss weight {name} must be >= 0, got {getattr(self, name)}")
        if not any(self.enabled(name) for name in ("vtc", "vtm", "vtg")):
            raise ValueError("at least one of vtc, vtm, vtg must have a positive weight")

    def enabled(self, name: str) -> bool:
        """True when loss ``name`` ("vtc", "vtm" or "vtg") has a positive weight and must be computed."""
        return getattr(self, name) > 0

    def total(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Weighted sum of the enabled losses; ``losses`` must hold every enabled name (others are ignored)."""
        terms = [getattr(self, name) * losses[name] for name in ("vtc", "vtm", "vtg") if self.enabled(name)]
        return torch.stack(terms).sum()


# ---------------------------------------------------------------------------------------------- the objective


class PMELoss(nn.Module):
    """LoCo-MAD's Stage-I objective L_s1 = w_vtc L_VTC + w_vtm L_VTM + w_vtg L_VTG of a PME on one batch.

    VTC and VTM run over the global batch under DDP: VTM draws its hard negatives (never a pair with the same
    text) among all ranks' videos and texts, gathered without gradient and padded to the longest ones.

    Args:
        weights: loss weights; a zero weight switches that loss off (LoCo-MAD Table 5). Default: all 1.
        vtc_label_smoothing, vtg_label_smoothing: as in BLIP-2 (VTG 0.1).
        vtg_bos_token_id: replaces the first text token for VTG (LAVIS's ``[DEC]``); None keeps ``[CLS]``.
        seed: seeds the hard-negative sampler; rank r draws from ``seed * 1000 + r``.
        generator: draw the hard negatives from this generator instead (benchmarks and tests).
    """

    def __init__(
        self,
        weights: PMELossWeights | None = None,
        vtc_label_smoothing: float = 0.0,
        vtg_label_smoothing: float = 0.1,
        vtg_bos_token_id: int | None = None,
        seed: int = 0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.weights = weights if weights is not None else PMELossWeights()
        self.vtc_label_smoothing = vtc_label_smoothing
        self.vtg_label_smoothing = vtg_label_smoothing
        self.vtg_bos_token_id = vtg_bos_token_id
        self.seed = seed
        self._generator: torch.Generator | None = generator

    def negatives_generator(self) -> torch.Generator:
        """The (CPU) generator of the VTM negatives, made on first use from the seed and this process's rank."""
        if self._generator is None:
            rank = dist.get_rank() if distributed() else 0
            self._generator = torch.Generator().manual_seed(self.seed * 1000 + rank)
        return self._generator

    def forward(
        self, model: PretrainedMovieEncoder, batch: Mapping[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted total and the enabled losses (keys ``vtc``, ``vtm``, ``vtg``) of one batch.

        Args:
            model: the PME (its temperature is clamped here, before use).
            batch: a Stage-I batch: ``BatchKey.FRAMES`` (B, T, D), ``FRAME_MASK`` (B, T), ``TEXT_IDS`` and
                ``TEXT_MASK`` (B, L).

        Returns:
            ``(total, parts)``: scalar L_s1 and the scalar of each enabled loss (what a stage logs).
        """
        parts = self.parts(model, batch)
        return self.weights.total(parts), parts

    def parts(self, model: PretrainedMovieEncoder, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The enabled losses of one batch, unweighted (keys ``vtc``, ``vtm``, ``vtg``).

        Work the losses do not need is skipped, without changing their values (the PME's passes leave padding out
        of their dense layers): a second pass over the query positions for VTG (its text attends to the keys and
        values of the VTC query pass, as LAVIS's BLIP-2 does); the last layer's text positions for VTM and all
        but ``[CLS]`` for VTC; the LM head at positions without a target.
        """
        frames, frame_mask = batch[BatchKey.FRAMES], batch[BatchKey.FRAME_MASK]  # (B, T, D), (B, T)
        text_ids, text_mask = batch[BatchKey.TEXT_IDS], batch[BatchKey.TEXT_MASK]  # (B, L)
        losses: dict[str, torch.Tensor] = {}
        keep_cache = self.weights.enabled("vtg") or self.weights.enabled("vtm")
        query_out, cache = model.query_pass(frames, frame_mask, keep_cache=keep_cache)
        if self.weights.enabled("vtc") or self.weights.enabled("vtm"):
            model.clamp_temp_()
            query_feats = model.project_queries(query_out)  # (B, Nq, E)
            text_feats = model.text_features(text_ids, text_mask)  # (B, E)
            sim_v2t, sim_t2v, offset = vtc_similarities(query_feats, text_feats, gather=True)  # (B, N) each
            if self.weights.enabled("vtc"):
                losses["vtc"] = info_nce(sim_v2t, sim_t2v, model.temp, offset, self.vtc_label_smoothing)
            if self.weights.enabled("vtm"):
                losses["vtm"] = self.vtm(model, batch, sim_v2t, sim_t2v, offset, cache)
        if self.weights.enabled("vtg"):
            assert cache is not None
            ids = text_ids.clone()
            if self.vtg_bos_token_id is not None:
                ids[:, 0] = self.vtg_bos_token_id
            hidden = model.vtg_text_outputs(cache, ids, text_mask)  # (B, L, H)
            losses["vtg"] = vtg_loss_at_labels(hidden, model.lm_head, lm_labels(ids, text_mask),
                                               self.vtg_label_smoothing)
        return losses

    def vtm(
        self,
        model: PretrainedMovieEncoder,
        batch: Mapping[str, Any],
        sim_v2t: torch.Tensor,
        sim_t2v: torch.Tensor,
        offset: int,
        cache: QueryCache | None = None,
    ) -> torch.Tensor:
        """L_VTM on 3B pairs: (video i, text i) positive, (video i, hard negative text), (hard negative video, text i).

        Args:
            model: the PME; batch: as in :meth:`forward`.
            sim_v2t, sim_t2v: (B, N) the VTC similarities of the local items against all N items (sampling weights).
            offset: global index of the first local item.
            cache: the query pass's cache of the local videos: when every negative video is local (always on one
                process), the 3B pairs select its frame keys/values instead of projecting the frames again.

        Returns:
            scalar VTM cross-entropy.
        """
        frames, frame_mask = batch[BatchKey.FRAMES], batch[BatchKey.FRAME_MASK]
        text_ids, text_mask = batch[BatchKey.TEXT_IDS], batch[BatchKey.TEXT_MASK]
        # gathered on every rank, even one whose negatives turn out local: a collective must be called by all ranks
        all_frames, all_frame_mask = gather_padded(frames, 0.0), gather_padded(frame_mask, False)  # (N, T*, D)
        all_ids, all_text_mask = gather_padded(text_ids, 0), gather_padded(text_mask, False)  # (N, L*)
        # A pair is positive when the two ADs have the same text: never draw such a "negative".
        local_ids = pad_dim1(text_ids, all_ids.shape[1], 0)
        positives = (local_ids.unsqueeze(1) == all_ids.unsqueeze(0)).all(dim=-1)  # (B, N)
        positives |= positive_mask(len(text_ids), all_ids.shape[0], offset, positives.device)
        neg_text, neg_video = sample_hard_negatives(
            sim_v2t, sim_t2v, model.temp.detach(), offset, positives, self.negatives_generator()
        )
        local_text_mask = pad_dim1(text_mask, all_ids.shape[1], False)
        ids = torch.cat([local_ids, all_ids[neg_text], local_ids])
        mask = torch.cat([local_text_mask, all_text_mask[neg_text], local_text_mask])
        labels = torch.cat([torch.ones(len(frames)), torch.zeros(2 * len(frames))]).long().to(frames.device)
        local = torch.arange(len(frames), device=frames.device)
        neg_local = neg_video - offset
        all_local = bool(((neg_local >= 0) & (neg_local < len(frames))).all())
        if cache is not None and cache.frames is not None and all_local:
            keys = cache.frames.select(torch.cat([local, local, neg_local]))
            return vtm_loss(model.itm_logits(keys, None, ids, mask), labels)
        local_frames = pad_dim1(frames, all_frames.shape[1], 0.0)
        local_frame_mask = pad_dim1(frame_mask, all_frames.shape[1], False)
        video = torch.cat([local_frames, local_frames, all_frames[neg_video]])
        video_mask = torch.cat([local_frame_mask, local_frame_mask, all_frame_mask[neg_video]])
        return vtm_loss(model.itm_logits(video, video_mask, ids, mask), labels)
