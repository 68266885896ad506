"""Experiment tracking: the CSV logger and Weights & Biases from ``cfg.logger``.

W&B (``logger.wandb.enabled=true``) gets the resolved config, the ``train/`` and ``val/`` metrics, Stage-II's table of
validation samples and the DSM's selection heatmap. Its mode is ``logger.wandb.mode`` when set, else the
``WANDB_MODE`` environment variable, else ``online`` when ``WANDB_API_KEY`` is set and ``offline`` otherwise (an
offline run is written under ``<run>/wandb/offline-run-*`` and can be uploaded later with ``wandb sync``). Mode
``disabled`` (what ``make test`` exports) creates no W&B logger. The W&B run id is kept in ``<run>/wandb_run_id``
so that a resumed run (``trainer.resume=true``) continues the same W&B run.
"""

from __future__ import annotations

import csv
import logging
import os
import secrets
from pathlib import Path
from typing import Any, Sequence

import lightning as L
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from omegaconf import DictConfig, OmegaConf

from moviead.stages.checkpointing import resume_checkpoint

log = logging.getLogger(__name__)

WANDB_MODES = ("online", "offline", "disabled")
RUN_ID_FILE = "wandb_run_id"
SAMPLE_COLUMNS = ["movie", "time", "gt", "prediction", "selected context"]


def wandb_mode(configured: str | None) -> str:
    """``configured``, else ``$WANDB_MODE``, else online with ``$WANDB_API_KEY`` and offline without."""
    mode = configured or os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
    if mode not in WANDB_MODES:
        raise ValueError(f"logger.wandb.mode (or WANDB_MODE) is {mode!r}; choose one of {list(WANDB_MODES)}")
    return mode


def run_name(cfg: DictConfig) -> str:
    """``<recipe>-<data set>-<context mode>-seed<seed>``, e.g. ``loco_mad-mad-oracle-seed0``."""
    dataset = getattr(cfg.data.dataset, "value", cfg.data.dataset)
    context = getattr(cfg.captioning.context_mode, "value", cfg.captioning.context_mode)
    return f"{cfg.name}-{dataset}-{context}-seed{cfg.seed}"


def _wandb_run_id(run_dir: Path, resume: bool) -> str:
    """The run's W&B id: the stored one when resuming, else a new one (stored for a later resume)."""
    path = run_dir / RUN_ID_FILE
    if resume and path.is_file():
        return path.read_text(encoding="utf-8").strip()
    run_id = secrets.token_hex(4)  # W&B ids: lowercase letters and digits
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n", encoding="utf-8")
    return run_id


class _ResumedMetricsWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing ``metrics.csv`` keeps its rows up to the resumed step
    (Lightning's deletes the file); the resumed run appends to it."""

    def __init__(self, log_dir: str, resume_step: int) -> None:
        self._resume_step = resume_step
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = list(reader.fieldnames or [])
            kept = [row for row in reader if row.get("step") and int(float(row["step"])) <= self._resume_step]
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=header)
            writer.writeheader()
            writer.writerows(kept)
        self.metrics_keys = sorted(header)


class ResumedCSVLogger(CSVLogger):
    """A CSV logger for a resumed run: ``metrics.csv`` goes on from the checkpoint's step instead of restarting
    (``train()`` then drops the rows the replay logged twice: :func:`drop_replayed_rows`)."""

    def __init__(self, save_dir: str, resume_step: int) -> None:
        super().__init__(save_dir, name="", version="")
        self._resume_step = resume_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ResumedMetricsWriter(self.log_dir, self._resume_step)
        return self._experiment


