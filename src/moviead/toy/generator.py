"""Deterministic toy data in the real on-disk formats (SPEC §3.3): MAD-v2, LSMDC and Storyboard-v2.

All three data sets are views of the same synthetic movies. A movie has 3-4 characters; each has a
movie-specific **name** (from :data:`~moviead.toy.grammar.NAMES`) and an **appearance slot** (0-3) whose
visual concept is shared across movies, so the name cannot be read from the frames of a clip: only the
subtitles ("Tamsin, over here!") and earlier ADs reveal which name goes with which look. The timeline is::

    [1-3 subtitles] AD0 [1-3 subtitles] AD1 ... AD{n-1} [1-2 subtitles] end

with 30-50 ADs of 2-6 s per movie, grouped into scenes of 3-6 consecutive ADs that share a place. One line of
the subtitles before an AD names that AD's character with probability 0.9; the others name another
character (p 0.3) or no one (:func:`~moviead.toy.grammar.plan_movie`).

Frame features (T, D) at ``fps``, T = ceil(duration * fps), are, before L2 normalisation per frame:

- inside an AD: slot + action + object + 0.8 place concept + per-AD jitter;
- elsewhere (dialogue): 1.5 dialogue concept + 0.8 place concept of the next AD + per-gap jitter;
- everywhere: a shared "CLIP mean" direction, a per-movie style offset and temporally smoothed noise.

Concept vectors are N(0, I/D) (about unit norm), drawn from the seed. Every random draw comes from a
``numpy.random.Generator(PCG64(SeedSequence([seed, stream, movie])))``, so movie k is the same whatever the
number of movies, the same seed gives byte-identical files (h5 included: ``track_times=False``) and no global
RNG state is touched. Layout written under ``out``::

    mad/CLIP_L14_frames_features_5fps.h5   one float16 (T, D) dataset per movie id ("toy0001", ...)
    mad/mad-v2-ad-named.csv                movie,start,end,text
    mad/mad-v2-ad-unnamed.csv              same rows, names replaced by "someone"/"Someone"
    mad/mad-v2-subs.csv                    movie,start,end,text
    mad/mad_split.json                     {"EVAL": [...], "TRAIN": [...]} (about 80/20 by movie)
    lsmdc/LSMDC16_annos_{training,val,test}.csv (+ *_someone.csv)   TSV, no header, 6 columns
    lsmdc/lsmdc_clip_features.h5           float16 (T_clip, D) per clip id
    storyboard/storyboard_v2.json          list of Storyboard-v2 records
    storyboard/storyboard_clip_features.h5 float16 (T_clip, D) per global_id
    storyboard/best_query/{imdbid}/{NAME}.npy   float32 (1, 512), L2-normalised
    tokenizers/bert-wordpiece/             BERT WordPiece tokenizer of the toy words (Stage-I text encoders)
    tokenizers/byte-bpe/                   byte-level BPE tokenizer of the toy texts (OPT-like, Stage-II decoders)
    decoders/tiny-opt/                     random-init tiny OPT (H 128, 2 layers) with that BPE tokenizer
    toy_manifest.json                      seed, fps, dim, vocabulary, each movie's characters and ids, decoders

LSMDC splits: test = the MAD EVAL movies, val = the last ~10% of the TRAIN movies, training = the rest. One
clip per movie is listed twice with two sentences (real LSMDC does this). Storyboard ``type``: 1 only main
characters detected, 2 main and other characters, 3 no main character (its synopsis is the unnamed AD).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from moviead.toy import grammar as g
from moviead.toy.decoders import write_tiny_causal_lm
from moviead.toy.tokenizers import write_bert_wordpiece, write_toy_bpe_tokenizer

_CONCEPTS, _FEATURES, _LSMDC, _STORYBOARD = 0, 2, 3, 4  # independent random streams (1: toy_grammar)
WEIGHTS = {"slot": 1.0, "action": 1.0, "object": 1.0, "place": 0.8, "dialogue": 1.5, "clip_mean": 1.5,
           "style": 0.5, "jitter": 0.4, "noise": 1.5}  # fmt: skip
"""Norms of the feature components (each concept vector has norm about 1)."""
FACE_DIM = 512
RESOLUTIONS = ((720, 1280), (536, 1280), (800, 1920), (1080, 1920))
DECODER = "tiny-opt"  # the toy decoder: write_tiny_causal_lm(family="opt") defaults, with the toy BPE tokenizer


_rng = g.seeded_rng


@dataclass(frozen=True)
class ToyDatasetInfo:
    """What :func:`write_toy_dataset` wrote."""

    root: Path
    mad: Path
    lsmdc: Path
    storyboard: Path
    manifest: Path
    movies: tuple[str, ...]
    train_movies: tuple[str, ...]
    eval_movies: tuple[str, ...]
    num_ads: int
    num_subtitles: int
    num_frames: int
    num_lsmdc_rows: int
    num_storyboard_records: int
    decoder: Path  # the tiny OPT decoder folder (model + tokenizer)


def frame_range(start_ms: int, end_ms: int, fps: float) -> tuple[int, int]:
    """Frames ``[first, stop)`` of an interval: ``floor(start * fps)`` .. ``ceil(end * fps) - 1`` (SPEC §3.2)."""
    return math.floor(start_ms * fps / 1000), math.ceil(end_ms * fps / 1000)


def concept_bank(seed: int, dim: int) -> dict[str, np.ndarray]:
    """Fixed random concepts, each N(0, I/dim): slot (4, D), action (10, D), object (10, D), place (6, D),
    dialogue (D,), clip_mean (D,)."""
    rng = _rng(seed, _CONCEPTS)
    sizes = {"slot": g.NUM_SLOTS, "action": len(g.ACTIONS), "object": len(g.OBJECTS), "place": len(g.PLACES)}
    bank = {k: rng.standard_normal((n, dim), dtype=np.float32) / np.sqrt(dim) for k, n in sizes.items()}
    bank["dialogue"] = rng.standard_normal(dim, dtype=np.float32) / np.sqrt(dim)
    bank["clip_mean"] = rng.standard_normal(dim, dtype=np.float32) / np.sqrt(dim)
    return bank


def render_features(movie: g.ToyMovie, bank: dict[str, np.ndarray], seed: int, fps: float) -> np.ndarray:
    """Frame features of ``movie``, float16 (T, D) with T = ceil(duration * fps), unit L2 norm per frame."""
    rng = _rng(seed, _FEATURES, movie.index)
    dim = bank["dialogue"].shape[0]
    w = WEIGHTS
    num_frames = math.ceil(movie.duration_ms * fps / 1000)
    signal = np.empty((num_frames, dim), dtype=np.float32)  # (T, D)

    def jitter() -> np.ndarray:
        return w["jitter"] * rng.standard_normal(dim, dtype=np.float32) / np.sqrt(dim)

    def dialogue(place: int) -> np.ndarray:
        return w["dialogue"] * bank["dialogue"] + w["place"] * bank["place"][place] + jitter()

    done = 0
    for ad in movie.ads:
        s = ad.sentence
        first, stop = frame_range(ad.start_ms, ad.end_ms, fps)
        signal[done:first] = dialogue(s.place)
        signal[first:stop] = (
            w["slot"] * bank["slot"][ad.slot]
            + w["action"] * bank["action"][s.action]
            + w["object"] * bank["object"][s.obj]
            + w["place"] * bank["place"][s.place]
            + jitter()
        )
        done = stop
    signal[done:] = dialogue(movie.ads[-1].sentence.place)
    style = w["style"] * rng.standard_normal(dim, dtype=np.float32) / np.sqrt(dim)
    signal += w["clip_mean"] * bank["clip_mean"] + style
    white = rng.standard_normal((num_frames + 2, dim), dtype=np.float32)
    signal += (w["noise"] / np.sqrt(3 * dim)) * (white[:-2] + white[1:-1] + white[2:])  # smoothed over 3 frames
    signal /= np.linalg.norm(signal, axis=1, keepdims=True)
    return signal.astype(np.float16)


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.3f}"


def _hms(ms: int) -> str:
    """LSMDC time stamp ``HH.MM.SS.mmm``."""
    return f"{ms // 3_600_000:02d}.{ms // 60_000 % 60:02d}.{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def _write_json(path: Path, obj: object) -> None:
    _write_text(path, json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False) + "\n")


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    _write_text(path, buffer.getvalue())


def _write_h5(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """One contiguous, uncompressed dataset per key, without time stamps (so the bytes are reproducible)."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for key, array in arrays.items():
            f.create_dataset(key, data=array, track_times=False)


