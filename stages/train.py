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
from safetensors.torch import load_model

from moviead.config import TaskName, save_config
from moviead.data.tokenization import load_hf_tokenizer
from moviead.datamodules import build_datamodule
from moviead.losses import PMELossWeights
from moviead.models.lavis_convert import (
    convert_lavis_state_dict,
    load_lavis_state_dict,
    pme_export_files,
    save_pme,
)
from moviead.models.qformer import PMEConfig, PretrainedMovieEncoder
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
    """What a task needs: the LightningModule, the tokenizer for the data layer, the monitor and an exporter.

    ``datamodule_kwargs`` go to the DataModule: Stage-II's collate function, its proposals and the DSM's
    sentence-feature bank, which the DataModule fills before training.
    """

    stage: L.LightningModule
    tokenizer: Any
    monitor: str
    export: Callable[[Path], None]
    datamodule_kwargs: dict[str, Any] = field(default_factory=dict)


def run_folder(cfg: DictConfig) -> Path:
    """``<trainer.default_root_dir>/<name>``: where a run writes its config, metrics, checkpoints and export."""
    return Path(cfg.trainer.default_root_dir) / cfg.name


def build_pme(cfg: DictConfig) -> PretrainedMovieEncoder:
    """The PME of ``cfg.pme.model``, initialised from ``cfg.pme.init_from`` when given.

    ``init_from`` is a PME export (folder or ``.safetensors`` beside its ``pme_config.json``: Stage-I or
    ``moviead convert-lavis`` output), loaded strictly so sizes must match ``pme.model``, or a LAVIS BLIP-2
    ``.pth`` (converted in memory, mismatched tensors re-initialised and logged).
    """
    model = PretrainedMovieEncoder(PMEConfig(**OmegaConf.to_container(cfg.pme.model, resolve=True)))
    source = cfg.pme.init_from
    if source:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"pme.init_from: {path} does not exist (a PME export folder or a LAVIS .pth)")
        if path.is_dir() or path.suffix == ".safetensors":
            weights, _ = pme_export_files(path)
            load_model(model, str(weights), strict=True)
        else:
            converted, report = convert_lavis_state_dict(load_lavis_state_dict(path), model)
            model.load_state_dict(converted, strict=True)
            log.info("initialised the PME from %s\n%s", path, report.summary())
    return model


def _pme_bundle(cfg: DictConfig) -> StageBundle:
    tokenizer = load_hf_tokenizer(cfg.pme.tokenizer)
    if len(tokenizer) > cfg.pme.model.vocab_size:
        raise ValueError(
            f"the tokenizer {cfg.pme.tokenizer} has {len(tokenizer)} tokens but pme.model.vocab_size is "
            f"{cfg.pme.model.vocab_size}: set pme.model.vocab_size >= {len(tokenizer)}"
        )
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
    return StageBundle(stage, tokenizer, "val/t2v_r1", lambda out: save_pme(model, model.config, out))


def _clip_bundle(cfg: DictConfig) -> StageBundle:
    """DistinctAD Stage-I. Export: adapter mode → ``clip_adapter.safetensors`` (the adapter and temperatures;
    the frozen CLIP named in the config is unchanged); tower mode → the adapted CLIP in open_clip's
    ``local-dir:`` layout (``export/open_clip``), which ``moviead extract-features`` loads as is."""
    import open_clip
    from safetensors.torch import save_model

    from moviead.models.clip_adapter import CLIPAdaptationConfig, CLIPVideoAdapter
    from moviead.models.clip_towers import OpenCLIPTokenizer, load_open_clip, save_open_clip_dir
    from moviead.stages.alignment_clip import CLIPAdaptationStage

    config = CLIPAdaptationConfig(**OmegaConf.to_container(cfg.clip, resolve=True))
    if config.mode == "adapter" and config.feature_dim != cfg.data.feature_dim:
        raise ValueError(
            f"clip.feature_dim={config.feature_dim} but data.feature_dim={cfg.data.feature_dim}: "
            "adapter mode reads the data's CLIP features, so the two must agree"
        )
    clip_model, _, clip_tokenizer = load_open_clip(
        config.clip_model, config.clip_checkpoint, config.random_init, config.clip_model_config_file
    )
    model = CLIPVideoAdapter(clip_model, config, clip_tokenizer)

    def export(out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        if config.mode == "tower":
            save_open_clip_dir(clip_model, open_clip.get_model_config(config.clip_model), out / "open_clip")
        else:
            save_model(model, str(out / "clip_adapter.safetensors"))

    tokenizer = OpenCLIPTokenizer(clip_tokenizer, int(clip_model.context_length))
    return StageBundle(CLIPAdaptationStage(model, cfg.optim), tokenizer, "val/t2v_r1", export)


def _captioning_bundle(cfg: DictConfig) -> StageBundle:
    """Stage-II. Export: ``captioner.safetensors`` (the trainable weights) beside the resolved config."""
    from safetensors.torch import save_file

    from moviead.config import DatasetName
    from moviead.metrics.toy import toy_slot_accuracy
    from moviead.recipes.build import resolved_config
    from moviead.stages.captioning import CaptioningStage
    from moviead.recipes.build import build_captioner

    parts = build_captioner(cfg, run_folder(cfg))
    cap = cfg.captioning
    stage = CaptioningStage(
        parts.captioner,
        cfg.optim,
        parts.decode,
        parts.generation_settings(cap.generation, cap.val_num_beams),
        val_generate_batches=cap.val_generate_batches,
        extra_metrics=toy_slot_accuracy if DatasetName(cfg.data.dataset) == DatasetName.toy else None,
        checkpoint_info={"config": resolved_config(cfg), "stage1": cap.stage1},
    )
    def export(out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        weights = {n: p.detach().contiguous() for n, p in parts.captioner.named_parameters() if p.requires_grad}
        save_file(weights, str(out / "captioner.safetensors"))

    kwargs = parts.datamodule_kwargs(cap.decoder)
    return StageBundle(stage, parts.tokenizer, "val/cider", export, datamodule_kwargs=kwargs)


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
        accelerator=t.accelerator,
        devices=t.devices,
        strategy=t.strategy,
        precision=t.precision,
        max_epochs=t.max_epochs,
        max_steps=t.max_steps,
        accumulate_grad_batches=t.accumulate_grad_batches,
        gradient_clip_val=t.gradient_clip_val,
        log_every_n_steps=t.log_every_n_steps,
        val_check_interval=t.val_check_interval,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
        num_sanity_val_steps=t.num_sanity_val_steps,
        deterministic=t.deterministic,
        default_root_dir=str(run_dir),
        enable_progress_bar=t.enable_progress_bar,
        enable_model_summary=t.enable_progress_bar,
        logger=loggers,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
    )


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
    datamodule = build_datamodule(cfg.data, tokenizer=bundle.tokenizer, seed=cfg.seed, **bundle.datamodule_kwargs)
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
