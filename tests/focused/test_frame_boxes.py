"""Per-frame boxes (the record's ``frame boxes``): parsed with the detections, served at the clip's sampled frames in
box mode, pooled per frame; malformed tracks are clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from moviead.data.collate import BatchKey
from moviead.data.errors import DataFormatError
from moviead.data.formats.storyboard import read_storyboard_json
from moviead.datamodules import build_datamodule
from moviead.focused.data import FocusedBatchKey as K
from moviead.recipes import build_recipe
from tests.focused._focused_setup import focused_cfg


def _examples(toy_root: Path, tmp_path: Path, *overrides: str):
    cfg = focused_cfg(toy_root, tmp_path, *overrides)
    parts = build_recipe(cfg)
    dm = build_datamodule(cfg, parts.tokenizer, needs=parts.data, collate=parts.collator)
    return parts, dm.dataset("val")


def test_the_toy_recipe_pools_boxes_per_sampled_frame(toy_root: Path, tmp_path: Path) -> None:
    """Box mode (the toy recipe): REGION_BOXES are (B, C, T, 4), each named region's box on each sampled frame."""
    parts, dataset = _examples(toy_root, tmp_path)
    picked = [dataset[i] for i in range(len(dataset)) if dataset[i].storyboard.clip_type == 1][:4]
    batch = parts.collator(picked)
    boxes, valid = batch[K.REGION_BOXES], batch[K.REGION_VALID]
    assert boxes.shape[:3] == (len(picked), valid.shape[1], batch[BatchKey.FRAMES].shape[1])
    for b, example in enumerate(picked):
        height, width = example.storyboard.resolution
        by_box = {d.box: d for d in example.storyboard.detections}
        frames = example.frame_indices
        assert frames is not None and len(frames) == len(example.clip.frames)
        for c in range(int(valid[b].sum())):
            middle = boxes[b, c, len(frames) // 2].numpy() * (width, height, width, height)
            # the region is a detection whose track, at the sampled frames, is what the batch holds
            track = next(np.asarray(d.frame_boxes)[frames] for d in by_box.values()
                         if np.allclose(np.asarray(d.frame_boxes)[frames][len(frames) // 2], middle, atol=0.5))
            np.testing.assert_allclose(boxes[b, c, : len(frames)].numpy() * (width, height, width, height), track,
                                       atol=0.5)
    moving = (boxes[:, :, 0] - boxes[:, :, -1]).abs().amax(-1)[valid]
    assert float(moving.max()) > 0.01  # the boxes move within a clip


def test_frame_mode_keeps_one_box_per_region(toy_root: Path, tmp_path: Path) -> None:
    parts, dataset = _examples(toy_root, tmp_path, "captioning.focused.character_tokens=frame")
    batch = parts.collator([dataset[i] for i in range(4)])
    assert batch[K.REGION_BOXES].dim() == 3 and K.PATCHES not in batch


def _record(**extra: object) -> dict:
    return {"movie_id": "tt0000001", "global_id": "tt0000001_0000", "type": 1, "resolution": [100, 200],
            "main characters": ["ANNA"], "#characters": 1, "synopses": "Anna waves.", "movie_clips": "c.mp4",
            "detect characters": [{"ANNA": [10, 10, 50, 60, 0.9, 0.5]}], **extra}


def test_frame_boxes_are_read_per_detection(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps([_record(**{"frame boxes": [[[10, 10, 50, 60], [12, 10, 52, 60]]]})]))
    (record,) = read_storyboard_json(path)
    assert record.detections[0].frame_boxes == ((10.0, 10.0, 50.0, 60.0), (12.0, 10.0, 52.0, 60.0))


@pytest.mark.parametrize("tracks, problem", [
    ([[[10, 10, 50, 60]], [[10, 10, 50, 60]]], "a list of 1 box tracks"),
    ([[[10, 10, 50]]], r"a non-empty list of \[x1, y1, x2, y2\]"),
    ([[[50, 10, 10, 60]]], "boxes with x1 <= x2"),
])
def test_malformed_frame_boxes_name_the_key_and_the_fix(tmp_path: Path, tracks: list, problem: str) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps([_record(**{"frame boxes": tracks})]))
    with pytest.raises(DataFormatError, match=f"'frame boxes.*{problem}.*Fix: give one"):
        read_storyboard_json(path)
