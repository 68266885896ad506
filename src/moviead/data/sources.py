"""From a data config to the clips of one split: read annotations, check them against the features.

This is where every dataset's on-disk layout meets the common pieces (:class:`ClipItem`, context,
features). DataModules and ``moviead data-summary`` both start here, so they can never disagree.
Intervals that lie past the end of their features (MAD-v2: about 20 of 650 movies disagree on duration) or
before their start are dropped and counted by reason; a split left with no clip at all is an error that gives
those counts.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

from omegaconf import DictConfig

from moviead.data.context import ContextBuilder, ContextProvider
from moviead.data.datasets import ADClipDataset, ClipItem
from moviead.data.errors import DataFormatError
from moviead.data.features import FeatureStore, open_feature_store
from moviead.data.formats.lsmdc import MULTI_SENTENCE_SET_SIZE, group_multi_sentence, read_lsmdc_tsv
from moviead.data.formats.mad import (
    check_split,
    index_by_movie,
    merge_named_unnamed,
    read_ad_annotations,
    read_split_json,
    read_subtitles_csv,
)
from moviead.data.formats.storyboard import read_storyboard_json
from moviead.data.frames import FrameSampler, interval_frames
from moviead.data.name_swap import NameSwap, read_name_pool
from moviead.data.records import ADRecord, DatasetName, FrameMode, LSMDCRecord, MovieAnnotations, TextVariant
from moviead.data.requirements import DataRequirements
from moviead.data.val_split import resolve_mad_splits, storyboard_splits

log = logging.getLogger(__name__)

STAGES = ("train", "val", "test")
PAST_FEATURES = "past the end of the features"
BEFORE_FEATURES = "before the start of the features"


@dataclass
class SplitData:
    """The clips of one split and everything needed to read them.

    Attributes:
        movies: ADs (indexed in time order) and subtitles of the split's movies; context comes from here.
        items: the clips kept, in movie then time order.
        features: the feature store the items index.
        dropped: clips dropped because their interval lies outside their features (past the end, or before the start).
    """

    movies: dict[str, MovieAnnotations]
    items: list[ClipItem]
    features: FeatureStore
    dropped: int = 0


def _stage(stage: str) -> str:
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    return stage


def _keep_in_range(items: list[ClipItem], fps: float, features_path: Path) -> tuple[list[ClipItem], Counter[str]]:
    """The items whose frames all lie inside their features, and the number dropped for each reason (logged)."""
    kept = []
    reasons: Counter[str] = Counter()
    for item in items:
        first, last = interval_frames(item.record.start - item.offset, item.record.end - item.offset, fps)
        if first < 0:
            reasons[BEFORE_FEATURES] += 1
        elif last >= item.num_frames:
            reasons[PAST_FEATURES] += 1
        else:
            kept.append(item)
    dropped = len(items) - len(kept)
    if dropped:
        log.warning("%s: dropped %d clip(s): %s", features_path, dropped,
                    ", ".join(f"{count} whose interval lies {reason}" for reason, count in reasons.items()))
    return kept, reasons


def _require_clips(
    kept: list[ClipItem], items: list[ClipItem], reasons: Counter[str], fps: float, stage: str, path: Path,
    movies: int,
) -> None:
    """Raise when a split ends up without a clip, saying why each AD was dropped.

    Raises:
        DataFormatError: naming the annotation file and the split, with the reason counts and the likely fix.
    """
    if kept:
        return
    if not items:
        raise DataFormatError(
            path, f"the split is empty: its {movies} movie(s) have no AD",
            "check that the split names movies that have ADs in this file", record=f"split {stage!r}",
        )
    counts = "; ".join(f"{count} of {len(items)} ADs {reason}" for reason, count in reasons.items())
    longest = max(item.num_frames for item in items) / fps
    latest = max(item.record.end - item.offset for item in items)
    raise DataFormatError(
        path,
        f"the split is empty: {counts} (the longest features last {longest:.1f} s at {fps:g} fps; the ADs end "
        f"as late as {latest:.1f} s)",
        "are the times in seconds? Write AD times in seconds (not milliseconds or frames) and set data.fps to the "
        "frame rate the features were extracted at",
        record=f"split {stage!r}",
    )


def _select_text(ads: list[ADRecord], variant: TextVariant, path: Path) -> list[ADRecord]:
    if variant == TextVariant.named:
        return ads
    missing = [ad for ad in ads if ad.text_unnamed is None]
    if missing:
        ad = missing[0]
        raise DataFormatError(
            path,
            f"{len(missing)} AD(s) have no unnamed text (text_variant=unnamed)",
            "set data.mad.annotations_unnamed to the unnamed CSV, or use data.text_variant=named",
            record=f"movie {ad.movie}, {ad.start:.3f}-{ad.end:.3f}s",
        )
    return [replace(ad, text=ad.text_unnamed) for ad in ads]


def load_mad_split(cfg: DictConfig, stage: str) -> SplitData:
    """MAD-v2 layout (also the toy data): feature h5/npy folder, AD CSV(s), subtitles CSV, split JSON.

    Validation never shares a movie with test (:func:`moviead.data.val_split.resolve_mad_splits`): with
    ``data.mad.val_split`` set (e.g. ``VAL`` of toy world v2), val is that key and train the train key minus it;
    unset, val is ``data.val_movies`` movies carved deterministically from the train key, and train the rest.
    Without a split file (``data.mad.split=null``) only ``test`` can be read (every movie).
    """
    files, root = cfg.mad, Path(cfg.root)
    split_name = {"train": files.train_split, "val": files.val_split or f"{files.train_split} (carved)",
                  "test": files.test_split}[_stage(stage)]
    ads = read_ad_annotations(root / files.annotations)
    if files.annotations_unnamed:
        unnamed_path = root / files.annotations_unnamed
        ads = merge_named_unnamed(ads, read_ad_annotations(unnamed_path), root / files.annotations, unnamed_path)
    ads = _select_text(ads, TextVariant(cfg.text_variant), root / files.annotations)
    subtitles = read_subtitles_csv(root / files.subtitles) if files.subtitles else []
    movies = index_by_movie(ads, subtitles)
    if files.split:
        split_path = root / files.split
        split = read_split_json(split_path)
        check_split(split, set(movies), split_path)
        chosen = resolve_mad_splits(split, files.train_split, files.val_split, files.test_split,
                                    int(cfg.val_movies), split_path, test_only=stage == "test")[stage]
        movies = {movie: movies[movie] for movie in chosen}
    elif stage != "test":
        raise DataFormatError(
            root / files.annotations, f"no split file (data.mad.split is null): the {stage} split needs one",
            "set data.mad.split to a split JSON with train and test keys, so that validation can be kept apart "
            "from test",
        )
    features = open_feature_store(root / files.features, cfg.feature_dim)
    items = []
    for movie, movie_annotations in movies.items():
        length = features.num_frames(movie)
        items.extend(ClipItem(ad, movie, 0.0, length) for ad in movie_annotations.ads)
    kept, reasons = _keep_in_range(items, cfg.fps, features.path)
    _require_clips(kept, items, reasons, cfg.fps, split_name, root / files.annotations, len(movies))
    return SplitData(movies=movies, items=kept, features=features, dropped=len(items) - len(kept))


def load_lsmdc_split(cfg: DictConfig, stage: str) -> SplitData:
    """LSMDC: a 6-column TSV per split and per-clip features keyed by clip id.

    Each sentence becomes an AD of its movie (times: the aligned interval); its frames are read from its
    clip's features, which start at the clip's extracted start time. LSMDC has no subtitles.

    Context follows LSMDC's multi-sentence task (and LoCo-MAD §4, L_c = 5 on LSMDC): each movie's sentences, in
    time order (that of the files, whose clip ids sort by time; ties by line), form consecutive sets of
    :data:`~moviead.data.formats.lsmdc.MULTI_SENTENCE_SET_SIZE` (:func:`group_multi_sentence`; a movie's last set
    may be shorter), numbered from 0 across the split into ``ADRecord.context_group``. An AD's context is the
    previous clips of its own set only; the first clip of a set has none. A duplicated clip (two sentences for
    one interval) counts as two clips of its set, and neither sentence is ever the other's context.
    """
    files, root = cfg.lsmdc, Path(cfg.root)
    name = {"train": files.train, "val": files.val, "test": files.test}[_stage(stage)]
    if files.use_someone:
        name = name.replace(".csv", "_someone.csv")
    rows = read_lsmdc_tsv(root / name)
    by_movie: dict[str, list[LSMDCRecord]] = defaultdict(list)
    for row in rows:
        by_movie[row.movie].append(row)
    features = open_feature_store(root / files.features, cfg.feature_dim)
    movies: dict[str, MovieAnnotations] = {}
    items = []
    sets = 0
    for movie, movie_rows in by_movie.items():
        ordered = sorted(movie_rows, key=lambda r: (r.start_aligned, r.end_aligned, r.row))
        groups = group_multi_sentence(ordered, MULTI_SENTENCE_SET_SIZE)
        set_ids = [sets + g for g, group in enumerate(groups) for _ in group]
        sets += len(groups)
        ads = [
            ADRecord(movie, i, r.start_aligned, r.end_aligned, r.text, context_group=set_id)
            for i, (r, set_id) in enumerate(zip(ordered, set_ids))
        ]
        movies[movie] = MovieAnnotations(movie, ads)
        items.extend(
            ClipItem(ad, r.clip_id, r.start_extracted, features.num_frames(r.clip_id)) for ad, r in zip(ads, ordered)
        )
    kept, reasons = _keep_in_range(items, files.clip_fps, features.path)
    _require_clips(kept, items, reasons, files.clip_fps, stage, root / name, len(movies))
    return SplitData(movies=movies, items=kept, features=features, dropped=len(items) - len(kept))


def load_storyboard_split(cfg: DictConfig, stage: str) -> SplitData:
    """Storyboard-v2: JSON records, per-record features keyed by global id; split by movie.

    The JSON has no split field: movies are sorted, the last ``val_fraction`` of them (at least one) are test, as
    many just before them validation, the rest train (three disjoint sets: at least 3 movies;
    :func:`moviead.data.val_split.storyboard_splits`). Each record is one clip whose AD spans the whole clip. The
    clips of a movie are laid end to end, in file order, on a virtual timeline, so that context (the
    previous clips' synopses) and time order work as for MAD; ``offset`` maps a clip back to its features.
    """
    files, root = cfg.storyboard, Path(cfg.root)
    records = read_storyboard_json(root / files.annotations)
    try:
        chosen = set(storyboard_splits((r.movie_id for r in records), files.val_fraction)[_stage(stage)])
    except ValueError as err:
        raise DataFormatError(root / files.annotations, str(err), "add movies, or use another data set") from None
    features = open_feature_store(root / files.features, cfg.feature_dim)
    movies: dict[str, MovieAnnotations] = {}
    items = []
    clock: dict[str, float] = defaultdict(float)
    for r in records:
        if r.movie_id not in chosen:
            continue
        length = features.num_frames(r.global_id)
        annotations = movies.setdefault(r.movie_id, MovieAnnotations(r.movie_id))
        start = clock[r.movie_id]
        clock[r.movie_id] = start + length / cfg.fps
        ad = ADRecord(r.movie_id, len(annotations.ads), start, clock[r.movie_id], r.synopsis,
                      characters=r.main_characters)
        annotations.ads.append(ad)
        items.append(ClipItem(ad, r.global_id, start, length))
    kept, reasons = _keep_in_range(items, cfg.fps, features.path)
    _require_clips(kept, items, reasons, cfg.fps, stage, root / files.annotations, len(chosen))
    return SplitData(movies=movies, items=kept, features=features, dropped=len(items) - len(kept))


def load_split(cfg: DictConfig, stage: str) -> SplitData:
    """Dispatch on ``cfg.dataset`` (the ``data`` section of the config)."""
    dataset = DatasetName(cfg.dataset)
    if dataset in (DatasetName.mad, DatasetName.toy):
        return load_mad_split(cfg, stage)
    if dataset == DatasetName.lsmdc:
        return load_lsmdc_split(cfg, stage)
    if dataset == DatasetName.storyboard:
        return load_storyboard_split(cfg, stage)
    raise ValueError(f"dataset {dataset.value!r} has text annotations only (no features): use its reader directly")


def make_dataset(
    data: SplitData, data_cfg: DictConfig, frames: DictConfig, needs: DataRequirements, training: bool,
    provider: ContextProvider | None = None,
) -> ADClipDataset:
    """The torch dataset of a loaded split.

    Args:
        data_cfg: the ``data`` section (frame rate); frames: ``loader.frames`` (how frames are sampled per clip).
        needs: the context and extra inputs the recipe needs (:class:`DataRequirements`).
        provider: source of previous ADs for recurrent context (the evaluator's PredictionContext).
    """
    dataset = DatasetName(data_cfg.dataset)
    sampler = FrameSampler(
        fps=data_cfg.fps if dataset != DatasetName.lsmdc else data_cfg.lsmdc.clip_fps,
        mode=FrameMode(frames.mode),
        num_frames=frames.num_frames,
        max_frames=frames.max_frames,
        train_shift=frames.train_shift,
    )
    context = ContextBuilder(
        data.movies,
        mode=needs.context_mode,
        context_size=needs.context_size,
        use_subtitles=needs.use_subtitles,
        max_subtitles=needs.max_subtitles,
        provider=provider,
    )
    swap = NameSwap(read_name_pool(needs.name_swap)) if training and needs.name_swap is not None else None
    return ADClipDataset(data.items, data.features, sampler, context, training=training, with_proposal=needs.proposal,
                         neighbour_clips=needs.neighbour_clips, name_swap=swap)