def _split(movies: list[g.ToyMovie]) -> tuple[list[str], list[str]]:
    n_eval = max(1, round(0.2 * len(movies))) if len(movies) >= 2 else 0
    ids = [m.movie_id for m in movies]
    return ids[: len(ids) - n_eval], ids[len(ids) - n_eval :]


def _write_mad(out: Path, movies: list[g.ToyMovie], features: list[np.ndarray]) -> tuple[list[str], list[str]]:
    named, unnamed, subs = [], [], []
    for movie in movies:
        for ad in movie.ads:
            text = g.ad_sentence(ad.sentence)
            times = [movie.movie_id, _seconds(ad.start_ms), _seconds(ad.end_ms)]
            named.append([*times, text])
            unnamed.append([*times, g.replace_names(text, movie.names(), "someone")])
        subs += [[movie.movie_id, _seconds(s.start_ms), _seconds(s.end_ms), s.text] for s in movie.subtitles]
    header = ["movie", "start", "end", "text"]
    _write_csv(out / "mad-v2-ad-named.csv", header, named)
    _write_csv(out / "mad-v2-ad-unnamed.csv", header, unnamed)
    _write_csv(out / "mad-v2-subs.csv", header, subs)
    train, evaluation = _split(movies)
    _write_json(out / "mad_split.json", {"TRAIN": train, "EVAL": evaluation})
    _write_h5(out / "CLIP_L14_frames_features_5fps.h5", {m.movie_id: f for m, f in zip(movies, features)})
    return train, evaluation


