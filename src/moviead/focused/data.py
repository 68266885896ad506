"""FocusedAD's data layer: Storyboard-v2 clips with their detections, and the batches of the FocusedAD captioner.

:class:`StoryboardClipDataset` wraps the common clip dataset of a Storyboard-v2 split and adds each clip's record
(type 1/2/3, resolution, ``detect characters``) and, in box mode, its patch features read at the same frames.
:class:`FocusedCollator` collates like the Stage-II :class:`~moviead.data.captioning_collate.CaptioningCollator`
(frames, target, context proposal) and adds the dynamic instruction, tokenised with one placeholder position per
``<region>``, and the regions' boxes (keys in :class:`FocusedBatchKey`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from moviead.data.captioning_collate import CaptioningCollator
from moviead.data.collate import BatchKey, ClipExample
from moviead.data.datasets import ADClipDataset
from moviead.data.errors import DataFormatError
from moviead.data.features import FeatureStore, open_feature_store
from moviead.data.formats.storyboard import read_storyboard_json
from moviead.data.records import StoryboardRecord
from moviead.focused.recognition import MovieQueries
from moviead.focused.templates import (
    REGION,
    clip_characters,
    dynamic_instruction,
    normalised_boxes,
    normalised_frame_boxes,
)

NO_REGION = -1


class FocusedBatchKey:
    """Keys the :class:`FocusedCollator` adds to a Stage-II batch."""

    INSTRUCTION_IDS = "instruction_ids"  # (B, Li) int64, the dynamic instruction; pad id at region positions
    INSTRUCTION_MASK = "instruction_mask"  # (B, Li) bool
    INSTRUCTION_REGION = "instruction_region"  # (B, Li) int64: c at the position of region c's tokens, else -1
    REGION_BOXES = "region_boxes"  # float32 [x1, y1, x2, y2] as fractions of the frame: (B, C, 4), one box per
    # clip used on every frame, or (B, C, T, 4) in box mode when a region's record has per-frame boxes
    # (``frame boxes``, e.g. the toy data's tracked characters): each region's box on each sampled frame
    REGION_VALID = "region_valid"  # (B, C) bool
    PATCHES = "patches"  # (B, T, H', W', Dp) float32 patch features (box mode only), zeros on padded frames


@dataclass(frozen=True)
class StoryboardExample:
    """A clip example, its Storyboard-v2 record and (box mode) its patch features (T, H', W', Dp) float32 with the
    (T,) indices of the clip's feature frames they (and the frames) were read at."""

    clip: ClipExample
    storyboard: StoryboardRecord
    patches: np.ndarray | None = None
    frame_indices: np.ndarray | None = None


