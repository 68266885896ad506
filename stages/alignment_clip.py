"""Stage-I of DistinctAD: adapt CLIP's vision side to its frozen text encoder (SPEC §4.2)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig

from moviead.data.collate import BatchKey
from moviead.losses import CLIPAdaptationLoss
from moviead.metrics.retrieval import retrieval_metrics
from moviead.models.clip_adapter import CLIPVideoAdapter
from moviead.stages.alignment_pme import gather_rows_to_cpu
from moviead.stages.optim import build_optimizer


class CLIPAdaptationStage(L.LightningModule):
    """Trains a :class:`CLIPVideoAdapter` (passed in) with global + frame-word matching (:class:`CLIPAdaptationLoss`,
    weighted by the adapter's ``config.lambda_fw``).

    Logs ``train/global``, ``train/fw``, ``train/loss``; validation logs text↔video retrieval (``val/t2v_r1``…)
    with video = mean of L2-normalised adapted frame embeddings, text = the frozen CLIP sentence embedding.
    """

    def __init__(self, model: CLIPVideoAdapter, optim: DictConfig) -> None:
        super().__init__()
        self.model = model
        self.optim = optim
        self.loss = CLIPAdaptationLoss(lambda_fw=model.config.lambda_fw)
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        self.model.clamp_temp_()
        losses = self.loss(self.model, batch)
        batch_size = batch[BatchKey.FRAMES].shape[0]
        for name, value in losses.items():
            self.log(f"train/{name}", value, prog_bar=name == "loss", batch_size=batch_size)
        return losses["loss"]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        frames, mask = batch[BatchKey.FRAMES], batch[BatchKey.FRAME_MASK]
        video = self.model.video_embedding(self.model(frames, mask), mask)  # (B, E)
        text = self.model.encode_text(batch[BatchKey.TEXT_IDS])  # (B, E)
        self._val.append((video.float().cpu(), torch.nn.functional.normalize(text.float(), dim=-1).cpu()))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        # Every rank's items, so the metrics under DDP are those of the whole validation set.
        video = gather_rows_to_cpu(torch.cat([v for v, _ in self._val]), self.device)
        text = gather_rows_to_cpu(torch.cat([t for _, t in self._val]), self.device)
        self._val.clear()
        for name, value in retrieval_metrics(text @ video.T).items():
            self.log(f"val/{name}", value, prog_bar=name == "t2v_r1")

    def configure_optimizers(self) -> dict[str, Any]:
        return build_optimizer(self.named_parameters(), self.optim, int(self.trainer.estimated_stepping_batches))
