"""Training losses (pure functions of tensors).

Stage-I PME losses (LoCo-MAD §3.1, BLIP-2): video-text contrastive (VTC), video-text matching (VTM) with
hard negatives, video-grounded text generation (VTG); DistinctAD Stage-I CLIP adaptation losses (global
video-sentence InfoNCE, frame-word multiple-instance InfoNCE); and the gather helpers they need under
``torch.distributed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------- distributed


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _AllGatherWithGrad(torch.autograd.Function):
    """Concatenate every rank's rows (dim 0, sizes may differ); backward sums the global gradient over ranks
    and returns this rank's rows, so each rank's inputs get the gradient of the sum of all ranks' losses."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, sizes: list[int], offset: int) -> torch.Tensor:
        ctx.offset, ctx.size = offset, x.shape[0]
        longest = max(sizes)
        padded = x.new_zeros((longest, *x.shape[1:]))
        padded[: x.shape[0]] = x
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
        return torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)], dim=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.offset : ctx.offset + ctx.size], None, None


def all_gather_batch(x: torch.Tensor, with_grad: bool = True) -> tuple[torch.Tensor, int]:
    """Concatenate ``x`` over all ranks along dim 0 (in rank order).

    Args:
        x: (B_r, ...) this rank's rows; B_r may differ between ranks, the other dims may not.
        with_grad: keep the graph: the backward pass sends each rank the summed gradient of its rows, so with
            DDP's gradient averaging the parameter gradients equal those of one process on the joined batch.

    Returns:
        ``(x_all, offset)``: (sum_r B_r, ...) and the index of this rank's first row in ``x_all``.
        Without an initialised process group (or with one process) returns ``(x, 0)``.
    """
    if not _distributed():
        return x, 0
    local = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    sizes_t = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes_t, local)
    sizes = [int(s.item()) for s in sizes_t]
    offset = sum(sizes[: dist.get_rank()])
    if with_grad:
        return _AllGatherWithGrad.apply(x, sizes, offset), offset
    with torch.no_grad():
        return _AllGatherWithGrad.apply(x.detach(), sizes, offset), offset


# ---------------------------------------------------------------------------------------------- VTC


