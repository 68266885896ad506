"""Stage-II: train the captioner (projector, special-token rows, DSM, LoRA or the whole LM by config).

The PME and (by default) the LM are frozen: their weights are not written into checkpoints, which hold only
trainable parameters plus a ``moviead`` entry (the resolved config, the Stage-I export used and its content hash
``stage1_sha256``, checked when the checkpoint is loaded), so a Stage-II checkpoint of OPT-2.7B stays small.
Loading one therefore rebuilds the frozen parts from the config first
(:func:`moviead.recipes.checkpoint.load_captioner_checkpoint`).

Validation: ``val/gen`` (and ``val/ccl``, ``val/dw``) on every batch; on the first ``val_generate_batches`` batches (a
fixed subset, the loader is not shuffled) the model decodes, and ``val/cider`` (plus any ``extra_metrics``, such as the
toy data's name accuracy) is computed on those, gathered over every rank under DDP (:class:`CaptionMetrics` holds the
decoded texts and syncs them; :func:`validation_text_metrics`), so every rank logs the same value; a table of
(movie, time, GT, prediction, selected context) goes to ``<log dir>/val_samples/epoch-NNN.jsonl`` (with each AD's
``dsm_scores`` when the DSM is on, drawn as a heatmap in ``epoch-NNN.dsm.png``) and to W&B when that logger is on (``val/samples`` table, ``val/dsm_scores`` image); the
table holds rank 0's samples.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import lightning as L
import torch
from omegaconf import DictConfig

from moviead.data.collate import BatchKey
from moviead.losses.captioning import CaptioningLoss, CaptionLosses
from moviead.metrics.caption_metric import CaptionMetrics
from moviead.metrics.captioning import caption_scores
from moviead.models.captioner import ADCaptioner
from moviead.models.generation import GenerationSettings
from moviead.plots import dsm_score_matrix, plot_dsm_heatmap
from moviead.recipes.base import CHECKPOINT_KEY, model_batch
from moviead.recipes.stored_paths import run_dir_of
from moviead.stages.optim import build_optimizer
from moviead.stages.tracking import log_image, log_validation_samples, wandb_loggers

log = logging.getLogger(__name__)


def validation_text_metrics(
    metric: CaptionMetrics, extra_metrics: Callable[[list[str], list[str]], dict[str, float]] | None = None
) -> dict[str, float]:
    """``cider`` (with more than one sample) and ``extra_metrics`` on the (reference, prediction) pairs that
    ``metric`` holds on every rank together; a collective call under DDP (every rank must make it), a plain one in
    a single process. The metric is left unsynced and is not reset."""
    with metric.sync_context():
        references, predictions = metric.items()
    if not references:
        return {}
    metrics = {}
    if len(references) > 1:
        metrics["cider"] = float(caption_scores(references, predictions, metrics=("cider",))["cider"])
    if extra_metrics is not None:
        keys = sorted(references)
        metrics.update(extra_metrics([references[k][0] for k in keys], [predictions[k] for k in keys]))
    return metrics


class CaptioningStage(L.LightningModule):
    """Thin Lightning wrapper of an :class:`ADCaptioner` (built and passed in), trained with a
    :class:`CaptioningLoss` built here from the captioner's ``lambda_dw``.

    Args:
        captioner: the model.
        optim: the ``optim`` config section.
        decode: token ids → text (the tokenizer's decode, cut at the first full stop or newline).
        val_settings: decoding settings for validation.
        val_generate_batches: how many validation batches are decoded.
        extra_metrics: (references, predictions) → {name: value}, logged as ``val/<name>``.
        checkpoint_info: stored in every checkpoint under ``"moviead"``: ``config`` (resolved), ``stage1`` (the
            Stage-I export path) and ``stage1_sha256`` (its content hash, None without Stage-I); ``run_dir`` (the
            absolute run folder) is added from ``config``.
    """

    def __init__(
        self,
        captioner: ADCaptioner,
        optim: DictConfig,
        decode: Callable[[Sequence[int]], str],
        val_settings: GenerationSettings,
        val_generate_batches: int = 4,
        extra_metrics: Callable[[list[str], list[str]], dict[str, float]] | None = None,
        checkpoint_info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.captioner = captioner
        self.loss = CaptioningLoss(lambda_dw=captioner.lambda_dw)
        self.optim = optim
        self.decode = decode
        self.val_settings = val_settings
        self.val_generate_batches = val_generate_batches
        self.extra_metrics = extra_metrics
        self.checkpoint_info = checkpoint_info or {}
        self.strict_loading = False  # checkpoints hold the trainable parameters only
        self._samples: list[dict[str, Any]] = []
        self.val_captions = CaptionMetrics(metrics=("cider",))  # the decoded validation ADs of every rank

    def _log_losses(self, prefix: str, batch: dict[str, Any]) -> CaptionLosses:
        """Compute the losses of ``batch`` and log them: per step in training, per epoch (synced) in validation."""
        out = self.loss(self.captioner, model_batch(self.captioner, batch))
        values = {"loss": out.loss, "gen": out.gen, "ccl": out.ccl, "dw": out.dw}
        values = {name: value for name, value in values.items() if value is not None}
        on_step = prefix == "train"
        for name, value in values.items():
            self.log(f"{prefix}/{name}", value, prog_bar=name == "loss", batch_size=batch[BatchKey.FRAMES].shape[0],
                     on_step=on_step, on_epoch=not on_step, sync_dist=not on_step)
        return out

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._log_losses("train", batch).loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        scores = self._log_losses("val", batch).scores  # (B, P) DSM selection scores, None without the DSM
        if batch_idx >= self.val_generate_batches:
            return
        ids, selected = self.captioner.generate(model_batch(self.captioner, batch, with_target=False),
                                                self.val_settings)
        for row, (meta, tokens, chosen) in enumerate(zip(batch[BatchKey.META], ids, selected.tolist())):
            proposal = meta.get("proposal", [])
            dsm = {} if scores is None else {"dsm_scores": scores[row, : len(proposal)].float().cpu().tolist()}
            self._samples.append(
                {
                    "movie": meta["movie"],
                    "index": meta["index"],
                    "start": meta["start"],
                    "end": meta["end"],
                    "gt": meta["text"],
                    "pred": self.decode(tokens),
                    "context": [p for p, keep in zip(proposal, chosen) if keep],
                }
                | dsm
            )
        decoded = self._samples[len(self._samples) - len(ids):]
        self.val_captions.update([s["gt"] for s in decoded], [s["pred"] for s in decoded])

    def on_validation_epoch_end(self) -> None:
        samples, self._samples = self._samples, []
        metrics = validation_text_metrics(self.val_captions, self.extra_metrics)  # all ranks' samples
        self.val_captions.reset()
        for name, value in metrics.items():  # the same value on every rank: no further reduction
            self.log(f"val/{name}", float(value), prog_bar=name == "cider")
        if not samples:
            return
        if self.trainer.is_global_zero and not self.trainer.sanity_checking:
            self._write_samples(samples)

    def _write_samples(self, samples: list[dict[str, Any]]) -> None:
        folder = Path(self.trainer.default_root_dir) / "val_samples"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"epoch-{self.current_epoch:03d}.jsonl"
        with path.open("w", encoding="utf-8") as out:
            for s in samples:
                out.write(json.dumps(s, ensure_ascii=False) + "\n")
        for s in samples[:3]:
            log.info("val %s#%d  GT: %s | pred: %s", s["movie"], s["index"], s["gt"], s["pred"])
        log_validation_samples(self.loggers, samples)
        # The heatmap PNG only for W&B (matplotlib: 0.6 s a validation on the toy data, a fifth of it); without W&B
        # the scores are in the JSONL above and `moviead plot --dsm-heatmap` draws them.
        if wandb_loggers(self.loggers) and any(s.get("dsm_scores") for s in samples):  # local context: nothing
            scores, labels = dsm_score_matrix(samples)
            heatmap = plot_dsm_heatmap(scores, path.with_suffix(".dsm.png"), labels,
                                       title=f"DSM selection scores, epoch {self.current_epoch}")
            log_image(self.loggers, "val/dsm_scores", heatmap)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep trainable parameters and the buffers of trainable modules; drop the frozen LM and PME."""
        frozen_prefixes = ("captioner.pme.", "captioner.decoder.lm.")
        keep = {name for name, p in self.named_parameters() if p.requires_grad}
        keep |= {name for name, _ in self.named_buffers() if not name.startswith(frozen_prefixes)}
        state = checkpoint["state_dict"]
        for key in [k for k in state if k not in keep]:
            del state[key]
        info = dict(self.checkpoint_info)  # config, stage1, stage1_sha256
        if "config" in info:  # where the run is: inputs moved with it are found again (moviead.recipes.stored_paths)
            info.setdefault("run_dir", run_dir_of(info["config"]))
        checkpoint[CHECKPOINT_KEY] = info

    def configure_optimizers(self) -> dict[str, Any]:
        return build_optimizer(self.named_parameters(), self.optim, int(self.trainer.estimated_stepping_batches))

