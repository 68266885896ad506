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
import shutil
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
        storyboard_features: each movie's frame features for the Storyboard-v2 part, float16 (T, D): the same
            frames with the action weakened (:mod:`moviead.toy.storyboard_patches`, premise 4); None: ``features``.
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
    storyboard_features: list[np.ndarray] | None = None  # (T, D) per movie for the Storyboard-v2 part; None: features


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


FILM_SHIFT = 1.5  # norm of a character's in-film appearance shift, relative to its unit identity
FACE_NOISE = (0.3, 6.0)  # per-detection noise norm, log-uniform in this range (pose, blur, profile faces)
UNSURE = 0.15  # share of clips with one more face the detector is unsure of (confidence 0.5-0.7: skipped)
PORTRAITS = (9, 2, 1)  # per character: clean in-film crops, crops of another character (mislabelled), one blurred
ACTOR_PHOTOS = 6
TOY_TAU = 1.3  # τ of the labels written with the detections (FocusedAD's released code)
_EMBEDDING_DECIMALS = 4


def _noise(rng: np.random.Generator, norm: float | np.ndarray, n: int | None = None) -> np.ndarray:
    """Random directions (n, FACE_DIM) (or (FACE_DIM,)) scaled to ``norm``."""
    shape = (FACE_DIM,) if n is None else (n, FACE_DIM)
    return _unit(rng.standard_normal(shape)) * (np.asarray(norm)[..., None] if np.ndim(norm) else norm)


def _save_rows(folder: Path, name: str, rows: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{name}.npy", rows.astype(np.float32))


def _fresh(folder: Path) -> None:
    """``folder`` emptied of an earlier run's files (another seed may have other characters)."""
    if folder.exists():
        shutil.rmtree(folder)


def toy_face_banks(rng: np.random.Generator, names: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray],
                                                                         dict[str, np.ndarray]]:
    """One movie's face world (:func:`write_storyboard`): the characters' in-film looks (C, D), and per name its
    portrait embeddings (12, D) and its actor's photo embeddings (6, D), all unit rows."""
    identity = _unit(rng.standard_normal((len(names), FACE_DIM)))  # who the actor is, in every film
    film = _unit(identity + _noise(rng, FILM_SHIFT, len(names)))  # how the character looks in this film
    clean, wrong, blurred = PORTRAITS
    portraits, photos = {}, {}
    for c, name in enumerate(names):
        crops = [film[c] + _noise(rng, rng.uniform(0.15, 0.35, clean), clean)]
        others = [o for o in range(len(names)) if o != c]
        crops += [film[others[int(rng.integers(len(others)))]] + _noise(rng, 0.7) for _ in range(wrong)]
        crops += [film[c] + _noise(rng, 3.0) for _ in range(blurred)]
        portraits[name] = _unit(np.concatenate([np.atleast_2d(x) for x in crops]))
        photos[name] = _unit(identity[c] + _noise(rng, 0.3, ACTOR_PHOTOS))
    return film, portraits, photos


