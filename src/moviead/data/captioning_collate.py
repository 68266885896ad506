"""Batches for Stage-II captioning (SPEC §5.1-5.2): frames, the AD target and the tokenised DSM proposal.

Each :class:`~moviead.data.collate.ClipExample` must carry its proposal (``ADClipDataset(with_proposal=True)``).
Texts are tokenised without special tokens (the decoder adds its own markers); padded positions hold the
tokenizer's pad id (EOS, then 0, when it has none) and are False in the masks. Shapes are never empty:
P, La and Ls are at least 1, so a batch without any context still has (B, 1, 1) all-False tensors.

DistinctAD (SPEC §5.3) adds, when asked: the neighbouring clips' frames (B, C, Tn, D) with their mask, C the
configured number of neighbours (Tn at least 1), and the multi-hot distinctive-word target (B, V), computed
against the ADs of the proposal (ground truth in training, the model's own outputs in recurrent evaluation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from moviead.data.collate import BatchKey, ClipExample, clip_meta, pad_frames
from moviead.data.context import ProposalItem
from moviead.data.distinctive_targets import DistinctiveWordTargets

TARGET_END = "\n"  # appended to every AD target: generation stops at the first newline (or full stop)

SentenceFeatures = Callable[[Sequence[str]], torch.Tensor]
"""Texts → (n, Dc) features, e.g. :class:`moviead.data.sentence_features.SentenceFeatureBank`."""


def _pad(rows: Sequence[Sequence[int]], pad_id: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (N, length) int64 and mask (N, length) bool from lists of ids (each ≤ length)."""
    ids = torch.tensor([[*tokens, *[pad_id] * (length - len(tokens))] for tokens in rows], dtype=torch.int64)
    mask = torch.tensor([[True] * len(tokens) + [False] * (length - len(tokens)) for tokens in rows], dtype=torch.bool)
    return ids.reshape(len(rows), length), mask.reshape(len(rows), length)


def _item_meta(item: ProposalItem) -> dict[str, Any]:
    return {
        "ad": item.ad.text if item.ad is not None else None,
        "subtitles": [s.text for s in item.subtitles],
        "start": item.start,
        "end": item.end,
    }


