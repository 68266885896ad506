"""Shared set-up of the DistinctAD Stage-II tests: the toy DistinctAD config."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from moviead.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DISTINCTAD = [CONFIGS / "stage2" / f for f in ("distinctad.yaml", "distinctad_tiny.yaml")] + [
    CONFIGS / "data" / "toy.yaml"
]


def distinctad_cfg(toy_root: Path, run_root: Path, *overrides: str) -> DictConfig:
    """The toy DistinctAD config (``distinctad.yaml`` + ``distinctad_tiny.yaml``) on ``toy_root``, quiet."""
    return load_config(DISTINCTAD, [
        f"data.root={toy_root / 'mad'}", f"trainer.default_root_dir={run_root}", "trainer.enable_progress_bar=false",
        *overrides,
    ])