def _write_lsmdc(
    out: Path, movies: list[g.ToyMovie], features: list[np.ndarray], seed: int, fps: float, train: list[str]
) -> int:
    n_val = max(1, round(0.1 * len(train))) if len(train) >= 3 else 0
    split_of = {m: ("val" if i >= len(train) - n_val else "training") for i, m in enumerate(train)}
    files: dict[str, list[tuple[list[str], str]]] = {"training": [], "val": [], "test": []}
    clips: dict[str, np.ndarray] = {}
    for movie, frames in zip(movies, features):
        rng = _rng(seed, _LSMDC, movie.index)
        twice = int(rng.integers(len(movie.ads)))
        rows = files[split_of.get(movie.movie_id, "test")]
        for i, ad in enumerate(movie.ads):
            pad = rng.integers(0, 500, size=2) if rng.random() < 0.5 else (0, 0)
            ext_start, ext_end = max(0, ad.start_ms - int(pad[0])), min(movie.duration_ms, ad.end_ms + int(pad[1]))
            clip_id = f"{movie.lsmdc_name}_{_hms(ext_start)}-{_hms(ext_end)}"
            cols = [clip_id, _hms(ad.start_ms), _hms(ad.end_ms), _hms(ext_start), _hms(ext_end)]
            sentences = [ad.sentence]
            if i == twice:  # the same clip with a second sentence, as real LSMDC has
                sentences.append(replace(ad.sentence, template=1 - ad.sentence.template))
            rows += [(cols, g.ad_sentence(s)) for s in sentences]
            first, stop = frame_range(ext_start, ext_end, fps)
            clips[clip_id] = frames[first:stop]
    names = sorted({n for m in movies for n in m.names()})
    for split, rows in files.items():
        _write_text(out / f"LSMDC16_annos_{split}.csv", "".join("\t".join([*c, t]) + "\n" for c, t in rows))
        someone = "".join("\t".join([*c, g.replace_names(t, names, "SOMEONE")]) + "\n" for c, t in rows)
        _write_text(out / f"LSMDC16_annos_{split}_someone.csv", someone)
    _write_h5(out / "lsmdc_clip_features.h5", clips)
    return sum(len(rows) for rows in files.values())


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _write_storyboard(out: Path, movies: list[g.ToyMovie], features: list[np.ndarray], seed: int, fps: float) -> int:
    records, clips = [], {}
    for movie, frames in zip(movies, features):
        rng = _rng(seed, _STORYBOARD, movie.index)
        names = movie.names()
        identity = _unit(rng.standard_normal((len(names), FACE_DIM)))  # per-character face identity
        queries = _unit(identity + 0.1 * rng.standard_normal(identity.shape) / np.sqrt(FACE_DIM))
        bank = out / "best_query" / movie.imdb_id
        bank.mkdir(parents=True, exist_ok=True)
        for stale in bank.glob("*.npy"):  # characters of an earlier run with another seed
            stale.unlink()
        for name, query in zip(names, queries):
            np.save(bank / f"{name}.npy", query[None].astype(np.float32))
        height, width = RESOLUTIONS[int(rng.integers(len(RESOLUTIONS)))]

        def detection(who: int | None) -> dict[str, list[float]]:
            """Box [x1, y1, x2, y2] in pixels, confidence, L2 distance of the face to its best query."""
            face = _unit(rng.standard_normal(FACE_DIM))
            if who is None:  # someone else, not recognised: nearest best query at L2 distance >= 1.3
                dist = 0.0
                while dist < 1.3:
                    face = _unit(rng.standard_normal(FACE_DIM))
                    dist = float(np.min(np.linalg.norm(queries - face, axis=1)))
            else:
                face = _unit(identity[who] + 0.6 * face)
                dist = float(np.linalg.norm(face - queries[who]))
            box_w = float(rng.uniform(0.1, 0.3)) * width
            x1, y1 = float(rng.uniform(0, width - box_w)), float(rng.uniform(0, height - 1.3 * box_w))
            box = [round(v, 1) for v in (x1, y1, x1 + box_w, y1 + 1.3 * box_w)]
            label = "other" if who is None else names[who]
            return {label: [*box, round(float(rng.uniform(0.8, 1.0)), 3), round(dist, 3)]}

        for index, ad in enumerate(movie.ads):
            kind = int(rng.choice([1, 2, 3], p=[0.6, 0.25, 0.15]))
            main = names.index(ad.sentence.name)
            if kind == 3:
                detections = [detection(None) for _ in range(int(rng.integers(0, 2)))]
            else:
                detections = [detection(main)]
                if rng.random() < 0.3:
                    detections.append(detection(int(rng.choice([i for i in range(len(names)) if i != main]))))
                if kind == 2:
                    detections += [detection(None) for _ in range(int(rng.integers(1, 3)))]
            text = g.ad_sentence(ad.sentence)
            global_id = f"{movie.imdb_id}_{index:04d}"
            records.append({
                "movie_id": movie.imdb_id,
                "global_id": global_id,
                "type": kind,
                "resolution": [height, width],
                "main characters": list(names),
                "#characters": len(detections),
                "synopses": g.replace_names(text, names, "someone") if kind == 3 else text,
                "movie_clips": f"clips/{movie.imdb_id}/{global_id}.mp4",
                "detect characters": detections,
            })  # fmt: skip
            first, stop = frame_range(ad.start_ms, ad.end_ms, fps)
            clips[global_id] = frames[first:stop]
    _write_json(out / "storyboard_v2.json", records)
    _write_h5(out / "storyboard_clip_features.h5", clips)
    return len(records)


