"""Shared set-up of the Stage-II tests: the toy Stage-II config, a tiny Stage-I export, a recipe's first batch."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from moviead.config import load_config
from moviead.datamodules import build_datamodule
from moviead.models.configs import PMEConfig
from moviead.models.lavis_convert import save_pme
from moviead.models.qformer import PretrainedMovieEncoder
from moviead.recipes.base import Recipe

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
STAGE2 = [CONFIGS / "stage2" / f for f in ("loco_mad.yaml", "loco_mad_tiny.yaml")] + [CONFIGS / "data" / "toy.yaml"]


def write_tiny_stage1_export(toy_root: Path, out: Path) -> Path:
    """A PME of ``configs/stage1/pme_tiny.yaml``'s sizes with random weights (seed 0), exported to ``out``."""
    stage1 = [CONFIGS / "stage1" / "pme.yaml", CONFIGS / "stage1" / "pme_tiny.yaml"]
    sizes = OmegaConf.to_object(load_config(stage1, [f"data.root={toy_root / 'mad'}"]).pme.model)
    config = PMEConfig(**vars(sizes))
    torch.manual_seed(0)
    save_pme(PretrainedMovieEncoder(config), config, out)
    return out


def stage2_cfg(toy_root: Path, stage1: Path, run_root: Path, *overrides: str) -> DictConfig:
    """The toy Stage-II config (``loco_mad.yaml`` + ``loco_mad_tiny.yaml``) on ``toy_root``, quiet."""
    return load_config(STAGE2, [
        f"data.root={toy_root / 'mad'}", f"captioning.stage1={stage1}", f"trainer.default_root_dir={run_root}",
        "trainer.enable_progress_bar=false", *overrides,
    ])


def write_untrained_stage2_checkpoint(cfg: DictConfig, path: Path) -> Path:
    """A Stage-II checkpoint of ``cfg``'s captioner with its initial (seed 0) weights, as ``moviead train`` writes it:
    trainable weights under ``captioner.`` and the ``moviead`` entry. Evaluation tests need a model, not a good one."""
    from moviead.recipes import build_recipe
    from moviead.recipes.base import CHECKPOINT_KEY, resolved_config

    torch.manual_seed(0)
    parts = build_recipe(cfg, path.parent)
    state = {f"captioner.{n}": p.detach().clone() for n, p in parts.captioner.named_parameters() if p.requires_grad}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, CHECKPOINT_KEY: {"config": resolved_config(cfg), "stage1": cfg.captioning.stage1}},
               path)
    return path


def first_batch(parts: Recipe, cfg: DictConfig, stage: str = "validate") -> dict:
    """The first collated batch of ``cfg``'s data through ``parts``' tokenizer and collator: of the validation loader
    (``stage="validate"``) or of the training loader (``"fit"``)."""
    datamodule = build_datamodule(cfg, parts.tokenizer, needs=parts.data, collate=parts.collator)
    datamodule.setup(stage)
    return next(iter(datamodule.val_dataloader() if stage == "validate" else datamodule.train_dataloader()))
