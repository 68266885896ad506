"""Stage-I of LoCo-MAD: align the PME's queries with AD text by VTC, VTM and VTG (SPEC §4.1)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig

from moviead.data.collate import BatchKey
from moviead.losses import PMELoss, all_gather_batch, vtc_similarities
from moviead.metrics.retrieval import retrieval_metrics
from moviead.models.qformer import PretrainedMovieEncoder
from moviead.stages.optim import build_optimizer


def gather_rows_to_cpu(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """All ranks' rows of ``x`` (sizes may differ), moved to ``device`` for the collective and returned on the CPU.

    Validation metrics of both Stage-I stages use it, so that under DDP they are those of the whole validation set.
    """
    return all_gather_batch(x.to(device), with_grad=False)[0].cpu()


class PMEAlignmentStage(L.LightningModule):
    """Trains a :class:`PretrainedMovieEncoder` (passed in) with the weighted Stage-I losses (:class:`PMELoss`).

    Args:
        model: the PME.
        loss: the Stage-I objective (weights, label smoothing, VTM negatives; :class:`PMELoss`).
        optim: the ``optim`` config section.
    """

    def __init__(self, model: PretrainedMovieEncoder, loss: PMELoss, optim: DictConfig) -> None:
        super().__init__()
        self.model = model
        self.optim = optim
        self.loss = loss
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def resumable_generators(self) -> dict[str, torch.Generator]:
        """Generators whose state checkpoints keep, for exact resume (``moviead.stages.checkpointing.ResumeState``)."""
        return {"vtm_negatives": self.loss.negatives_generator()}

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        total, losses = self.loss(self.model, batch)
        batch_size = batch[BatchKey.FRAMES].shape[0]
        # averaged over ranks (a no-op on one process): under DDP the logged loss is the loss of the whole batch
        for name, value in losses.items():
            self.log(f"train/{name}", value, batch_size=batch_size, sync_dist=True)
        self.log("train/loss", total, prog_bar=True, batch_size=batch_size, sync_dist=True)
        self.log("train/temp", self.model.temp.detach(), batch_size=batch_size)
        return total

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        video = self.model.query_features(batch[BatchKey.FRAMES], batch[BatchKey.FRAME_MASK])  # (B, Nq, E)
        text = self.model.text_features(batch[BatchKey.TEXT_IDS], batch[BatchKey.TEXT_MASK])  # (B, E)
        self._val.append((video.float().cpu(), text.float().cpu()))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        # Every rank's items, so the metrics under DDP are those of the whole validation set.
        video = self.gather_validation(torch.cat([v for v, _ in self._val]))  # (N, Nq, E)
        text = self.gather_validation(torch.cat([t for _, t in self._val]))  # (N, E)
        self._val.clear()
        _, sim_t2v, _ = vtc_similarities(video, text, gather=False)  # (N texts, N videos), max over queries
        for name, value in retrieval_metrics(sim_t2v).items():
            self.log(f"val/{name}", value, prog_bar=name == "t2v_r1")

    def gather_validation(self, x: torch.Tensor) -> torch.Tensor:
        """All ranks' rows of ``x`` (on this rank's device for the collective, returned on the CPU)."""
        return gather_rows_to_cpu(x, self.device)

    def configure_optimizers(self) -> dict[str, Any]:
        return build_optimizer(self.named_parameters(), self.optim, int(self.trainer.estimated_stepping_batches))