def drop_replayed_rows(path: str | Path) -> int:
    """Rewrite a ``metrics.csv`` keeping, per (epoch, step, set of filled-in columns), only its last row; returns
    how many rows were dropped (0: the file is left untouched; a missing file is 0 too).

    A resumed run replays the steps after its checkpoint; when the stopped run had already written rows for some
    of them (it ran on after its last checkpoint), :class:`ResumedCSVLogger` keeps those and the replay logs them
    again. The replay's row is the one kept, in its place: the file stays in step order.
    """
    path = Path(path)
    if not path.is_file():
        return 0
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    def identity(row: dict[str, str]) -> tuple[str, str, frozenset[str]]:
        return row.get("epoch", ""), row.get("step", ""), frozenset(k for k, v in row.items() if v not in ("", None))
    last = {identity(row): n for n, row in enumerate(rows)}
    if len(last) == len(rows):
        return 0
    kept = [row for n, row in enumerate(rows) if last[identity(row)] == n]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(kept)
    return len(rows) - len(kept)


def build_loggers(cfg: DictConfig, run_dir: Path) -> list[Logger]:
    """The CSV logger (``<run>/metrics.csv``) when ``logger.csv``, and W&B when ``logger.wandb.enabled``."""
    loggers: list[Logger] = []
    if cfg.logger.csv and cfg.trainer.resume:
        loggers.append(ResumedCSVLogger(str(run_dir), resume_checkpoint(run_dir).global_step))
    elif cfg.logger.csv:
        loggers.append(CSVLogger(str(run_dir), name="", version=""))
    w = cfg.logger.wandb
    if w.enabled:
        mode = wandb_mode(w.mode)
        if mode == "disabled":
            log.info("W&B is enabled in the config but its mode is 'disabled' (WANDB_MODE): no W&B logging")
            return loggers
        from lightning.pytorch.loggers import WandbLogger

        loggers.append(
            WandbLogger(
                name=run_name(cfg),
                project=w.project,
                entity=w.entity,
                save_dir=str(run_dir),
                id=_wandb_run_id(run_dir, bool(cfg.trainer.resume)),
                mode=mode,
                config=OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
                group=w.group,
                tags=[str(getattr(cfg.task, "value", cfg.task)), *w.tags],
            )
        )
    return loggers


def wandb_loggers(loggers: Sequence[Logger]) -> list[Any]:
    """The W&B loggers among ``loggers``."""
    from lightning.pytorch.loggers import WandbLogger

    return [logger for logger in loggers if isinstance(logger, WandbLogger)]


def _item_text(item: Any) -> str:
    """One selected proposal item as text: ``AD: <ad> "<subtitle>" ...`` (a meta dict), or the item itself."""
    if not isinstance(item, dict):
        return str(item)
    ad = [f"AD: {item['ad']}"] if item.get("ad") else []
    return " ".join(ad + [f'"{text}"' for text in item.get("subtitles", [])])


def log_validation_samples(loggers: Sequence[Logger], samples: Sequence[dict[str, Any]], limit: int = 32) -> None:
    """A ``wandb.Table`` ``val/samples`` of (movie, time, GT, prediction, selected context) for the first ``limit``.

    ``samples`` are the rows the captioning stage writes to ``val_samples/epoch-NNN.jsonl``.
    """
    rows = [
        [s["movie"], f"{s['start']:.1f}-{s['end']:.1f}s", s["gt"], s["pred"], " | ".join(map(_item_text, s["context"]))]
        for s in samples[:limit]
    ]
    for logger in wandb_loggers(loggers):
        logger.log_table("val/samples", columns=SAMPLE_COLUMNS, data=rows)


def log_image(loggers: Sequence[Logger], key: str, path: Path, caption: str | None = None) -> None:
    """Log the image file ``path`` to the W&B loggers under ``key``."""
    for logger in wandb_loggers(loggers):
        logger.log_image(key, [str(path)], **({"caption": [caption]} if caption else {}))


def finish_loggers(trainer: L.Trainer) -> None:
    """Close the W&B runs of ``trainer`` (flushes an offline run folder; a later run in this process starts anew)."""
    for logger in wandb_loggers(trainer.loggers):
        if trainer.is_global_zero and logger._experiment is not None:
            logger.experiment.finish()
