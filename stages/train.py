"""``moviead train``: build the data, the models and the stage a config names, fit, export.

Run folder ``<trainer.default_root_dir>/<name>``: ``config.yaml`` (resolved), ``metrics.csv`` (CSV logger),
``selection.json`` (the monitor and the validation movies ``best.ckpt`` is selected on, disjoint from test),
``checkpoints/`` (``last.ckpt`` and the best by the stage's monitor, written atomically; ``trainer.resume=true``
goes on from ``last.ckpt`` exactly) and ``export/`` (what Stage-II loads); with W&B on, ``wandb/`` and
``wandb_run_id`` (:mod:`moviead.stages.tracking`).

A run folder has one writer (an advisory lock, :mod:`moviead.evaluation.locks`) and is never overwritten: training
into a folder that already holds a run refuses unless ``trainer.resume=true`` (go on with it) or ``overwrite``
(the old folder is moved aside to ``<name>.old-<timestamp>``; nothing is deleted). Paths the Stage-II checkpoint
needs are stored absolute (:func:`portable_paths`), so the checkpoint works from any working directory.
"""

from __future__ import annotations

import copy
import logging
import os
import time
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
from moviead.evaluation.locks import acquire, check_not_locked, release
from moviead.evaluation.selection import SELECTION_FILE, write_selection
from moviead.losses import PMELoss, PMELossWeights
from moviead.recipes.stage1 import build_pme, pme_tokenizer
from moviead.stages.alignment_pme import PMEAlignmentStage
from moviead.stages.checkpointing import (
    AtomicCheckpointIO,
    check_resume_config,
    checkpoint_callbacks,
    resume_checkpoint,
)
from moviead.stages.tracking import build_loggers, drop_replayed_rows, finish_loggers

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


class RunFolderExistsError(FileExistsError):
    """The run folder already holds a run, and neither resume nor overwrite was asked for."""


# the config keys that name local files or folders a run (and its Stage-II checkpoint) reads
PATH_KEYS = ("data.root", "captioning.stage1", "captioning.decoder.lm", "captioning.decoder.tokenizer",
             "captioning.dsm.sentence_cache", "pme.tokenizer", "pme.init_from")
ALWAYS_LOCAL = ("data.root", "captioning.dsm.sentence_cache")  # never a hub name


def portable_paths(cfg: DictConfig) -> DictConfig:
    """A copy of ``cfg`` with the relative paths of :data:`PATH_KEYS` made absolute (against the working directory).

    Values that exist as local files or folders are resolved; hub names (``gpt2``, ``facebook/opt-2.7b``) that do
    not exist locally stay as they are. ``data.root`` and ``captioning.dsm.sentence_cache`` are always local and are
    resolved even before they exist (the toy data is generated, the cache written, later).
    """
    cfg = copy.deepcopy(cfg)
    for key in PATH_KEYS:
        value = OmegaConf.select(cfg, key, throw_on_missing=False)
        if not isinstance(value, str) or not value or value.startswith(("local-dir:", "hf-hub:")):
            continue
        path = Path(value).expanduser()
        if path.is_absolute() or not (path.exists() or key in ALWAYS_LOCAL):
            continue
        OmegaConf.update(cfg, key, str(path.resolve()), merge=False)
    return cfg


def _is_launched_rank(env: dict[str, str] | None = None) -> bool:
    """True in the processes a DDP launcher started for ranks > 0 (they re-run ``train`` on rank 0's run folder)."""
    env = os.environ if env is None else env
    return int(env.get("LOCAL_RANK", "0") or 0) != 0 or int(env.get("NODE_RANK", "0") or 0) != 0


def _holds_a_run(run_dir: Path) -> bool:
    """True when ``run_dir`` holds anything but its lock, config and selection record (a run that got as far as
    writing something)."""
    return run_dir.is_dir() and any(p.name not in (".lock", "config.yaml", SELECTION_FILE) for p in run_dir.iterdir())


