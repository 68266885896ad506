"""Batches of AD clips. :class:`BatchKey` is the one place that names the keys of a batch dict.

A batch holds tensors for the models and a ``meta`` list (movie, index, times, texts) for logging and
evaluation. Frames are padded to the longest clip of the batch; ``frame_mask`` is True on real frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from moviead.data.context import ADContext, ProposalItem
from moviead.data.records import ADRecord
from moviead.data.tokenization import Tokenizer, tokenize


class BatchKey:
    """Names of the entries of a batch dict."""

    FRAMES = "frames"  # (B, T, D) float32
    FRAME_MASK = "frame_mask"  # (B, T) bool, True on real frames
    TEXT_IDS = "text_ids"  # (B, L) int64, the AD (target) tokens
    TEXT_MASK = "text_mask"  # (B, L) bool
    CONTEXT_IDS = "context_ids"  # (B, Lc) int64, context texts in time order, joined
    CONTEXT_MASK = "context_mask"  # (B, Lc) bool
    META = "meta"  # list of dicts: movie, index, start, end, text, context (list of texts) [, proposal]
    # Stage-II captioning (CaptioningCollator): the DSM proposal, items oldest first, padded items invalid
    PROPOSAL_AD_IDS = "proposal_ad_ids"  # (B, P, La) int64, each item's AD tokens (no special tokens)
    PROPOSAL_AD_MASK = "proposal_ad_mask"  # (B, P, La) bool, all False for an item without AD
    PROPOSAL_SUB_IDS = "proposal_sub_ids"  # (B, P, Ls) int64, each item's subtitles joined by " "
    PROPOSAL_SUB_MASK = "proposal_sub_mask"  # (B, P, Ls) bool
    PROPOSAL_VALID = "proposal_valid"  # (B, P) bool, False on padded items
    PROPOSAL_FEATURES = "proposal_features"  # (B, P, Dc) float32 sentence features, zeros on padded items
    # Stage-II DistinctAD (CaptioningCollator with neighbour clips / distinctive-word targets)
    NEIGHBOUR_FRAMES = "neighbour_frames"  # (B, C, Tn, D) float32, the previous ADs' clips, oldest first, zero-padded
    NEIGHBOUR_MASK = "neighbour_mask"  # (B, C, Tn) bool, True on real frames (all False for a missing neighbour)
    DISTINCT_TARGETS = "distinct_targets"  # (B, V) float32 multi-hot: first sub-tokens of the distinctive words


@dataclass(frozen=True)
class ClipExample:
    """What a dataset item is: the AD, its frames (T, D) float32, its context and (when asked) its DSM proposal and
    the frames (T_j, D) of its neighbouring clips (the previous ADs' intervals of the same movie, oldest first).
    ``renamed`` holds the (name, new name) pairs of a training example whose names were swapped
    (:mod:`moviead.data.name_swap`), empty otherwise."""

    record: ADRecord
    frames: np.ndarray
    context: ADContext
    proposal: tuple[ProposalItem, ...] = ()
    neighbour_frames: tuple[np.ndarray, ...] = ()
    renamed: tuple[tuple[str, str], ...] = ()


def clip_meta(example: ClipExample) -> dict[str, Any]:
    """The ``meta`` entry of one example: movie, index, start, end, text and context texts in time order."""
    return {
        "movie": example.record.movie,
        "index": example.record.index,
        "start": example.record.start,
        "end": example.record.end,
        "text": example.record.text,
        "context": [item.text for item in example.context.in_time_order()],
    }


def pad_frames(frames: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack clips of different lengths: (B, T_max, D) zero-padded frames and (B, T_max) bool mask."""
    longest = max(len(f) for f in frames)
    if all(len(f) == longest for f in frames):  # linspace sampling: no padding needed
        stacked = torch.from_numpy(np.stack(frames).astype(np.float32, copy=False))
        return stacked, torch.ones(stacked.shape[:2], dtype=torch.bool)
    dim = frames[0].shape[-1]
    out = torch.zeros(len(frames), longest, dim, dtype=torch.float32)
    mask = torch.zeros(len(frames), longest, dtype=torch.bool)
    for row, clip in enumerate(frames):
        out[row, : len(clip)] = torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32))
        mask[row, : len(clip)] = True
    return out, mask


class ADCollator:
    """Collates :class:`ClipExample` items; tokenises AD and context text when a tokenizer is given.

    Args:
        tokenizer: any Hugging Face tokenizer, or None for frames and meta only.
        max_text_tokens: truncation of the AD text.
        max_context_tokens: truncation of the joined context (LoCo-MAD: 200).
    """

    def __init__(self, tokenizer: Tokenizer | None = None, max_text_tokens: int = 64, max_context_tokens: int = 200):
        self.tokenizer = tokenizer
        self.max_text_tokens = max_text_tokens
        self.max_context_tokens = max_context_tokens

    def __call__(self, examples: Sequence[ClipExample]) -> dict[str, Any]:
        frames, mask = pad_frames([ex.frames for ex in examples])
        batch: dict[str, Any] = {BatchKey.FRAMES: frames, BatchKey.FRAME_MASK: mask}
        batch[BatchKey.META] = [clip_meta(ex) for ex in examples]
        if self.tokenizer is not None:
            ids, text_mask = tokenize(self.tokenizer, [ex.record.text for ex in examples], self.max_text_tokens)
            batch[BatchKey.TEXT_IDS], batch[BatchKey.TEXT_MASK] = ids, text_mask
            contexts = [ex.context.as_text() for ex in examples]
            ctx_ids, ctx_mask = tokenize(self.tokenizer, contexts, self.max_context_tokens)
            batch[BatchKey.CONTEXT_IDS], batch[BatchKey.CONTEXT_MASK] = ctx_ids, ctx_mask
        return batch
