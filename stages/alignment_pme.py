"""Stage-I of LoCo-MAD: align the PME's queries with AD text by VTC, VTM and VTG (SPEC §4.1)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.distributed as dist
import torch.nn.functional as F
from omegaconf import DictConfig

from moviead.data.collate import BatchKey
from moviead.losses import (
    PMELossWeights,
    all_gather_batch,
    info_nce,
    lm_labels,
    sample_hard_negatives,
    vtc_similarities,
    vtg_loss,
    vtm_loss,
)
from moviead.metrics.retrieval import retrieval_metrics
from moviead.models.qformer import PretrainedMovieEncoder
from moviead.stages.optim import build_optimizer


def _pad_to(x: torch.Tensor, length: int, value: float | int | bool) -> torch.Tensor:
    """Pad dim 1 of ``x`` to ``length``."""
    if x.shape[1] == length:
        return x
    pad = [0, 0] * (x.ndim - 2) + [0, length - x.shape[1]]
    return F.pad(x, pad, value=value)


def gather_padded(x: torch.Tensor, value: float | int | bool) -> torch.Tensor:
    """All ranks' rows of ``x`` (B, L, ...) without gradient, dim 1 padded to the longest across ranks."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        longest = torch.tensor([x.shape[1]], device=x.device)
        dist.all_reduce(longest, op=dist.ReduceOp.MAX)
        x = _pad_to(x, int(longest.item()), value)
    return all_gather_batch(x, with_grad=False)[0]


def gather_rows_to_cpu(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """All ranks' rows of ``x`` (sizes may differ), moved to ``device`` for the collective and returned on the CPU.

    Validation metrics of both Stage-I stages use it, so that under DDP they are those of the whole validation set.
    """
    return all_gather_batch(x.to(device), with_grad=False)[0].cpu()


class PMEAlignmentStage(L.LightningModule):
    """Trains a :class:`PretrainedMovieEncoder` (passed in) with the weighted Stage-I losses.

    Args:
        model: the PME.
        weights: loss weights; a zero weight switches that loss off (LoCo-MAD Table 5).
        optim: the ``optim`` config section.
        vtc_label_smoothing, vtg_label_smoothing: as in BLIP-2 (VTG 0.1).
        vtg_bos_token_id: replaces the first text token for VTG (LAVIS's ``[DEC]``); None keeps ``[CLS]``.
        seed: seeds the hard-negative sampler (per rank).
    """

    def __init__(
        self,
        model: PretrainedMovieEncoder,
        weights: PMELossWeights,
        optim: DictConfig,
        vtc_label_smoothing: float = 0.0,
        vtg_label_smoothing: float = 0.1,
        vtg_bos_token_id: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.model = model
        self.weights = weights
        self.optim = optim
        self.vtc_label_smoothing = vtc_label_smoothing
        self.vtg_label_smoothing = vtg_label_smoothing
        self.vtg_bos_token_id = vtg_bos_token_id
        self.seed = seed
        self._generator: torch.Generator | None = None
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def _negatives_generator(self) -> torch.Generator:
        if self._generator is None:
            self._generator = torch.Generator().manual_seed(self.seed * 1000 + self.global_rank)
        return self._generator

    def resumable_generators(self) -> dict[str, torch.Generator]:
        """Generators whose state checkpoints keep, for exact resume (``moviead.stages.checkpointing.ResumeState``)."""
        return {"vtm_negatives": self._negatives_generator()}

    def compute_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The enabled Stage-I losses of one batch (keys ``vtc``, ``vtm``, ``vtg``)."""
        frames, frame_mask = batch[BatchKey.FRAMES], batch[BatchKey.FRAME_MASK]  # (B, T, D), (B, T)
        text_ids, text_mask = batch[BatchKey.TEXT_IDS], batch[BatchKey.TEXT_MASK]  # (B, L)
        losses: dict[str, torch.Tensor] = {}
        if self.weights.enabled("vtc") or self.weights.enabled("vtm"):
            self.model.clamp_temp_()
            query_feats = self.model.query_features(frames, frame_mask)  # (B, Nq, E)
            text_feats = self.model.text_features(text_ids, text_mask)  # (B, E)
            sim_v2t, sim_t2v, offset = vtc_similarities(query_feats, text_feats, gather=True)  # (B, N) each
            if self.weights.enabled("vtc"):
                losses["vtc"] = info_nce(sim_v2t, sim_t2v, self.model.temp, offset, self.vtc_label_smoothing)
            if self.weights.enabled("vtm"):
                losses["vtm"] = self._vtm(batch, sim_v2t, sim_t2v, offset)
        if self.weights.enabled("vtg"):
            ids = text_ids.clone()
            if self.vtg_bos_token_id is not None:
                ids[:, 0] = self.vtg_bos_token_id
            logits = self.model.lm_logits(frames, frame_mask, ids, text_mask)  # (B, L, V)
            losses["vtg"] = vtg_loss(logits, lm_labels(ids, text_mask), self.vtg_label_smoothing)
        return losses

    def _vtm(self, batch: dict[str, Any], sim_v2t: torch.Tensor, sim_t2v: torch.Tensor, offset: int) -> torch.Tensor:
        frames, frame_mask = batch[BatchKey.FRAMES], batch[BatchKey.FRAME_MASK]
        text_ids, text_mask = batch[BatchKey.TEXT_IDS], batch[BatchKey.TEXT_MASK]
        all_frames, all_frame_mask = gather_padded(frames, 0.0), gather_padded(frame_mask, False)  # (N, T*, D)
        all_ids, all_text_mask = gather_padded(text_ids, 0), gather_padded(text_mask, False)  # (N, L*)
        # A pair is positive when the two ADs have the same text: never draw such a "negative".
        local_ids = _pad_to(text_ids, all_ids.shape[1], 0)
        positives = (local_ids.unsqueeze(1) == all_ids.unsqueeze(0)).all(dim=-1)  # (B, N)
        positives[torch.arange(len(text_ids)), offset + torch.arange(len(text_ids))] = True
        neg_text, neg_video = sample_hard_negatives(
            sim_v2t, sim_t2v, self.model.temp.detach(), offset, positives, self._negatives_generator()
        )
        local_frames = _pad_to(frames, all_frames.shape[1], 0.0)
        local_frame_mask = _pad_to(frame_mask, all_frames.shape[1], False)
        local_text_mask = _pad_to(text_mask, all_ids.shape[1], False)
        # Pairs: (video i, text i) positive; (video i, hard negative text); (hard negative video, text i).
        video = torch.cat([local_frames, local_frames, all_frames[neg_video]])
        video_mask = torch.cat([local_frame_mask, local_frame_mask, all_frame_mask[neg_video]])
        ids = torch.cat([local_ids, all_ids[neg_text], local_ids])
        mask = torch.cat([local_text_mask, all_text_mask[neg_text], local_text_mask])
        labels = torch.cat([torch.ones(len(frames)), torch.zeros(2 * len(frames))]).long().to(frames.device)
        return vtm_loss(self.model.itm_logits(video, video_mask, ids, mask), labels)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        losses = self.compute_losses(batch)
        total = self.weights.total(losses)
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
