"""Which feature frames represent an AD interval (SPEC §3.2).

Two modes:
- ``linspace`` (AutoAD): ``num_frames`` indices ``linspace(floor(start*fps), ceil(end*fps)-1, num_frames)``,
  shifted as a whole by a random 0..``train_shift`` frames in training only, clipped to the movie.
- ``all`` (LoCo-MAD): every frame of the interval; intervals longer than ``max_frames`` are subsampled
  evenly to ``max_frames`` (our choice; LoCo-MAD pads/truncates to 100 or 200). Collation pads to the
  longest clip of the batch and returns a padding mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from moviead.data.records import FrameMode

TIME_EPSILON = 1e-6  # frames; absorbs float error of times computed as sums (a 1e-6-frame overlap is no overlap)


def interval_frames(start: float, end: float, fps: float) -> tuple[int, int]:
    """First and last frame index (inclusive) covering ``[start, end)`` seconds at ``fps``."""
    first = int(math.floor(start * fps + TIME_EPSILON))
    last = max(first, int(math.ceil(end * fps - TIME_EPSILON)) - 1)
    return first, last


@dataclass(frozen=True)
class FrameSampler:
    """Turns a time interval into absolute frame indices of a feature sequence of known length."""

    fps: float = 5.0
    mode: FrameMode = FrameMode.linspace
    num_frames: int = 8
    max_frames: int = 100
    train_shift: int = 4

    def fits(self, start: float, end: float, num_available: int) -> bool:
        """Whether the interval lies inside a feature sequence of ``num_available`` frames."""
        first, last = interval_frames(start, end, self.fps)
        return first >= 0 and last < num_available

    def indices(self, start: float, end: float, num_available: int, shift: int = 0) -> np.ndarray:
        """Sorted frame indices for the interval, shape (num_frames,) or (≤ max_frames,).

        Args:
            start, end: interval in seconds.
            num_available: length T of the movie's feature sequence.
            shift: frames to move the linspace window by (training draws it in 0..train_shift).
        """
        first, last = interval_frames(start, end, self.fps)
        last = min(last, num_available - 1)
        if self.mode == FrameMode.linspace:
            picked = np.round(np.linspace(first, last, self.num_frames)).astype(np.int64) + shift
        else:
            picked = np.arange(first, last + 1, dtype=np.int64)
            if len(picked) > self.max_frames:
                picked = np.round(np.linspace(first, last, self.max_frames)).astype(np.int64)
        return np.clip(picked, 0, num_available - 1)