class CaptioningCollator:
    """Collates :class:`ClipExample` items with their proposals into the Stage-II batch (keys in :class:`BatchKey`).

    Args:
        tokenizer: the decoder's Hugging Face tokenizer.
        max_text_tokens: the target (AD + newline) keeps its first this many tokens.
        max_item_tokens: per proposal item, its AD keeps its first and its joined subtitles their last this
            many tokens (the subtitles nearest the next AD matter most).
        sentence_features: texts → (n, Dc) features; when given, the batch has ``PROPOSAL_FEATURES`` computed
            from each item's :attr:`ProposalItem.feature_text`.
        neighbour_clips: C > 0 adds ``NEIGHBOUR_FRAMES`` (B, C, Tn, D) and ``NEIGHBOUR_MASK`` (B, C, Tn) from
            :attr:`ClipExample.neighbour_frames` (oldest first, missing neighbours at the end, all False).
        distinctive: adds ``DISTINCT_TARGETS`` (B, V): each AD against its proposal's AD texts (oldest first).

    Picklable (DataLoader workers) when the tokenizer and ``sentence_features`` are.
    """

    memo_size = 200_000  # texts whose token ids are kept (:meth:`_encode`); the memo starts afresh beyond

    def __init__(
        self,
        tokenizer: Any,
        max_text_tokens: int = 64,
        max_item_tokens: int = 64,
        sentence_features: SentenceFeatures | None = None,
        neighbour_clips: int = 0,
        distinctive: DistinctiveWordTargets | None = None,
    ) -> None:
        if max_text_tokens < 1 or max_item_tokens < 1:
            raise ValueError(f"token limits must be >= 1, got {max_text_tokens}, {max_item_tokens}")
        if neighbour_clips < 0:
            raise ValueError(f"neighbour_clips must be >= 0, got {neighbour_clips}")
        self.neighbour_clips = neighbour_clips
        self.distinctive = distinctive
        self.tokenizer = tokenizer
        self._ids: dict[str, tuple[int, ...]] = {}  # text -> token ids (:meth:`_encode`)
        self.max_text_tokens = max_text_tokens
        self.max_item_tokens = max_item_tokens
        self.sentence_features = sentence_features
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad_id) if pad_id is not None else 0

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text (no special tokens). Texts seen before come from a memo: a context AD is an item
        of up to L_c proposals an epoch, and a text's ids never change."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._ids))
        if missing:
            if len(self._ids) + len(missing) > self.memo_size:
                self._ids.clear()
            encoded = self.tokenizer(missing, add_special_tokens=False)["input_ids"]
            self._ids.update(zip(missing, (tuple(ids) for ids in encoded)))
        return [list(self._ids[t]) for t in texts]

    def _proposal_tokens(
        self, proposals: Sequence[Sequence[ProposalItem]], length: int, part: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, P, L) ids and mask of every item's AD (``part="ad"``) or subtitles (``part="sub"``)."""
        texts, where = [], []
        for b, proposal in enumerate(proposals):
            for p, item in enumerate(proposal):
                text = (item.ad.text if item.ad is not None else "") if part == "ad" else item.subtitle_text
                if text:
                    texts.append(text)
                    where.append((b, p))
        limit = self.max_item_tokens
        encoded = [ids[:limit] if part == "ad" else ids[-limit:] for ids in self._encode(texts)]
        longest = max([1] + [len(ids) for ids in encoded])
        ids = torch.full((len(proposals), length, longest), self.pad_id, dtype=torch.int64)
        mask = torch.zeros(len(proposals), length, longest, dtype=torch.bool)
        if where:
            rows = torch.tensor(where, dtype=torch.int64)  # (N, 2) (sample, item) of each encoded text
            row_ids, row_mask = _pad(encoded, self.pad_id, longest)
            ids[rows[:, 0], rows[:, 1]] = row_ids
            mask[rows[:, 0], rows[:, 1]] = row_mask
        return ids, mask

    def _features(self, proposals: Sequence[Sequence[ProposalItem]], valid: torch.Tensor) -> torch.Tensor:
        """(B, P, Dc) float32 features of the items' feature texts, zeros on padded items."""
        assert self.sentence_features is not None
        texts = [item.feature_text for proposal in proposals for item in proposal]
        if texts:
            features = torch.as_tensor(self.sentence_features(texts), dtype=torch.float32)
            dim = features.shape[-1]
        else:
            dim = int(getattr(self.sentence_features, "dim", 0)) or int(self.sentence_features([]).shape[-1])
        out = torch.zeros(*valid.shape, dim, dtype=torch.float32)
        if texts:
            out[valid] = features  # valid items are the leading ones of each row: row-major order matches
        return out

    def _neighbours(self, examples: Sequence[ClipExample], dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, Tn, D) zero-padded neighbour frames and their (B, C, Tn) mask; C = ``neighbour_clips``."""
        clips = [ex.neighbour_frames[-self.neighbour_clips :] for ex in examples]
        longest = max([1] + [len(frames) for clip in clips for frames in clip])
        out = torch.zeros(len(examples), self.neighbour_clips, longest, dim, dtype=torch.float32)
        mask = torch.zeros(len(examples), self.neighbour_clips, longest, dtype=torch.bool)
        for b, clip in enumerate(clips):
            for c, frames in enumerate(clip):
                out[b, c, : len(frames)] = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
                mask[b, c, : len(frames)] = True
        return out, mask

    def __call__(self, examples: Sequence[ClipExample]) -> dict[str, Any]:
        """The batch: frames (B, T, Dv) + mask, target ids/mask (B, Lt), proposal tensors (B, P, ·), meta."""
        frames, frame_mask = pad_frames([ex.frames for ex in examples])
        batch: dict[str, Any] = {BatchKey.FRAMES: frames, BatchKey.FRAME_MASK: frame_mask}
        encoded = self._encode([ex.record.text + TARGET_END for ex in examples])
        targets = [ids[: self.max_text_tokens] for ids in encoded]
        batch[BatchKey.TEXT_IDS], batch[BatchKey.TEXT_MASK] = _pad(
            targets, self.pad_id, max([1] + [len(ids) for ids in targets])
        )
        proposals = [ex.proposal for ex in examples]
        length = max([1] + [len(p) for p in proposals])
        valid = torch.zeros(len(examples), length, dtype=torch.bool)
        for b, proposal in enumerate(proposals):
            valid[b, : len(proposal)] = True
        ad_ids, ad_mask = self._proposal_tokens(proposals, length, "ad")
        batch[BatchKey.PROPOSAL_AD_IDS], batch[BatchKey.PROPOSAL_AD_MASK] = ad_ids, ad_mask
        batch[BatchKey.PROPOSAL_SUB_IDS], batch[BatchKey.PROPOSAL_SUB_MASK] = self._proposal_tokens(
            proposals, length, "sub"
        )
        batch[BatchKey.PROPOSAL_VALID] = valid
        if self.sentence_features is not None:
            batch[BatchKey.PROPOSAL_FEATURES] = self._features(proposals, valid)
        if self.neighbour_clips:
            batch[BatchKey.NEIGHBOUR_FRAMES], batch[BatchKey.NEIGHBOUR_MASK] = self._neighbours(
                examples, frames.shape[-1]
            )
        if self.distinctive is not None:
            contexts = [[item.ad.text for item in p if item.ad is not None] for p in proposals]
            batch[BatchKey.DISTINCT_TARGETS] = self.distinctive([ex.record.text for ex in examples], contexts)
        batch[BatchKey.META] = [
            {**clip_meta(ex), "proposal": [_item_meta(item) for item in ex.proposal]} for ex in examples
        ]
        return batch