def prepare_run_folder(cfg: DictConfig, overwrite: bool = False) -> Path:
    """Check and claim the run folder of ``cfg`` (rank 0 only) before anything is written there.

    Returns the run folder. A folder holding a run is refused unless ``trainer.resume`` is set; with ``overwrite``
    it is moved aside to ``<name>.old-<YYYYmmdd-HHMMSS>`` (the returned folder is then new and empty).

    Raises:
        RunFolderExistsError: the folder holds a run and neither resume nor overwrite was asked for.
        FolderLockedError: another process is writing the folder.
    """
    run_dir = run_folder(cfg)
    if _is_launched_rank():
        return run_dir
    if _holds_a_run(run_dir) and not cfg.trainer.resume:
        if not overwrite:
            raise RunFolderExistsError(
                f"{run_dir} already holds a run: pass --resume (trainer.resume=true) to go on with it, --overwrite "
                "to move it aside and start afresh, or another name=..."
            )
        check_not_locked(run_dir)
        aside = run_dir.with_name(f"{run_dir.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
        while aside.exists():
            aside = aside.with_name(aside.name + "x")
        run_dir.rename(aside)
        log.warning("moved the earlier run %s aside to %s", run_dir, aside)
    return run_dir


def _pme_bundle(cfg: DictConfig) -> StageBundle:
    tokenizer = pme_tokenizer(cfg)
    model = build_pme(cfg)
    losses = cfg.pme.losses
    loss = PMELoss(PMELossWeights(vtc=losses.vtc, vtm=losses.vtm, vtg=losses.vtg),
                   vtc_label_smoothing=losses.vtc_label_smoothing, vtg_label_smoothing=losses.vtg_label_smoothing,
                   vtg_bos_token_id=losses.vtg_bos_token_id, seed=cfg.seed)
    stage = PMEAlignmentStage(model, loss, cfg.optim)
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
    stage1_hash = stage1_sha256(cfg)  # hashed once: stored in every checkpoint and in the export
    stage = CaptioningStage(
        recipe.captioner,
        cfg.optim,
        recipe.decode,
        recipe.generation_settings(cap.generation, cap.val_num_beams),
        val_generate_batches=cap.val_generate_batches,
        extra_metrics=toy_slot_accuracy if DatasetName(cfg.data.dataset) == DatasetName.toy else None,
        checkpoint_info={"config": resolved_config(cfg), "stage1": cap.stage1, "stage1_sha256": stage1_hash},
    )

    def export(out: Path) -> None:
        save_captioner_export(recipe, cfg, out, stage1_hash)

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


OWN_TRAINER_KEYS = ("default_root_dir", "resume", "resume_force", "ckpt_every_n_steps")  # read by moviead, not by L.Trainer


def lightning_trainer_kwargs(trainer: DictConfig) -> dict[str, Any]:
    """``trainer`` as ``L.Trainer`` keyword arguments: every field but moviead's own (``OWN_TRAINER_KEYS``)."""
    kwargs = OmegaConf.to_container(trainer, resolve=True)
    return {key: value for key, value in kwargs.items() if key not in OWN_TRAINER_KEYS}


def train(cfg: DictConfig, extra_callbacks: Sequence[Callback] = (), overwrite: bool = False) -> TrainResult:
    """Fit the task of ``cfg`` and export its result; returns the run folder, export folder and final metrics.

    The run folder is claimed first (:func:`prepare_run_folder`): a folder that holds a run is refused unless
    ``trainer.resume`` or ``overwrite`` (the old run is moved aside); another process writing it is refused.

    With ``trainer.resume=true`` training goes on from ``<run>/checkpoints/last.ckpt`` exactly where it stopped
    (:mod:`moviead.stages.checkpointing`), if the config still describes the same run
    (:func:`~moviead.stages.checkpointing.check_resume_config`: another model is refused, other ``data`` settings
    need ``trainer.resume_force=true``). ``extra_callbacks`` are added to the Trainer's.
    """
    task = TaskName(cfg.task)
    if task not in BUILDERS:
        raise ValueError(f"task {task.value!r} has no trainer yet; choose one of {[t.value for t in BUILDERS]}")
    cfg = portable_paths(cfg)
    run_dir = prepare_run_folder(cfg, overwrite)
    if _is_launched_rank():
        return _fit(cfg, task, run_dir, extra_callbacks)
    acquire(run_dir)  # one writer per run folder
    try:
        if cfg.trainer.resume:  # before _fit replaces the run's config.yaml
            check_resume_config(run_dir / "config.yaml", cfg, force=bool(cfg.trainer.resume_force))
        return _fit(cfg, task, run_dir, extra_callbacks)
    finally:
        release(run_dir)


def _fit(cfg: DictConfig, task: TaskName, run_dir: Path, extra_callbacks: Sequence[Callback]) -> TrainResult:
    """:func:`train` once the run folder is claimed."""
    L.seed_everything(cfg.seed, workers=True)
    save_config(cfg, run_dir / "config.yaml")
    bundle = BUILDERS[task](cfg)
    datamodule = build_datamodule(cfg, bundle.tokenizer, needs=bundle.needs, collate=bundle.collate)
    if not _is_launched_rank():  # the movies best.ckpt is selected on (read by `moviead evaluate`)
        write_selection(run_dir, bundle.monitor, DatasetName(cfg.data.dataset).value, datamodule.load("val").movies)
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
    if cfg.trainer.resume and cfg.logger.csv and trainer.is_global_zero:
        dropped = drop_replayed_rows(run_dir / "metrics.csv")  # steps the stopped run logged past its checkpoint
        if dropped:
            log.info("metrics.csv: dropped %d row(s) of steps logged again after the resume", dropped)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    export_dir = run_dir / "export"
    if trainer.is_global_zero:
        bundle.export(export_dir)
        save_config(cfg, export_dir / "config.yaml")
    return TrainResult(run_dir, export_dir, metrics)