def _normalized_pair(
    a: torch.Tensor, b: torch.Tensor, gather: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """L2-normalise both sides (last dim); with ``gather``, also all ranks' rows (with gradient).

    Returns ``(a, b, a_all, b_all, offset)``: the local normalised tensors, the global ones and the global
    index of this rank's first row.
    """
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    if not gather:
        return a, b, a, b, 0
    a_all, offset = all_gather_batch(a)
    b_all, _ = all_gather_batch(b)
    return a, b, a_all, b_all, offset




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
    query_feats, text_feats, query_all, text_all, offset = _normalized_pair(query_feats, text_feats, gather)
    sim_v2t = torch.einsum("bqe,ne->bnq", query_feats, text_all).amax(dim=-1)  # (B, N)
    sim_t2v = torch.einsum("be,nqe->bnq", text_feats, query_all).amax(dim=-1)  # (B, N)
    return sim_v2t, sim_t2v, offset


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


# ---------------------------------------------------------------------------------------------- CLIP adaptation
# DistinctAD Stage-I (SPEC §4.2): adapt the CLIP vision side to the frozen CLIP text tower with a global
# video-sentence InfoNCE and a frame-word multiple-instance InfoNCE.


def _pad_dim1_to_global_max(x: torch.Tensor) -> torch.Tensor:
    """Zero-pad dim 1 of ``x`` (B, S, ...) to the largest S over ranks (unchanged without a process group)."""
    if not _distributed():
        return x
    size = torch.tensor([x.shape[1]], device=x.device, dtype=torch.long)
    dist.all_reduce(size, op=dist.ReduceOp.MAX)
    extra = int(size.item()) - x.shape[1]
    if extra == 0:
        return x
    return torch.cat([x, x.new_zeros((x.shape[0], extra, *x.shape[2:]))], dim=1)


def clip_global_loss(
    video_emb: torch.Tensor, text_emb: torch.Tensor, temp: torch.Tensor | float, gather: bool = True
) -> torch.Tensor:
    """Global video-sentence loss: symmetric InfoNCE on cosine similarities over the global batch.

    Args:
        video_emb: (B, E) video embeddings (e.g. :meth:`CLIPVideoAdapter.video_embedding`; normalised here).
        text_emb: (B, E) sentence embeddings of the frozen text tower (normalised here).
        temp: scalar temperature (a learnable Parameter or a float).
        gather: all-gather both sides (with gradient) over ranks when torch.distributed is initialised.

    Returns:
        scalar: this rank's loss; averaged over ranks it equals the loss of one process on the joined batch.
    """
    video_emb, text_emb, video_all, text_all, offset = _normalized_pair(video_emb, text_emb, gather)
    sim_v2t = video_emb @ text_all.t()  # (B, N)
    sim_t2v = text_emb @ video_all.t()  # (B, N)
    return info_nce(sim_v2t, sim_t2v, temp, offset)


def frame_word_similarity(
    frame_emb: torch.Tensor, frame_mask: torch.Tensor, word_emb: torch.Tensor, word_mask: torch.Tensor
) -> torch.Tensor:
    """Multiple-instance frame-word similarity s_fw(v, t) = mean_{real words j} max_{real frames i} cos(f_i, w_j).

    Each word of a sentence may be shown in any frame of the clip, so a word scores its best-matching frame;
    the sentence scores the mean over its real words. Padding frames never win the max; padding, special and
    stopword tokens (``word_mask`` False) are left out of the mean. A text with no real word scores 0.

    Memory: the full (Bv, Bt, T, L) cosine tensor is built at once: Bv = Bt = 64, T = 8, L = 32 is 1 M floats
    (4 MB fp32, plus as much again for the backward pass); under DDP Bt (or Bv) is the global batch. Chunk
    over videos if T·L grows large (e.g. T = 200 at batch 256 would be ~1.7 G floats).

    Args:
        frame_emb: (Bv, T, E) frame embeddings (normalised here).
        frame_mask: (Bv, T) bool/0-1, True for real frames; each video needs at least one.
        word_emb: (Bt, L, E) word embeddings (normalised here).
        word_mask: (Bt, L) bool/0-1, True for words that count.

    Returns:
        (Bv, Bt) similarities in [-1, 1].
    """
    frames = F.normalize(frame_emb, dim=-1)
    words = F.normalize(word_emb, dim=-1)
    cos = torch.einsum("vte,wle->vwtl", frames, words)  # (Bv, Bt, T, L)
    frame_ok = frame_mask.bool()[:, None, :, None]  # (Bv, 1, T, 1)
    best = cos.masked_fill(~frame_ok, float("-inf")).amax(dim=2)  # (Bv, Bt, L)
    word_ok = word_mask.to(best.dtype)[None]  # (1, Bt, L)
    best = best.masked_fill(word_ok == 0, 0.0)  # drop -inf/garbage at padded words before summing
    return (best * word_ok).sum(dim=-1) / word_ok.sum(dim=-1).clamp(min=1.0)  # (Bv, Bt)


def frame_word_loss(
    frame_emb: torch.Tensor,
    frame_mask: torch.Tensor,
    word_emb: torch.Tensor,
    word_mask: torch.Tensor,
    temp: torch.Tensor | float,
    gather: bool = True,
) -> torch.Tensor:
    """Frame-word matching loss: symmetric InfoNCE over the global batch on :func:`frame_word_similarity`.

    Args:
        frame_emb: (B, T, E); frame_mask: (B, T); word_emb: (B, L, E); word_mask: (B, L) — item i of the
            videos pairs with item i of the texts.
        temp: scalar temperature.
        gather: all-gather (with gradient) over ranks when torch.distributed is initialised; T and L may
            differ between ranks (padded to the largest).

    Returns:
        scalar: this rank's loss (mean over its rows).
    """
    if gather and _distributed():
        frame_emb, word_emb = _pad_dim1_to_global_max(frame_emb), _pad_dim1_to_global_max(word_emb)
        frame_mask = _pad_dim1_to_global_max(frame_mask.float())
        word_mask = _pad_dim1_to_global_max(word_mask.float())
        frames_all, offset = all_gather_batch(frame_emb)
        words_all, _ = all_gather_batch(word_emb)
        frame_mask_all, _ = all_gather_batch(frame_mask, with_grad=False)
        word_mask_all, _ = all_gather_batch(word_mask, with_grad=False)
    else:
        frames_all, words_all, frame_mask_all, word_mask_all, offset = frame_emb, word_emb, frame_mask, word_mask, 0
    sim_v2t = frame_word_similarity(frame_emb, frame_mask, words_all, word_mask_all)  # (B, N)
    sim_t2v = frame_word_similarity(frames_all, frame_mask_all, word_emb, word_mask).t()  # (B, N)
    return info_nce(sim_v2t, sim_t2v, temp, offset)


def clip_adaptation_loss(
    video_emb: torch.Tensor,
    text_emb: torch.Tensor,
    frame_emb: torch.Tensor,
    frame_mask: torch.Tensor,
    word_emb: torch.Tensor,
    word_mask: torch.Tensor,
    temp_global: torch.Tensor | float,
    temp_fw: torch.Tensor | float,
    lambda_fw: float = 1.0,
    gather: bool = True,
) -> dict[str, torch.Tensor]:
    """DistinctAD Stage-I objective L = L_global + lambda_fw * L_fw.

    Args:
        video_emb, text_emb: (B, E) each, as in :func:`clip_global_loss`.
        frame_emb, frame_mask, word_emb, word_mask: (B, T, E), (B, T), (B, L, E), (B, L): :func:`frame_word_loss`.
        temp_global, temp_fw: the two temperatures; lambda_fw: 0 switches L_fw off (not computed).
        gather: use the global batch under DDP.

    Returns:
        ``{"global": L_global, "fw": L_fw (absent when lambda_fw == 0), "loss": L}``, scalars.
    """
    if lambda_fw < 0:
        raise ValueError(f"lambda_fw must be >= 0, got {lambda_fw}")
    out = {"global": clip_global_loss(video_emb, text_emb, temp_global, gather)}
    total = out["global"]
    if lambda_fw > 0:
        out["fw"] = frame_word_loss(frame_emb, frame_mask, word_emb, word_mask, temp_fw, gather)
        total = total + lambda_fw * out["fw"]
    out["loss"] = total
    return out
