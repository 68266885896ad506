"""Checkpoints a kill cannot corrupt, that load as plain weights only, and that resume a run exactly.

- :class:`AtomicCheckpointIO`: Lightning's checkpoint I/O through :func:`moviead.checkpoints.save_checkpoint_atomically`
  (temp file + fsync + rename) and :func:`moviead.checkpoints.load_checkpoint_safely` (``weights_only=True``).
- :class:`ResumeState`: stores in every checkpoint, under ``"moviead_resume"``, what Lightning does not: where the
  training data order stands (epoch, batches done in it) and every rank's RNG states (torch, NumPy, Python, plus
  the generators a stage lists in ``resumable_generators()``), and restores the RNG states when a run resumes.
- :func:`checkpoint_callbacks`: ``last.ckpt`` every ``n`` training steps and after each validation, ``best.ckpt``.
- :func:`resume_checkpoint`: the ``last.ckpt`` a ``trainer.resume=true`` run starts from, and its position.
- :func:`check_resume_config`: a resumed run's config against the one the run folder was trained with: another
  model or task (``pme``, ``clip``, ``captioning``, ``task``) is refused, other ``data`` settings are refused unless
  ``trainer.resume_force=true``; anything else (``trainer``, ``optim``, ``logger``, e.g. more epochs) may change.

Exact resume needs what an uninterrupted run would have done after the checkpoint to happen again: Lightning
restores weights, optimizer, scheduler and loop counters; the training order is a function of (seed, epoch) and
skips the batches already done (:class:`moviead.data.resumable_sampler.ResumableShuffleSampler`); loaders take
their worker seeds from their own generators, so validation never moves the global RNG. With
``data.num_workers=0`` and deterministic algorithms a resumed CPU run ends with the same weights bit for bit; with
workers, the order is the same but the workers' RNG streams (frame shift) restart.

Why not Lightning's own mechanism: Lightning 2.6 does not fast-forward a DataLoader mid-epoch; it restores loaders
that have ``state_dict``/``load_state_dict``, but only when the loader is built after the checkpoint is read, and our
``configure_optimizers`` builds it earlier (``trainer.estimated_stepping_batches``; Lightning issue #20550), so the
state would never be loaded. The resume point is therefore read by ``train()`` and given to the DataModule before
``fit``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from moviead.checkpoints import (
    capture_rng_states,
    gather_from_ranks,
    load_checkpoint_safely,
    restore_rng_states,
    save_checkpoint_atomically,
)

log = logging.getLogger(__name__)

RESUME_KEY = "moviead_resume"
LAST_NAME = "last.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes checkpoints atomically and reads them with ``weights_only=True`` whatever the caller asks.

    Local paths only (a remote URL is an error: the rename that makes a write atomic is a local-filesystem
    operation).
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        if "://" in str(path):
            raise ValueError(f"atomic checkpoints need a local path, got {path}")
        save_checkpoint_atomically(checkpoint, Path(path))

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        if weights_only is False:
            log.warning("ignoring weights_only=False: %s is loaded as plain weights only", path)
        return load_checkpoint_safely(path, map_location=map_location if map_location is not None else "cpu")


def training_position(trainer: L.Trainer) -> tuple[int, int]:
    """(epoch, batches done in it) from which training goes on after a checkpoint written now.

    During epoch ``e`` after ``k`` training batches it is ``(e, k)``; once an epoch's batches are all done it is
    ``(e + 1, 0)``, which is also what Lightning resumes into.
    """
    loop = trainer.fit_loop
    epoch = max(loop.epoch_progress.current.started - 1, 0)  # the epoch in progress (or the last one, once ended)
    done = loop.epoch_loop.batch_progress.current.processed
    if done >= trainer.num_training_batches:
        return epoch + 1, 0
    return epoch, int(done)


def _module_generators(pl_module: L.LightningModule) -> dict[str, torch.Generator]:
    """The generators a stage draws from (``resumable_generators()``, e.g. the VTM negative sampler's)."""
    listed = getattr(pl_module, "resumable_generators", None)
    return dict(listed()) if callable(listed) else {}


class ResumeState(Callback):
    """Saves and restores the data position and the RNG states of every rank (see the module docstring)."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        epoch, batches_done = training_position(trainer)
        local = {
            "rng": capture_rng_states(),
            "generators": {name: g.get_state() for name, g in _module_generators(pl_module).items()},
        }
        checkpoint[RESUME_KEY] = {"epoch": epoch, "batches_done": batches_done, "ranks": gather_from_ranks(local)}

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(RESUME_KEY)
        if state is None:
            log.warning("the checkpoint has no %r entry: RNG states are not restored, the resumed run is not exact",
                        RESUME_KEY)
            return
        ranks = state["ranks"]
        if len(ranks) != trainer.world_size:
            log.warning("the checkpoint was written by %d processes, this run has %d: RNG streams are not resumed "
                        "exactly", len(ranks), trainer.world_size)
        mine = ranks[trainer.global_rank % len(ranks)]
        restore_rng_states(mine["rng"])
        generators = _module_generators(pl_module)
        for name, value in mine["generators"].items():
            if name in generators:
                generators[name].set_state(value)


def checkpoint_callbacks(run_dir: Path, monitor: str, every_n_steps: int) -> list[Callback]:
    """``best.ckpt`` by ``monitor`` (max) and ``last.ckpt`` after each validation, ``last.ckpt`` every
    ``every_n_steps`` training steps too (0: no mid-epoch checkpoints), and :class:`ResumeState`.

    Fixed file names (no ``-v1`` versions): a rerun or a resumed run overwrites them.
    """
    folder = run_dir / "checkpoints"
    callbacks: list[Callback] = [
        ModelCheckpoint(dirpath=folder, save_last=True, save_top_k=1, monitor=monitor, mode="max", filename="best",
                        enable_version_counter=False),
    ]
    if every_n_steps > 0:
        callbacks.append(ModelCheckpoint(dirpath=folder, save_last=True, save_top_k=0,
                                         every_n_train_steps=every_n_steps, enable_version_counter=False))
    callbacks.append(ResumeState())
    return callbacks


@dataclass(frozen=True)
class ResumePoint:
    """The checkpoint a resumed run starts from and where its training stood."""

    path: Path
    epoch: int
    batches_done: int  # in ``epoch``
    global_step: int


def resume_checkpoint(run_dir: Path) -> ResumePoint:
    """``<run_dir>/checkpoints/last.ckpt`` and its position, checked to load as plain weights.

    Raises:
        FileNotFoundError: the run has no ``last.ckpt`` (nothing to resume: drop ``trainer.resume``).
        moviead.checkpoints.UnsafeCheckpointError: the file is not a plain-weights checkpoint.
    """
    path = run_dir / "checkpoints" / LAST_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"trainer.resume=true but {path} does not exist: resume needs the run folder of an earlier run with the "
            "same name and trainer.default_root_dir (or start afresh without trainer.resume)"
        )
    checkpoint = load_checkpoint_safely(path, mmap=True)
    step = int(checkpoint.get("global_step", 0))
    state = checkpoint.get(RESUME_KEY)
    if state is None:
        log.warning("%s has no %r entry (written before exact resume existed): training goes on from its weights, "
                    "optimizer and loop counters, with a fresh data order", path, RESUME_KEY)
        return ResumePoint(path, int(checkpoint.get("epoch", 0)), 0, step)
    return ResumePoint(path, int(state["epoch"]), int(state["batches_done"]), step)


MODEL_SECTIONS = ("pme", "clip", "captioning", "task")  # another model: the checkpoint's weights do not fit it
DATA_SECTIONS = ("data",)  # other data: the resumed run would not be the run it continues


class ResumeConfigError(ValueError):
    """A resumed run's config differs from its run folder's in the model, or (without force) in the data."""


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as ``{"a.b.c": leaf}`` (lists are leaves; an empty mapping is the leaf ``{}``)."""
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flat(item, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: value}


def config_changes(old: Any, new: Any, sections: Sequence[str]) -> list[str]:
    """``key: old -> new`` for each leaf under ``sections`` (top-level keys) that differs between two configs
    (``DictConfig`` or plain mappings), sorted by key; a key only one side has shows ``<absent>`` on the other."""
    from omegaconf import DictConfig, OmegaConf

    def plain(cfg: Any) -> dict[str, Any]:
        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)  # type: ignore[return-value]
        return dict(cfg)

    old, new = plain(old), plain(new)
    before = _flat({k: old[k] for k in sections if k in old})
    after = _flat({k: new[k] for k in sections if k in new})
    absent = "<absent>"
    return [f"{key}: {before.get(key, absent)!r} -> {after.get(key, absent)!r}"
            for key in sorted(set(before) | set(after)) if before.get(key, absent) != after.get(key, absent)]


