"""Stage-I and Stage-II recipes: one unit per method that turns its config section into models and data needs.

``build_recipe(cfg)`` dispatches on ``captioning.method`` (``loco_mad``, ``distinctad``, ``focusedad``): the method
key is the switch, and each recipe reads only its own section of ``captioning``. Plain torch: the Lightning stages
(:mod:`moviead.stages`) train what a recipe builds, :mod:`moviead.evaluation` decodes with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from omegaconf import DictConfig

from moviead.recipes.base import Recipe


def _builders() -> dict[str, Callable[[DictConfig, Path | None], Recipe]]:
    from moviead.recipes import distinctad, focusedad, loco_mad

    return {loco_mad.METHOD: loco_mad.build, distinctad.METHOD: distinctad.build, focusedad.METHOD: focusedad.build}


def build_recipe(cfg: DictConfig, run_dir: Path | None = None) -> Recipe:
    """The Stage-II recipe of ``cfg.captioning.method``; ``run_dir`` holds run files (the DSM's sentence cache)."""
    method = getattr(cfg.captioning.method, "value", cfg.captioning.method)
    builders = _builders()
    if method not in builders:
        raise ValueError(f"captioning.method={method!r}: choose one of {sorted(builders)}")
    return builders[method](cfg, run_dir)


__all__ = ["Recipe", "build_recipe"]
