"""DistinctAD Stage-I losses (SPEC §4.2): adapt the CLIP vision side to the frozen CLIP text tower with a global
video-sentence InfoNCE and a frame-word multiple-instance InfoNCE; :class:`CLIPAdaptationLoss` computes them for a
:class:`~moviead.models.clip_adapter.CLIPVideoAdapter` on a Stage-I batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from moviead.data.collate import BatchKey
from moviead.losses.contrastive import info_nce, normalized_pair
from moviead.losses.distributed import all_gather_batch, distributed, pad_dim1_to_global_max

if TYPE_CHECKING:
    from moviead.models.clip_adapter import CLIPVideoAdapter


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
    video_emb, text_emb, video_all, text_all, offset = normalized_pair(video_emb, text_emb, gather)
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
    if gather and distributed():
        frame_emb, word_emb = pad_dim1_to_global_max(frame_emb), pad_dim1_to_global_max(word_emb)
        frame_mask = pad_dim1_to_global_max(frame_mask.float())
        word_mask = pad_dim1_to_global_max(word_mask.float())
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


class CLIPAdaptationLoss(nn.Module):
    """DistinctAD Stage-I objective L = L_global + lambda_fw * L_fw of a :class:`CLIPVideoAdapter` on one batch.

    Video side: the adapter's frame embeddings and their mean (:meth:`CLIPVideoAdapter.video_embedding`); text
    side: the frozen tower's sentence and word embeddings, the words restricted to content words
    (:meth:`CLIPVideoAdapter.word_mask`). Temperatures: the model's ``temp`` (global) and ``temp_fw``.

    Args:
        lambda_fw: weight of the frame-word loss (0: off, not computed); the recipes pass ``config.lambda_fw``.
        gather: use the global batch under DDP.
    """

    def __init__(self, lambda_fw: float = 1.0, gather: bool = True) -> None:
        super().__init__()
        if lambda_fw < 0:
            raise ValueError(f"lambda_fw must be >= 0, got {lambda_fw}")
        self.lambda_fw = float(lambda_fw)
        self.gather = gather

    def forward(self, model: CLIPVideoAdapter, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The losses of a batch of paired clips and sentences.

        Args:
            model: the adapter with its frozen text tower.
            batch: ``BatchKey.FRAMES`` (B, T, D) features or (B, T, 3, H, W) frames, ``FRAME_MASK`` (B, T) and
                ``TEXT_IDS`` (B, L) open_clip token ids.

        Returns:
            ``{"global", "fw" (when lambda_fw > 0), "loss"}`` scalars (see :func:`clip_adaptation_loss`).
        """
        frames, frame_mask, text_ids = batch[BatchKey.FRAMES], batch[BatchKey.FRAME_MASK], batch[BatchKey.TEXT_IDS]
        frame_emb = model(frames, frame_mask)  # (B, T, E)
        sentence, words = model.text(text_ids)  # (B, E), (B, L, E)
        return clip_adaptation_loss(
            model.video_embedding(frame_emb, frame_mask), sentence, frame_emb, frame_mask, words,
            model.word_mask(text_ids), model.temp, model.temp_fw, self.lambda_fw, self.gather,
        )