def write_storyboard(out: Path, world: ToyWorld, seed: int, fps: float) -> int:
    """Storyboard-v2 records with face embeddings, and per movie a best-query bank built from portraits.

    Premises (one movie; D = 512, every vector L2-normalised; draws from the movie's own random stream):

    - each character has an **identity** u_c (a random direction: the actor) and, in this film, a **look**
      v_c = unit(u_c + a_c) with a_c a random shift of norm 1.5 (make-up, hair, age, the film's lighting);
    - a detected face of c in a clip is unit(v_c + n), n random of norm log-uniform in [0.3, 8] (pose, blur,
      profile), detector confidence in [0.8, 1]; a face of someone else (``other``) is a random direction;
      15% of the clips have one more face the detector is unsure of (confidence in [0.5, 0.7): recognition skips
      it), of a character of the clip's type (a stranger in type 3, a main character in types 1 and 2);
    - the **portraits** of c (Storyboard20K-like crops of the film's annotated character boxes) are 9 clean crops
      unit(v_c + n), |n| in [0.15, 0.35], 2 crops of another character of the film (mislabelled boxes, |n| 0.7)
      and 1 blurred crop (|n| 3); the **best query** of c is chosen from them by eqs. 1-3
      (:func:`moviead.focused.char_bank.write_bank`, k = 3, the toy's seed);
    - the actor's **photos** are 6 faces unit(u_c + n), |n| 0.3 (no film look); the **actor query** is their
      normalised mean (k = 1), FocusedAD Table 1's B2 bank.

    Written under ``out``: ``storyboard_v2.json`` (each detection's embedding under ``face embeddings``, rounded to
    4 decimals; its label and distance as recognised from that embedding with the best-query bank at τ = 1.3, faces
    below confidence 0.7 labelled ``other``; the ground truth under ``true characters``, used only for scoring),
    ``best_query/{imdbid}/{NAME}.npy`` and ``actor_query/{imdbid}/{NAME}.npy`` (float32 (1, 512)), the embeddings
    they were built from as ``portraits/{imdbid}/{NAME}/faces.npy`` (12, 512) and
    ``actor_photos/{imdbid}/{NAME}/faces.npy`` (6, 512) (``moviead build-char-bank --embeddings portraits --k 3
    --seed SEED`` rebuilds the best-query bank from them, ``--k 1`` on the photos the actor bank), the clip
    features (``world.storyboard_features``: background-dominated), each detection's per-frame boxes under
    ``frame boxes`` and the patch features ``patch_features.h5`` (premises in :mod:`moviead.toy.storyboard_patches`).
    """
    from moviead.focused.char_bank import write_bank
    from moviead.focused.face_sets import make_face_set
    from moviead.toy import storyboard_patches as sp

    records, clips, patches = [], {}, {}
    patch_concepts = sp.patch_bank(seed)
    for movie, frames in zip(world.plans, world.storyboard_features or world.features):
        rng = _rng(seed, _STORYBOARD, movie.index)
        patch_rng = sp.clip_rng(seed, movie.index)  # its own stream: the draws above are those of a world without it
        names = movie.names()
        film, portraits, photos = toy_face_banks(rng, names)
        sets = ((portraits, "portraits", "best_query", 3), (photos, "actor_photos", "actor_query", 1))
        for faces, folder, bank, k in sets:
            _fresh(out / folder / movie.imdb_id)
            _fresh(out / bank / movie.imdb_id)
            for name in names:
                _save_rows(out / folder / movie.imdb_id / name, "faces", faces[name])
            saved = [np.load(out / folder / movie.imdb_id / name / "faces.npy") for name in names]
            labelled = make_face_set(np.concatenate(saved), [n for n, rows in zip(names, saved) for _ in rows],
                                     [movie.imdb_id] * sum(len(rows) for rows in saved))
            write_bank(labelled, out / bank, k=k, seed=seed)  # what `moviead build-char-bank --embeddings` does
        queries = np.stack([np.load(out / "best_query" / movie.imdb_id / f"{n}.npy")[0].astype(np.float64)
                            for n in names])
        height, width = RESOLUTIONS[int(rng.integers(len(RESOLUTIONS)))]

        def detection(who: int | None, unsure: bool = False) -> tuple[dict[str, list[float]], list[float], str]:
            """The ``detect characters`` entry (label recognised from the embedding: box [x1, y1, x2, y2] in pixels,
            confidence, L2 distance to the nearest best query), the face embedding and the true name."""
            if who is None:
                face = _unit(rng.standard_normal(FACE_DIM))
            else:
                sigma = float(np.exp(rng.uniform(*np.log(FACE_NOISE))))
                face = _unit(film[who] + _noise(rng, sigma))
            face = np.round(face, _EMBEDDING_DECIMALS)
            confidence = round(float(rng.uniform(0.5, 0.7) if unsure else rng.uniform(0.8, 1.0)), 3)
            confidence = min(confidence, 0.699) if unsure else confidence
            distances = np.linalg.norm(queries - face, axis=1)
            nearest = int(distances.argmin())
            recognised = names[nearest] if distances[nearest] < TOY_TAU and confidence >= 0.7 else "other"
            box_w = float(rng.uniform(0.1, 0.3)) * width
            x1, y1 = float(rng.uniform(0, width - box_w)), float(rng.uniform(0, height - 1.3 * box_w))
            box = [round(v, 1) for v in (x1, y1, x1 + box_w, y1 + 1.3 * box_w)]
            entry = {recognised: [*box, confidence, round(float(distances[nearest]), 6)]}
            return entry, [float(x) for x in face], "other" if who is None else names[who]

        for index, ad in enumerate(movie.ads):
            kind = int(rng.choice([1, 2, 3], p=[0.6, 0.25, 0.15]))
            main = names.index(ad.sentence.name)
            if kind == 3:
                who: list[int | None] = [None] * int(rng.integers(0, 2))
            else:
                who = [main]
                if rng.random() < 0.3:
                    who.append(int(rng.choice([i for i in range(len(names)) if i != main])))
                if kind == 2:
                    who += [None] * int(rng.integers(1, 3))
            detections = [detection(w) for w in who]
            acting = 0 if who else None  # the AD's character (type 3: the stranger, if one was detected)
            if rng.random() < UNSURE:  # a face the detector is unsure of: not recognised, whoever it is
                who.append(None if kind == 3 else int(rng.integers(len(names))))
                detections.append(detection(who[-1], unsure=True))
            first, stop = frame_range(ad.start_ms, ad.end_ms, fps)
            boxes = [tuple(next(iter(d[0].values()))[:4]) for d in detections]
            looks = [None if w is None else movie.characters[names[w]] for w in who]
            global_id = f"{movie.imdb_id}_{index:04d}"
            tracks, patches[global_id] = sp.clip_patches(
                patch_concepts, patch_rng, boxes, looks, acting, ad.sentence.place, ad.sentence.action,
                (height, width), stop - first)
            text = world.text(ad.sentence)
            records.append({
                "movie_id": movie.imdb_id,
                "global_id": global_id,
                "type": kind,
                "resolution": [height, width],
                "main characters": list(names),
                "#characters": len(detections),
                "synopses": g.replace_names(text, names, "someone") if kind == 3 else text,
                "movie_clips": f"clips/{movie.imdb_id}/{global_id}.mp4",
                "detect characters": [d[0] for d in detections],
                "face embeddings": [d[1] for d in detections],
                "true characters": [d[2] for d in detections],
                "frame boxes": [track.tolist() for track in tracks],
            })  # fmt: skip
            clips[global_id] = frames[first:stop]
    write_json(out / "storyboard_v2.json", records)
    _write_h5(out / "storyboard_clip_features.h5", clips)
    _write_h5(out / sp.PATCH_FILE, patches)
    return len(records)