def write_toy_dataset(
    out: str | Path, movies: int = 12, seed: int = 0, feature_dim: int = 768, fps: float = 5.0
) -> ToyDatasetInfo:
    """Write the toy MAD-v2, LSMDC and Storyboard-v2 data sets under ``out`` (layout in the module docstring).

    Args:
        out: output folder, created if missing; existing files of the same names are overwritten.
        movies: number of movies (movie k is the same for any ``movies`` > k).
        seed: non-negative seed; the same seed gives the same files.
        feature_dim: D of the frame features (768 like CLIP ViT-L/14, 512 like B/32).
        fps: frame rate of the features.
    """
    if movies < 1 or seed < 0 or feature_dim < 1 or fps <= 0:
        raise ValueError(f"need movies >= 1, seed >= 0, feature_dim >= 1, fps > 0; got {movies}, {seed}, "
                         f"{feature_dim}, {fps}")  # fmt: skip
    root = Path(out)
    bank = concept_bank(seed, feature_dim)
    plans = [g.plan_movie(seed, i) for i in range(movies)]
    features = [render_features(m, bank, seed, fps) for m in plans]
    train, evaluation = _write_mad(root / "mad", plans, features)
    lsmdc_rows = _write_lsmdc(root / "lsmdc", plans, features, seed, fps, train)
    storyboard_records = _write_storyboard(root / "storyboard", plans, features, seed, fps)
    manifest = {
        "seed": seed,
        "fps": fps,
        "feature_dim": feature_dim,
        "vocabulary": {"names": list(g.NAMES), "actions": list(g.ACTIONS), "objects": list(g.OBJECTS),
                       "places": list(g.PLACES), "num_slots": g.NUM_SLOTS},  # fmt: skip
        "movies": {m.movie_id: {"imdb_id": m.imdb_id, "lsmdc_name": m.lsmdc_name, "characters": m.characters,
                                "num_frames": int(f.shape[0])} for m, f in zip(plans, features)},  # fmt: skip
        "tokenizers": {"bert-wordpiece": "tokenizers/bert-wordpiece", "byte-bpe": "tokenizers/byte-bpe"},
        "decoders": {DECODER: f"decoders/{DECODER}"},  # folders relative to the data set's root
    }
    _write_json(root / "toy_manifest.json", manifest)
    ads = [g.ad_sentence(ad.sentence) for m in plans for ad in m.ads]
    subtitles = [sub.text for m in plans for sub in m.subtitles]
    write_bert_wordpiece(ads + subtitles + ["someone", "SOMEONE"], root / "tokenizers" / "bert-wordpiece")
    unnamed = [g.replace_names(g.ad_sentence(ad.sentence), m.names(), word) for word in ("someone", "SOMEONE")
               for m in plans for ad in m.ads]  # fmt: skip
    bpe = write_toy_bpe_tokenizer(ads + unnamed + subtitles, root / "tokenizers" / "byte-bpe")
    decoder = write_tiny_causal_lm(root / "decoders" / DECODER, bpe, family="opt", seed=seed)
    return ToyDatasetInfo(
        root=root,
        mad=root / "mad",
        lsmdc=root / "lsmdc",
        storyboard=root / "storyboard",
        manifest=root / "toy_manifest.json",
        movies=tuple(m.movie_id for m in plans),
        train_movies=tuple(train),
        eval_movies=tuple(evaluation),
        num_ads=sum(len(m.ads) for m in plans),
        num_subtitles=sum(len(m.subtitles) for m in plans),
        num_frames=sum(int(f.shape[0]) for f in features),
        num_lsmdc_rows=lsmdc_rows,
        num_storyboard_records=storyboard_records,
        decoder=decoder,
    )
