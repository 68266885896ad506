"""The fast learning check of a Stage-II recipe: its training loss on one fixed batch of toy training ADs, before and
after a few optimiser steps on that batch, as the Stage-II module computes it."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from moviead.losses import CaptioningLoss
from moviead.recipes.base import Recipe, model_batch
from tests.stages._stage2 import first_batch


def fixed_batch_losses(parts: Recipe, cfg: DictConfig, steps: int) -> tuple[float, float]:
    """(loss before, loss after ``steps`` AdamW steps at ``cfg.optim.lr``) of ``parts.captioner`` on the first
    training batch of ``cfg``'s data, in training mode (the loss of ``moviead.stages.captioning``: ½ (GEN + CCL) with
    the DSM, + λ_dw · DW for DistinctAD)."""
    captioner = parts.captioner.train()
    tensors = model_batch(captioner, first_batch(parts, cfg, "fit"))
    loss = CaptioningLoss(lambda_dw=captioner.lambda_dw)
    trainable = [p for p in captioner.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=float(cfg.optim.lr))
    first = None
    for _ in range(steps):
        value = loss(captioner, tensors).loss
        first = float(value.detach()) if first is None else first
        optimiser.zero_grad(set_to_none=True)
        value.backward()
        optimiser.step()
    return first, float(loss(captioner, tensors).loss)