class StoryboardClipDataset(Dataset):
    """The clips of a Storyboard-v2 split with their records.

    Args:
        clips: the split's clip dataset (its items' feature keys are the records' global ids).
        records: global id → record.
        patches: patch features keyed by global id, (T, H', W', Dp) per clip with the same T as the frame features;
            None leaves :attr:`StoryboardExample.patches` empty.
    """

    def __init__(self, clips: ADClipDataset, records: Mapping[str, StoryboardRecord],
                 patches: FeatureStore | None = None) -> None:
        missing = [item.feature_key for item in clips.items if item.feature_key not in records]
        if missing:
            raise KeyError(f"{len(missing)} clip(s) have no Storyboard-v2 record, e.g. {missing[0]!r}")
        for item in clips.items:  # checked once here, not at every read
            tracked = [b for b in records[item.feature_key].detections if b.frame_boxes is not None]
            if any(len(b.frame_boxes or ()) != item.num_frames for b in tracked):
                lengths = sorted({len(b.frame_boxes or ()) for b in tracked})
                raise DataFormatError(None, f"'frame boxes' give {lengths} boxes per detection but the clip has "
                                      f"{item.num_frames} feature frames", "give one box per feature frame of the "
                                      "clip", record=item.feature_key)
        self.clips = clips
        self.records = records
        self.patches = patches

    def __len__(self) -> int:
        return len(self.clips)

    def _frames_and_patches(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frames (T, D), patches (T, H', W', Dp) and the (T,) indices they were read at (one random shift)."""
        assert self.patches is not None
        clips, item = self.clips, self.clips.items[index]
        shift = 0
        if clips.training and clips.sampler.train_shift > 0:
            shift = int(torch.randint(0, clips.sampler.train_shift + 1, ()))
        start, end = item.record.start - item.offset, item.record.end - item.offset
        picked = clips.sampler.indices(start, end, item.num_frames, shift)
        if self.patches.num_frames(item.feature_key) != item.num_frames:
            raise DataFormatError(
                self.patches.path, f"{self.patches.num_frames(item.feature_key)} patch frames but {item.num_frames} "
                "frame features", "extract patch and frame features at the same fps", record=item.feature_key)
        picked = np.asarray(picked, dtype=np.int64)
        return clips.features.read(item.feature_key, picked), self.patches.read(item.feature_key, picked), picked

    def __getitem__(self, index: int) -> StoryboardExample:
        clip = self.clips[index]
        record = self.records[self.clips.items[index].feature_key]
        if self.patches is None:
            return StoryboardExample(clip, record)
        frames, patches, picked = self._frames_and_patches(index)
        return StoryboardExample(replace(clip, frames=frames), record, patches, picked)


def read_storyboard_records(path: str | Path) -> dict[str, StoryboardRecord]:
    """Every record of a Storyboard-v2 JSON file by global id."""
    return {r.global_id: r for r in read_storyboard_json(Path(path))}


def storyboard_examples(clips: ADClipDataset, records: Mapping[str, StoryboardRecord],
                        patch_features: str | Path | None = None) -> StoryboardClipDataset:
    """The Storyboard-v2 examples of ``clips`` (what FocusedAD's collate function reads), as the DataModule and
    ``moviead evaluate`` serve them; ``patch_features`` (box mode) is checked now and reopened lazily per worker."""
    patches = open_feature_store(patch_features) if patch_features is not None else None
    if patches is not None:
        getattr(patches, "close", lambda: None)()  # reopened lazily in each worker
    return StoryboardClipDataset(clips, records, patches)


@dataclass(frozen=True)
class InstructionSettings:
    """How a clip's instruction is made (``captioning.focused``): names mode, the best-query bank per movie (its
    vectors: names=recognised recognises every face from its embedding), τ, limits; ``records_path`` is the records
    file an error names."""

    names: str = "recognised"
    bank: Mapping[str, MovieQueries] | None = None
    records_path: str | None = None
    threshold: float = 1.3
    min_confidence: float = 0.7
    max_characters: int = 4
    region_tokens: bool = True


class FocusedCollator:
    """Stage-II batches of :class:`StoryboardExample` items for the FocusedAD captioner.

    Args:
        base: collates the clip part (frames, target, proposal; see its keys in :class:`BatchKey`).
        settings: how names are found and whether ``<region>`` positions take character tokens.

    With ``region_tokens`` every ``<region>`` of the instruction becomes one position whose
    ``INSTRUCTION_REGION`` is the region's index (the model puts that region's tokens there) and the text
    pieces between the regions are tokenised one by one (a tokenizer that adds a prefix space puts one before
    each piece); without, the
    instruction is tokenised as plain text. A training example whose names were swapped
    (:attr:`~moviead.data.collate.ClipExample.renamed`) has its recognised names renamed the same way. ``meta``
    gains ``global_id``, ``clip_type`` (1/2/3), ``instruction`` and
    ``names``. Picklable.
    """

    def __init__(self, base: CaptioningCollator, settings: InstructionSettings) -> None:
        if settings.names == "recognised" and settings.bank is None:
            raise ValueError("names=recognised needs the best-query bank (bank: movie_queries(read_best_query_bank))")
        self.base = base
        self.settings = settings

    def _instruction(self, text: str) -> tuple[list[int], list[int]]:
        """Ids of one instruction and, per id, its region index (-1 for text tokens)."""
        tokenizer = self.base.tokenizer
        if not self.settings.region_tokens:
            ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
            return ids, [NO_REGION] * len(ids)
        ids, regions = [], []
        pieces = text.split(REGION)
        for c, piece in enumerate(pieces):
            piece_ids = list(tokenizer(piece, add_special_tokens=False)["input_ids"]) if piece else []
            ids += piece_ids
            regions += [NO_REGION] * len(piece_ids)
            if c < len(pieces) - 1:
                ids.append(self.base.pad_id)
                regions.append(c)
        return ids, regions

    def __call__(self, examples: Sequence[StoryboardExample]) -> dict[str, Any]:
        batch = self.base([ex.clip for ex in examples])
        s = self.settings
        instructions, boxes, names = [], [], []
        for ex in examples:
            queries = None if s.bank is None else s.bank.get(ex.storyboard.movie_id)
            characters = clip_characters(ex.storyboard, s.names, queries, s.threshold, s.min_confidence,
                                         s.max_characters, s.records_path)
            renamed = dict(ex.clip.renamed)  # a training example's name swap reaches the recognised names too
            names.append([renamed.get(c.name, c.name) for c in characters])
            instructions.append(dynamic_instruction(names[-1]))
            if ex.frame_indices is not None and any(c.frame_boxes is not None for c in characters):
                boxes.append(normalised_frame_boxes(ex.storyboard, characters, ex.frame_indices.tolist()))
            else:
                boxes.append(normalised_boxes(ex.storyboard, characters))
        encoded = [self._instruction(text) for text in instructions]
        length = max(len(ids) for ids, _ in encoded)
        ids = torch.full((len(examples), length), self.base.pad_id, dtype=torch.int64)
        mask = torch.zeros(len(examples), length, dtype=torch.bool)
        region = torch.full((len(examples), length), NO_REGION, dtype=torch.int64)
        for b, (row_ids, row_regions) in enumerate(encoded):
            ids[b, : len(row_ids)] = torch.tensor(row_ids, dtype=torch.int64)
            mask[b, : len(row_ids)] = True
            region[b, : len(row_ids)] = torch.tensor(row_regions, dtype=torch.int64)
        box_tensor, valid = _box_tensor(boxes, batch[BatchKey.FRAMES].shape[1])
        batch[FocusedBatchKey.INSTRUCTION_IDS] = ids
        batch[FocusedBatchKey.INSTRUCTION_MASK] = mask
        batch[FocusedBatchKey.INSTRUCTION_REGION] = region
        batch[FocusedBatchKey.REGION_BOXES] = box_tensor
        batch[FocusedBatchKey.REGION_VALID] = valid
        if examples[0].patches is not None:
            batch[FocusedBatchKey.PATCHES] = _pad_patches([ex.patches for ex in examples],
                                                          batch[BatchKey.FRAMES].shape[1])
        for meta, ex, text, row_names in zip(batch[BatchKey.META], examples, instructions, names):
            meta.update(global_id=ex.storyboard.global_id, clip_type=ex.storyboard.clip_type, instruction=text,
                        names=row_names)
        return batch


def _box_tensor(boxes: Sequence[list], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each example's region boxes, C rows of one box (4,) or of per-frame boxes (T_b, 4), as (B, C, 4) when none
    is per frame, else (B, C, length, 4) (one-box rows repeated; frames past T_b repeat the last box, the frame mask
    hides them); and the (B, C) mask of real regions."""
    regions = max(len(rows) for rows in boxes)
    per_frame = any(isinstance(rows[0][0], (tuple, list)) for rows in boxes)
    shape = (len(boxes), regions, length, 4) if per_frame else (len(boxes), regions, 4)
    out = torch.zeros(shape, dtype=torch.float32)
    valid = torch.zeros(len(boxes), regions, dtype=torch.bool)
    for b, rows in enumerate(boxes):
        valid[b, : len(rows)] = True
        for c, row in enumerate(rows):
            value = torch.tensor(row, dtype=torch.float32)  # (4,) or (T_b, 4)
            if per_frame and value.dim() == 2:
                out[b, c, : len(value)] = value
                out[b, c, len(value):] = value[-1]
            else:
                out[b, c] = value
    return out, valid


def _pad_patches(patches: Sequence[np.ndarray | None], length: int) -> torch.Tensor:
    """(B, length, H', W', Dp) float32, zero-padded in time like the frames."""
    if any(p is None for p in patches):
        raise ValueError("every example of a batch needs patch features when one has them")
    first = patches[0]
    assert first is not None
    out = torch.zeros(len(patches), length, *first.shape[1:], dtype=torch.float32)
    for b, clip in enumerate(patches):
        assert clip is not None
        out[b, : len(clip)] = torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32))
    return out
