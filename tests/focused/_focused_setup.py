"""Shared set-up of the FocusedAD tests: the toy recipe config, and patch features for box mode."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from omegaconf import DictConfig

from moviead.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
RECIPE = [CONFIGS / "stage2" / "focusedad.yaml", CONFIGS / "stage2" / "focusedad_tiny.yaml",
          CONFIGS / "data" / "toy_storyboard.yaml"]


def focused_cfg(toy_root: Path, run_root: Path, *overrides: str) -> DictConfig:
    """``moviead train configs/stage2/focusedad.yaml configs/stage2/focusedad_tiny.yaml configs/data/toy_storyboard.yaml``
    on ``toy_root``'s Storyboard-v2 part, quiet."""
    return load_config(RECIPE, [f"data.root={toy_root / 'storyboard'}", f"trainer.default_root_dir={run_root}",
                                "trainer.enable_progress_bar=false", *overrides])


def write_patch_features(storyboard_root: Path, name: str = "patches.h5", grid: int = 2) -> Path:
    """Patch features (T, grid, grid, 3) per global id whose every cell holds that frame's first 3 frame features,
    so a test can check that patches and frames were read at the same indices."""
    path = storyboard_root / name
    with h5py.File(storyboard_root / "storyboard_clip_features.h5", "r") as frames, h5py.File(path, "w") as out:
        for key in frames:
            first = np.asarray(frames[key][:, :3], dtype=np.float32)  # (T, 3)
            out.create_dataset(key, data=np.broadcast_to(first[:, None, None, :], (len(first), grid, grid, 3)).copy())
    return path
