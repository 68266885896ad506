"""The writers shared by the toy worlds: MAD-v2 CSVs, split JSON and h5, LSMDC TSVs and clip features,
Storyboard-v2 JSON, clip features and face queries (layouts in :mod:`moviead.toy.generator`).

A world (:class:`ToyWorld`) supplies the movies, their frame features, how a sentence reads and the splits; these
functions write them the same way for every world, with reproducible bytes (h5 without time stamps, JSON with
sorted keys, ``\n`` line ends).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moviead.toy import grammar as g

_LSMDC, _STORYBOARD = 3, 4  # random streams (v1 and v2 alike; the worlds' other streams differ)
FACE_DIM = 512
RESOLUTIONS = ((720, 1280), (536, 1280), (800, 1920), (1080, 1920))

_rng = g.seeded_rng


@dataclass
class ToyWorld:
    """What a toy world contributes to :func:`write_toy_dataset`; the writers are shared by the worlds.

    Attributes:
        plans: the movies (v2's are :class:`~moviead.toy.grammar_v2.StoryMovie`).
        features: each movie's frame features, float16 (T, D).
        text: a sentence's AD text.
        variant: the second sentence of the LSMDC clip listed twice.
        split: the MAD split JSON, e.g. ``{"TRAIN": [...], "EVAL": [...]}``.
        lsmdc_split: LSMDC file ("training", "val", "test") of each movie id.
        vocabulary: the manifest's ``vocabulary``.
        movie_extra: per movie id, keys added to the manifest's entry of that movie.
        manifest_extra: keys added to the top level of the manifest.
    """

    plans: list[g.ToyMovie]
    features: list[np.ndarray]
    text: Callable[[g.ToySentence], str]
    variant: Callable[[g.ToySentence], g.ToySentence]
    split: dict[str, list[str]]
    lsmdc_split: dict[str, str]
    vocabulary: dict[str, Any]
    movie_extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    manifest_extra: dict[str, Any] = field(default_factory=dict)


def frame_range(start_ms: int, end_ms: int, fps: float) -> tuple[int, int]:
    """Frames ``[first, stop)`` of an interval: ``floor(start * fps)`` .. ``ceil(end * fps) - 1`` (SPEC §3.2)."""
    return math.floor(start_ms * fps / 1000), math.ceil(end_ms * fps / 1000)


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.3f}"


def _hms(ms: int) -> str:
    """LSMDC time stamp ``HH.MM.SS.mmm``."""
    return f"{ms // 3_600_000:02d}.{ms // 60_000 % 60:02d}.{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def write_json(path: Path, obj: object) -> None:
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


def write_mad(out: Path, world: ToyWorld) -> None:
    movies, features = world.plans, world.features
    named, unnamed, subs = [], [], []
    for movie in movies:
        for ad in movie.ads:
            text = world.text(ad.sentence)
            times = [movie.movie_id, _seconds(ad.start_ms), _seconds(ad.end_ms)]
            named.append([*times, text])
            unnamed.append([*times, g.replace_names(text, movie.names(), "someone")])
        subs += [[movie.movie_id, _seconds(s.start_ms), _seconds(s.end_ms), s.text] for s in movie.subtitles]
    header = ["movie", "start", "end", "text"]
    _write_csv(out / "mad-v2-ad-named.csv", header, named)
    _write_csv(out / "mad-v2-ad-unnamed.csv", header, unnamed)
    _write_csv(out / "mad-v2-subs.csv", header, subs)
    write_json(out / "mad_split.json", world.split)
    _write_h5(out / "CLIP_L14_frames_features_5fps.h5", {m.movie_id: f for m, f in zip(movies, features)})


def lsmdc_split_v1(train: list[str], evaluation: list[str]) -> dict[str, str]:
    """v1's LSMDC files: test = the MAD EVAL movies, val = the last ~10% of TRAIN, training = the rest."""
    n_val = max(1, round(0.1 * len(train))) if len(train) >= 3 else 0
    split_of = {m: ("val" if i >= len(train) - n_val else "training") for i, m in enumerate(train)}
    return {**split_of, **{m: "test" for m in evaluation}}


def write_lsmdc(out: Path, world: ToyWorld, seed: int, fps: float) -> int:
    files: dict[str, list[tuple[list[str], str]]] = {"training": [], "val": [], "test": []}
    clips: dict[str, np.ndarray] = {}
    for movie, frames in zip(world.plans, world.features):
        rng = _rng(seed, _LSMDC, movie.index)
        twice = int(rng.integers(len(movie.ads)))
        rows = files[world.lsmdc_split[movie.movie_id]]
        for i, ad in enumerate(movie.ads):
            pad = rng.integers(0, 500, size=2) if rng.random() < 0.5 else (0, 0)
            ext_start, ext_end = max(0, ad.start_ms - int(pad[0])), min(movie.duration_ms, ad.end_ms + int(pad[1]))
            clip_id = f"{movie.lsmdc_name}_{_hms(ext_start)}-{_hms(ext_end)}"
            cols = [clip_id, _hms(ad.start_ms), _hms(ad.end_ms), _hms(ext_start), _hms(ext_end)]
            sentences = [ad.sentence]
            if i == twice:  # the same clip with a second sentence, as real LSMDC has
                sentences.append(world.variant(ad.sentence))
            rows += [(cols, world.text(s)) for s in sentences]
            first, stop = frame_range(ext_start, ext_end, fps)
            clips[clip_id] = frames[first:stop]
    names = sorted({n for m in world.plans for n in m.names()})
    for split, rows in files.items():
        _write_text(out / f"LSMDC16_annos_{split}.csv", "".join("\t".join([*c, t]) + "\n" for c, t in rows))
        someone = "".join("\t".join([*c, g.replace_names(t, names, "SOMEONE")]) + "\n" for c, t in rows)
        _write_text(out / f"LSMDC16_annos_{split}_someone.csv", someone)
    _write_h5(out / "lsmdc_clip_features.h5", clips)
    return sum(len(rows) for rows in files.values())


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def write_storyboard(out: Path, world: ToyWorld, seed: int, fps: float) -> int:
    records, clips = [], {}
    for movie, frames in zip(world.plans, world.features):
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
            text = world.text(ad.sentence)
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
    write_json(out / "storyboard_v2.json", records)
    _write_h5(out / "storyboard_clip_features.h5", clips)
    return len(records)
