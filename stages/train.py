"""``moviead train``: build the data, the models and the stage a config names, fit, export.

Run folder ``<trainer.default_root_dir>/<name>``: ``config.yaml`` (resolved), ``metrics.csv`` (CSV logger),
``checkpoints/`` (``last.ckpt`` and the best by the stage's monitor, written atomically; ``trainer.resume=true``
goes on from ``last.ckpt`` exactly) and ``export/`` (what Stage-II loads); with W&B on, ``wandb/`` and
``wandb_run_id`` (:mod:`moviead.stages.tracking`).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import lightning as L
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf

from moviead.config import TaskName, save_config
from moviead.data.records import DatasetName
from moviead.data.requirements import DataRequirements
from moviead.datamodules import build_datamodule
from moviead.losses import PMELossWeights
from moviead.recipes.stage1 import build_pme, pme_tokenizer
from moviead.stages.alignment_pme import PMEAlignmentStage
from moviead.stages.checkpointing import AtomicCheckpointIO, checkpoint_callbacks, resume_checkpoint
from moviead.stages.tracking import build_loggers, finish_loggers

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    export_dir: Path
    metrics: dict[str, float]


@dataclass
class StageBundle:
    """What a task needs: the LightningModule, the tokenizer for the data layer, the monitor and an exporter, and
    for Stage-II the recipe's data requirements and collate function."""

    stage: L.LightningModule
    tokenizer: Any
    monitor: str
    export: Callable[[Path], None]
    needs: DataRequirements = field(default_factory=DataRequirements)
    collate: Callable[[Sequence[Any]], dict[str, Any]] | None = None


def run_folder(cfg: DictConfig) -> Path:
    """``<trainer.default_root_dir>/<name>``: where a run writes its config, metrics, checkpoints and export."""
    return Path(cfg.trainer.default_root_dir) / cfg.name


def _pme_bundle(cfg: DictConfig) -> StageBundle:
    tokenizer = pme_tokenizer(cfg)
    model = build_pme(cfg)
    losses = cfg.pme.losses
    stage = PMEAlignmentStage(
        model,
        PMELossWeights(vtc=losses.vtc, vtm=losses.vtm, vtg=losses.vtg),
        cfg.optim,
        vtc_label_smoothing=losses.vtc_label_smoothing,
        vtg_label_smoothing=losses.vtg_label_smoothing,
        vtg_bos_token_id=losses.vtg_bos_token_id,
        seed=cfg.seed,
    )
    return StageBundle(stage, tokenizer, "val/t2v_r1", lambda out: model.save_pretrained(out))