def check_resume_config(saved: Path, cfg: Any, force: bool = False) -> None:
    """Refuse to resume a run whose config changed what the checkpoint was trained as.

    Args:
        saved: the run folder's ``config.yaml`` (none there: nothing to compare, nothing refused).
        cfg: the resolved config of the resumed run.
        force: accept changed ``data`` settings (``trainer.resume_force=true``).

    Raises:
        ResumeConfigError: a key under :data:`MODEL_SECTIONS` differs, or one under :data:`DATA_SECTIONS` does and
            ``force`` is not set; the message lists each with its old and new value.
    """
    saved = Path(saved)
    if not saved.is_file():
        return
    from omegaconf import OmegaConf

    old = OmegaConf.load(saved)
    model = config_changes(old, cfg, MODEL_SECTIONS)
    if model:
        raise ResumeConfigError(f"cannot resume {saved.parent}: the model differs from the one it was trained with "
                                f"({'; '.join(model)}); resume with the same settings, or start a new run (another "
                                "name=... or --overwrite)")
    data = config_changes(old, cfg, DATA_SECTIONS)
    if data and not force:
        raise ResumeConfigError(f"cannot resume {saved.parent}: the data settings differ from the run's "
                                f"({'; '.join(data)}); pass trainer.resume_force=true to go on with the new ones, "
                                "or resume with the same settings")
    if data:
        log.warning("resuming %s with other data settings (trainer.resume_force=true): %s", saved.parent,
                    "; ".join(data))
