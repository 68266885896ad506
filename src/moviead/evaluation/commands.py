"""What ``moviead evaluate`` and ``moviead describe`` do, callable from Python (``cli.py`` only parses arguments).

``evaluate``: a Stage-II checkpoint (a ``.ckpt``, a run folder or its ``export/`` folder) on a data split in one or
more context modes → per mode ``<out>/<split>-<mode>/`` with ``predictions.jsonl``, ``metrics.json`` and, when
asked, one WebVTT and SRT per movie under ``subtitles/``; then one table with a column per mode.

``describe``: a film's frame features (+ its subtitles) → AD slots in the dialogue-free gaps → recurrent decoding →
``<movie>.vtt``, ``<movie>.srt`` and ``<movie>.ad.jsonl`` in the output folder.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from moviead.config import ContextMode, DatasetName
from moviead.data.datasets import ClipItem
from moviead.data.features import open_feature_store
from moviead.data.formats.srt import fit_subtitles_to_film, read_subtitle_file
from moviead.data.frames import interval_frames
from moviead.data.records import ADRecord, MovieAnnotations
from moviead.data.sources import SplitData, load_split
from moviead.evaluation.decode import DecodeSettings, decode_split, write_metrics
from moviead.evaluation.gaps import dialogue_gaps, fixed_windows
from moviead.evaluation.scoring import ScoringModels, ScoringOptions, format_table, score_predictions
from moviead.export import cues_from_rows, write_jsonl, write_movie_subtitles
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
    """Decode, score and export in each requested mode; returns mode → scores (and prints the table)."""
    checkpoint = resolve_checkpoint(request.checkpoint)
    files = [item for item in request.data if "=" not in item]
    overrides = [item for item in request.data if "=" in item]
    parts, cfg = load_captioner(checkpoint, overrides, files)
    data = _limit(load_split(cfg.data, request.split), request.limit_movies)
    out_root = Path(request.out) if request.out else _run_dir(checkpoint) / "eval"
    scoring = request.scoring
    if scoring.extra is None and DatasetName(cfg.data.dataset) == DatasetName.toy:
        from moviead.metrics.toy import toy_slot_accuracy

        scoring = replace(scoring, extra=toy_slot_accuracy)
    models = ScoringModels(scoring)  # BERTScore and word vectors load once for all modes
    table: dict[str, dict[str, float]] = {}
    for mode in request.modes:
        mode = ContextMode(mode).value
        out = out_root / f"{request.split}-{mode}"
        info = {"checkpoint": str(checkpoint), "split": request.split, "data": str(cfg.data.root)}
        settings = replace(request.decode, mode=ContextMode(mode))
        result = decode_split(parts, cfg, data, out, settings, info, restart=request.restart)
        print(f"{mode}: {len(result.rows)} predictions in {out / 'predictions.jsonl'} "
              f"({result.decoded} decoded now, {result.ads_per_second:.1f} ADs/s)")
        report = score_predictions(result.rows, scoring, models)
        write_metrics(out / "metrics.json", report.scores, report.unavailable,
                      {**info, "mode": mode, "num_ads": len(result.rows)})
        for name, why in report.unavailable.items():
            print(f"  {name}: unavailable ({why})")
        if request.export:
            written = write_movie_subtitles(cues_from_rows(result.rows), out / "subtitles", request.export)
            print(f"  wrote {sum(len(p) for p in written.values())} subtitle file(s) to {out / 'subtitles'}")
        table[mode] = report.scores
    print(format_table(table, title=f"{request.split} ({len(data.items)} ADs)"))
    return table


@dataclass
class DescribeRequest:
    """The arguments of ``moviead describe``."""

    features: str
    movie: str
    checkpoint: str
    out: str
    subtitles: str | None = None
    min_gap: float = 2.0
    max_cue: float = 8.0
    window: float = 8.0
    decode: DecodeSettings = field(default_factory=DecodeSettings)
    config: Sequence[str] = ()  # key=value overrides of the checkpoint's config (e.g. data.fps=5)
    restart: bool = False


def film_slots(request: DescribeRequest, fps: float, feature_dim: int) -> SplitData:
    """The AD slots of one film as a split: dialogue-free gaps (or fixed windows), its subtitles, its features."""
    store = open_feature_store(request.features, feature_dim)
    if request.movie not in store.movies():
        known = store.movies()
        raise KeyError(f"{request.features} has no features for {request.movie!r} (it has {known[:10]}"
                       f"{' ...' if len(known) > 10 else ''}); pass --movie with one of them")
    length = store.num_frames(request.movie)
    duration = length / fps
    subtitles = read_subtitle_file(request.subtitles, request.movie) if request.subtitles else []
    subtitles = fit_subtitles_to_film(subtitles, duration, request.subtitles) if request.subtitles else []
    if request.subtitles:
        slots = dialogue_gaps([(s.start, s.end) for s in subtitles], duration, request.min_gap, request.max_cue)
    else:
        slots = fixed_windows(duration, request.window)
    slots = [(s, e) for s, e in slots if interval_frames(s, e, fps)[1] < length]
    ads = [ADRecord(request.movie, i, start, end, "") for i, (start, end) in enumerate(slots)]
    movies = {request.movie: MovieAnnotations(request.movie, ads, subtitles)}
    items = [ClipItem(ad, request.movie, 0.0, length) for ad in ads]
    return SplitData(movies=movies, items=items, features=store)


def describe(request: DescribeRequest) -> dict[str, Any]:
    """Write an AD track for one film; returns the paths written and the number of cues."""
    checkpoint = resolve_checkpoint(request.checkpoint)
    parts, cfg = load_captioner(checkpoint, list(request.config))
    data = film_slots(request, float(cfg.data.fps), int(cfg.data.feature_dim))
    if not data.items:
        raise ValueError(f"no dialogue-free gap of at least {request.min_gap} s in {request.movie}: lower --min-gap")
    out = Path(request.out)
    settings = replace(request.decode, mode=ContextMode.recurrent, batch_movies=1)
    info = {"checkpoint": str(checkpoint), "features": str(request.features), "movie": request.movie,
            "subtitles": request.subtitles, "min_gap": request.min_gap, "max_cue": request.max_cue}
    result = decode_split(parts, cfg, data, out, settings, info, restart=request.restart)
    rows = sorted(result.rows, key=lambda r: r["index"])
    paths = write_movie_subtitles(cues_from_rows(rows), out, ("vtt", "srt"))[request.movie]
    track = out / f"{paths[0].stem}.ad.jsonl"
    write_jsonl(({"start": r["start"], "end": r["end"], "text": r["pred"]} for r in rows), track)
    return {"cues": len(rows), "files": [*paths, track]}
