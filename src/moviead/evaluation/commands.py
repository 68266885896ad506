"""What ``moviead evaluate`` does, callable from Python (``cli.py`` only parses arguments).

``evaluate``: a Stage-II checkpoint (a ``.ckpt``, a run folder or its ``export/`` folder) on a data split in one or
more context modes → per mode ``<out>/<split>-<mode>/`` with ``predictions.jsonl``, ``metrics.json`` and, when
asked, one WebVTT and SRT per movie under ``subtitles/``; then one table with a column per mode.

``moviead describe`` lives in :mod:`moviead.evaluation.describe`.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

from moviead.config import ContextMode, DatasetName, split_config_args
from moviead.data.sources import SplitData, load_split
from moviead.evaluation.budget import rate_figures
from moviead.evaluation.decode import DecodeSettings, decode_split, write_metrics
from moviead.evaluation.identity import content_identity
from moviead.evaluation.locks import folder_lock
from moviead.evaluation.scoring import ScoringModels, ScoringOptions, format_table, score_predictions
from moviead.evaluation.selection import SelectionReport, describe_selection, read_selection
from moviead.export import cues_from_rows, write_movie_subtitles
from moviead.export_files import CAPTIONER_CONFIG, is_captioner_export
from moviead.recipes.checkpoint import load_captioner

log = logging.getLogger(__name__)


def resolve_checkpoint(path: str | Path) -> Path:
    """What ``--checkpoint`` names: a ``.ckpt`` file as given; a Stage-II export folder (one holding
    ``captioner_config.json``) as given; a run folder → its ``checkpoints/best.ckpt``, else ``checkpoints/last.ckpt``.

    Raises:
        FileNotFoundError: none of these (says what was looked for).
    """
    path = Path(path)
    if is_captioner_export(path):
        return path
    if path.is_dir():
        for name in ("best.ckpt", "last.ckpt"):
            if (path / "checkpoints" / name).is_file():
                return path / "checkpoints" / name
        raise FileNotFoundError(f"{path} has no checkpoints/best.ckpt or checkpoints/last.ckpt and no "
                                f"{CAPTIONER_CONFIG}: is it a run folder (or its export/ folder) of `moviead train` "
                                "with task=captioning?")
    if not path.is_file():
        raise FileNotFoundError(f"Stage-II checkpoint not found: {path}")
    return path


def _run_dir(checkpoint: Path) -> Path:
    """The run folder of a resolved checkpoint: ``<run>/export`` or ``<run>/checkpoints/<name>.ckpt`` → ``<run>``."""
    return checkpoint.parent if is_captioner_export(checkpoint) else checkpoint.parent.parent


def report_selection(checkpoint: Path, split: str, movies: Iterable[str]) -> SelectionReport:
    """Print which checkpoint is evaluated and the split it was selected on (``<run>/selection.json``); when
    ``split``'s movies overlap it, print the warning to stderr and log a short one: the scores are optimistic."""
    report = describe_selection(checkpoint, read_selection(_run_dir(checkpoint)), split, movies)
    print(report.line)
    if report.warning:
        print(report.warning, file=sys.stderr)
        log.warning("optimistic scores: %d movie(s) of the %s split are selection movies of %s", len(report.overlap),
                    split, checkpoint)
    return report


@dataclass
class EvaluateRequest:
    """The arguments of ``moviead evaluate`` (see ``moviead evaluate --help``)."""

    checkpoint: str
    data: Sequence[str] = ()  # YAML files then key=value overrides
    modes: Sequence[str] = ("recurrent",)
    split: str = "test"
    out: str | None = None
    decode: DecodeSettings = field(default_factory=DecodeSettings)
    scoring: ScoringOptions = field(default_factory=ScoringOptions)
    export: Sequence[str] = ()
    limit_movies: int | None = None
    restart: bool = False


def _limit(data: SplitData, count: int | None) -> SplitData:
    if not count:
        return data
    movies = dict(list(data.movies.items())[:count])
    items = [item for item in data.items if item.record.movie in movies]
    return replace(data, movies=movies, items=items)


def evaluate(request: EvaluateRequest) -> dict[str, dict[str, float]]:
    """Decode, score and export in each requested mode; returns mode → scores (and prints the table).

    The output folder is locked (one writer, :mod:`moviead.evaluation.locks`) and each mode's ``run.json`` records
    content hashes of the checkpoint, the split's data and the config (:func:`content_identity`): a rerun whose
    inputs changed is refused, naming what changed, unless ``restart``.
    """
    checkpoint = resolve_checkpoint(request.checkpoint)
    files, overrides = split_config_args(request.data)
    out_root = Path(request.out) if request.out else _run_dir(checkpoint) / "eval"
    with folder_lock(out_root):  # one writer per output folder; refused before the model loads
        parts, cfg = load_captioner(checkpoint, overrides, files)
        full = load_split(cfg.data, request.split)
        # hashed before --limit-movies, so that a rerun with a larger limit resumes the same predictions
        identity = content_identity(checkpoint, cfg, movies=full.movies, features=full.features.path)
        report_selection(checkpoint, request.split, full.movies)
        data = _limit(full, request.limit_movies)
        return _evaluate_modes(request, parts, cfg, data, out_root, {"checkpoint": str(checkpoint), **identity})


def _evaluate_modes(request: EvaluateRequest, parts: Any, cfg: Any, data: SplitData, out_root: Path,
                    identity: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The mode loop of :func:`evaluate` (decode, score, export, table), with ``out_root`` locked."""
    scoring = request.scoring
    if scoring.extra is None and DatasetName(cfg.data.dataset) == DatasetName.toy:
        from moviead.metrics.toy import toy_slot_accuracy

        scoring = replace(scoring, extra=toy_slot_accuracy)
    elif scoring.extra is None and DatasetName(cfg.data.dataset) == DatasetName.storyboard:
        from moviead.focused.name_accuracy import storyboard_name_scoring

        scoring = replace(scoring, extra=storyboard_name_scoring(cfg.data))  # name accuracy, seen / unseen in training
    models = ScoringModels(scoring)  # BERTScore and word vectors load once for all modes
    table: dict[str, dict[str, float]] = {}
    for mode in request.modes:
        mode = ContextMode(mode).value
        out = out_root / f"{request.split}-{mode}"
        info = {**identity, "split": request.split, "data": str(cfg.data.root)}
        settings = replace(request.decode, mode=ContextMode(mode))
        result = decode_split(parts, cfg, data, out, settings, info, restart=request.restart)
        print(f"{mode}: {len(result.rows)} predictions in {out / 'predictions.jsonl'} "
              f"({result.decoded} decoded now, {result.ads_per_second:.1f} ADs/s)")
        report = score_predictions(result.rows, scoring, models)
        pace = rate_figures(result.rows).scores()  # over_rate_share, mean_words_per_second at 2.7 words/s
        write_metrics(out / "metrics.json", {**report.scores, **pace}, report.unavailable,
                      {**info, "mode": mode, "num_ads": len(result.rows)})
        for name, why in report.unavailable.items():
            print(f"  {name}: unavailable ({why})")
        if request.export:
            written = write_movie_subtitles(cues_from_rows(result.rows), out / "subtitles", request.export)
            print(f"  wrote {sum(len(p) for p in written.values())} subtitle file(s) to {out / 'subtitles'}")
        table[mode] = report.scores
    print(format_table(table, title=f"{request.split} ({len(data.items)} ADs)"))
    return table