def _clip_bundle(cfg: DictConfig) -> StageBundle:
    """DistinctAD Stage-I. Export: adapter mode → ``clip_adapter.safetensors`` + ``clip_adapter_config.json``
    (:meth:`CLIPVideoAdapter.save_pretrained`: the adapter, temperatures and its own config; the frozen CLIP named
    in the config is unchanged); tower mode → the adapted CLIP in open_clip's ``local-dir:`` layout
    (``export/open_clip``), which ``moviead extract-features`` loads as is."""
    import open_clip

    from moviead.clip_towers import save_open_clip_dir
    from moviead.export_files import OPEN_CLIP_DIR
    from moviead.recipes.stage1 import build_clip_adaptation
    from moviead.stages.alignment_clip import CLIPAdaptationStage

    built = build_clip_adaptation(cfg)

    def export(out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        if built.config.mode == "tower":
            arch = open_clip.get_model_config(built.config.clip_model)
            save_open_clip_dir(built.clip_model, arch, out / OPEN_CLIP_DIR)
        else:
            built.model.save_pretrained(out)

    return StageBundle(CLIPAdaptationStage(built.model, cfg.optim), built.tokenizer, "val/t2v_r1", export)


def _captioning_bundle(cfg: DictConfig) -> StageBundle:
    """Stage-II: the recipe of ``captioning.method``. Export: ``captioner.safetensors`` (the trainable weights) and
    ``captioner_config.json`` (what rebuilds the recipe, and the Stage-I export's hash):
    :func:`moviead.recipes.checkpoint.save_captioner_export`."""
    from moviead.metrics.toy import toy_slot_accuracy
    from moviead.recipes import build_recipe
    from moviead.recipes.base import resolved_config
    from moviead.recipes.checkpoint import save_captioner_export, stage1_sha256
    from moviead.stages.captioning import CaptioningStage

    recipe = build_recipe(cfg, run_folder(cfg))
    cap = cfg.captioning
    stage = CaptioningStage(
        recipe.captioner,
        cfg.optim,
        recipe.decode,
        recipe.generation_settings(cap.generation, cap.val_num_beams),
        val_generate_batches=cap.val_generate_batches,
        extra_metrics=toy_slot_accuracy if DatasetName(cfg.data.dataset) == DatasetName.toy else None,
        checkpoint_info={"config": resolved_config(cfg), "stage1": cap.stage1, "stage1_sha256": stage1_sha256(cfg)},
    )

    def export(out: Path) -> None:
        save_captioner_export(recipe, cfg, out)

    return StageBundle(stage, recipe.tokenizer, "val/cider", export, needs=recipe.data, collate=recipe.collator)


BUILDERS: dict[TaskName, Callable[[DictConfig], StageBundle]] = {
    TaskName.pme_alignment: _pme_bundle,
    TaskName.clip_adaptation: _clip_bundle,
    TaskName.captioning: _captioning_bundle,
}


def build_trainer(
    cfg: DictConfig, run_dir: Path, monitor: str, extra_callbacks: Sequence[Callback] = ()
) -> L.Trainer:
    """A Lightning Trainer from ``cfg.trainer``: CSV / W&B loggers (``cfg.logger``), atomic last/best checkpoints
    in ``run_dir`` (``last.ckpt`` also every ``trainer.ckpt_every_n_steps``) with what exact resume needs."""
    t = cfg.trainer
    callbacks = [*checkpoint_callbacks(run_dir, monitor, int(t.ckpt_every_n_steps)), *extra_callbacks]
    loggers = build_loggers(cfg, run_dir) or False
    return L.Trainer(
        **lightning_trainer_kwargs(t),
        default_root_dir=str(run_dir),
        enable_model_summary=t.enable_progress_bar,
        logger=loggers,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
    )


OWN_TRAINER_KEYS = ("default_root_dir", "resume", "ckpt_every_n_steps")  # read by moviead, not by L.Trainer


def lightning_trainer_kwargs(trainer: DictConfig) -> dict[str, Any]:
    """``trainer`` as ``L.Trainer`` keyword arguments: every field but moviead's own (``OWN_TRAINER_KEYS``)."""
    kwargs = OmegaConf.to_container(trainer, resolve=True)
    return {key: value for key, value in kwargs.items() if key not in OWN_TRAINER_KEYS}


def train(cfg: DictConfig, extra_callbacks: Sequence[Callback] = ()) -> TrainResult:
    """Fit the task of ``cfg`` and export its result; returns the run folder, export folder and final metrics.

    With ``trainer.resume=true`` training goes on from ``<run>/checkpoints/last.ckpt`` exactly where it stopped
    (:mod:`moviead.stages.checkpointing`). ``extra_callbacks`` are added to the Trainer's.
    """
    L.seed_everything(cfg.seed, workers=True)
    task = TaskName(cfg.task)
    if task not in BUILDERS:
        raise ValueError(f"task {task.value!r} has no trainer yet; choose one of {[t.value for t in BUILDERS]}")
    run_dir = run_folder(cfg)
    save_config(cfg, run_dir / "config.yaml")
    bundle = BUILDERS[task](cfg)
    datamodule = build_datamodule(cfg, bundle.tokenizer, needs=bundle.needs, collate=bundle.collate)
    ckpt_path = None
    if cfg.trainer.resume:
        point = resume_checkpoint(run_dir)
        ckpt_path = point.path
        datamodule.resume_at(point.epoch, point.batches_done)
        log.info("resuming from %s at epoch %d, batch %d (step %d)", ckpt_path, point.epoch, point.batches_done,
                 point.global_step)
    trainer = build_trainer(cfg, run_dir, bundle.monitor, extra_callbacks)
    with warnings.catch_warnings():
        # Lightning warns that a plain DataLoader cannot resume mid-epoch; ours can (ResumableShuffleSampler).
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")
        trainer.fit(bundle.stage, datamodule=datamodule, ckpt_path=ckpt_path)
    # Lightning may skip the checkpoint of the final epoch: make "last" the weights that get exported.
    trainer.save_checkpoint(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    finish_loggers(trainer)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    export_dir = run_dir / "export"
    if trainer.is_global_zero:
        bundle.export(export_dir)
        save_config(cfg, export_dir / "config.yaml")
    return TrainResult(run_dir, export_dir, metrics)
