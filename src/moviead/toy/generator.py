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
    mad/mad_split.json                     {"EVAL": [...], "TRAIN": [...]} (about 80/20 by movie; EVAL is the
                                           test set, validation is carved from TRAIN: data.val_movies)
    lsmdc/LSMDC16_annos_{training,val,test}.csv (+ *_someone.csv)   TSV, no header, 6 columns
    lsmdc/lsmdc_clip_features.h5           float16 (T_clip, D) per clip id
    storyboard/storyboard_v2.json          list of Storyboard-v2 records, with each detection's face embedding
                                           and its true name (scoring only; premises in writers.write_storyboard)
    storyboard/storyboard_clip_features.h5 float16 (T_clip, D) per global_id: the same frames with the action
                                           weakened (background-dominated, :mod:`moviead.toy.storyboard_patches`)
    storyboard/patch_features.h5           float16 (T_clip, 4, 4, 64) patch features per global_id (FocusedAD boxes;
                                           each detection's per-frame boxes are the record's ``frame boxes``)
    storyboard/best_query/{imdbid}/{NAME}.npy   float32 (1, 512), L2-normalised, chosen from the portraits (eqs. 1-3)
    storyboard/actor_query/{imdbid}/{NAME}.npy  the same from the actor's photos (their mean: Table 1's B2 bank)
    storyboard/portraits/{imdbid}/{NAME}/faces.npy, actor_photos/...   the embeddings the two banks come from
    tokenizers/bert-wordpiece/             BERT WordPiece tokenizer of the toy words (Stage-I text encoders)
    tokenizers/byte-bpe/                   byte-level BPE tokenizer of the toy texts (OPT-like, Stage-II decoders)
    decoders/tiny-opt/                     random-init tiny OPT (H 128, 2 layers) with that BPE tokenizer
    toy_manifest.json                      seed, fps, dim, vocabulary, each movie's characters and ids, decoders

LSMDC splits: test = the MAD EVAL movies, val = the last ~10% of the TRAIN movies, training = the rest. One
clip per movie is listed twice with two sentences (real LSMDC does this). Storyboard ``type``: 1 only main
characters detected, 2 main and other characters, 3 no main character (its synopsis is the unnamed AD).

This is toy world **v1**, the default. ``write_toy_dataset(..., world="v2")`` writes toy world v2 in the same layout
(:mod:`moviead.toy.world_v2`: intercut storylines, shared scenes, a VAL split); the writers both use are in
:mod:`moviead.toy.writers`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from moviead.toy import grammar as g
from moviead.toy.decoders import write_tiny_causal_lm
from moviead.toy.storyboard_patches import world_frames
from moviead.toy.text_tower import TEXT_TOWER, write_toy_text_tower
from moviead.toy.tokenizers import write_bert_wordpiece, write_toy_bpe_tokenizer
from moviead.toy.writers import (
    FACE_DIM,
    RESOLUTIONS,
    ToyWorld,
    frame_range,
    lsmdc_split_v1,
    write_json,
    write_lsmdc,
    write_mad,
    write_storyboard,
)

__all__ = ["DECODER", "FACE_DIM", "RESOLUTIONS", "WEIGHTS", "WORLDS", "ToyDatasetInfo", "ToyWorld", "concept_bank",
           "frame_range", "render_signal", "write_toy_dataset"]  # fmt: skip

_CONCEPTS, _FEATURES = 0, 2  # independent random streams (1: toy_grammar; 3, 4: LSMDC, Storyboard in writers)
WEIGHTS = {"slot": 1.0, "action": 1.0, "object": 1.0, "place": 0.8, "dialogue": 1.5, "clip_mean": 1.5,
           "style": 0.5, "jitter": 0.4, "noise": 1.5}  # fmt: skip
"""Norms of the feature components (each concept vector has norm about 1)."""
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
    val_movies: tuple[str, ...] = ()  # v2 only: the "VAL" key of the split JSON, disjoint from train and eval
    world: str = "v1"


def concept_bank(seed: int, dim: int) -> dict[str, np.ndarray]:
    """Fixed random concepts, each N(0, I/dim): slot (4, D), action (10, D), object (10, D), place (6, D),
    dialogue (D,), clip_mean (D,)."""
    sizes = {"slot": g.NUM_SLOTS, "action": len(g.ACTIONS), "object": len(g.OBJECTS), "place": len(g.PLACES)}
    return g.draw_concepts(_rng(seed, _CONCEPTS), dim, sizes)



def render_signal(movie: g.ToyMovie, bank: dict[str, np.ndarray], seed: int, fps: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The frame signal of ``movie`` before normalisation, float32 (T, D), and its action component (T, D)."""
    rng = _rng(seed, _FEATURES, movie.index)
    dim = bank["dialogue"].shape[0]
    w = WEIGHTS
    num_frames = math.ceil(movie.duration_ms * fps / 1000)
    signal = np.empty((num_frames, dim), dtype=np.float32)  # (T, D)
    action = np.zeros((num_frames, dim), dtype=np.float32)  # (T, D): the action's part of the signal

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
        action[first:stop] = w["action"] * bank["action"][s.action]
        done = stop
    signal[done:] = dialogue(movie.ads[-1].sentence.place)
    style = w["style"] * rng.standard_normal(dim, dtype=np.float32) / np.sqrt(dim)
    signal += w["clip_mean"] * bank["clip_mean"] + style
    white = rng.standard_normal((num_frames + 2, dim), dtype=np.float32)
    signal += (w["noise"] / np.sqrt(3 * dim)) * (white[:-2] + white[1:-1] + white[2:])  # smoothed over 3 frames
    return signal, action


def _split(movies: list[g.ToyMovie]) -> tuple[list[str], list[str]]:
    n_eval = max(1, round(0.2 * len(movies))) if len(movies) >= 2 else 0
    ids = [m.movie_id for m in movies]
    return ids[: len(ids) - n_eval], ids[len(ids) - n_eval :]


def _world_v1(movies: int, seed: int, feature_dim: int, fps: float) -> ToyWorld:
    """The v1 world of this module's docstring."""
    bank = concept_bank(seed, feature_dim)
    plans = [g.plan_movie(seed, i) for i in range(movies)]
    train, evaluation = _split(plans)
    frames, storyboard = world_frames([render_signal(m, bank, seed, fps) for m in plans])
    return ToyWorld(
        plans=plans,
        features=frames,
        text=g.ad_sentence,
        variant=lambda s: replace(s, template=1 - s.template),
        split={"TRAIN": train, "EVAL": evaluation},
        lsmdc_split=lsmdc_split_v1(train, evaluation),
        vocabulary={"names": list(g.NAMES), "actions": list(g.ACTIONS), "objects": list(g.OBJECTS),
                    "places": list(g.PLACES), "num_slots": g.NUM_SLOTS},  # fmt: skip
        storyboard_features=storyboard,
    )


WORLDS = ("v1", "v2")


def write_toy_dataset(
    out: str | Path, movies: int = 12, seed: int = 0, feature_dim: int = 768, fps: float = 5.0, world: str = "v1"
) -> ToyDatasetInfo:
    """Write the toy MAD-v2, LSMDC and Storyboard-v2 data sets under ``out`` (layout in the module docstring).

    Args:
        out: output folder, created if missing; existing files of the same names are overwritten.
        movies: number of movies (movie k is the same for any ``movies`` > k).
        seed: non-negative seed; the same seed gives the same files.
        feature_dim: D of the frame features (768 like CLIP ViT-L/14, 512 like B/32).
        fps: frame rate of the features.
        world: ``"v1"`` (this module) or ``"v2"`` (:mod:`moviead.toy.world_v2`: intercut storylines, shared
            scenes, a VAL split); both write the same layout.
    """
    if movies < 1 or seed < 0 or feature_dim < 1 or fps <= 0:
        raise ValueError(f"need movies >= 1, seed >= 0, feature_dim >= 1, fps > 0; got {movies}, {seed}, "
                         f"{feature_dim}, {fps}")  # fmt: skip
    if world not in WORLDS:
        raise ValueError(f"unknown toy world {world!r}; choose one of {', '.join(WORLDS)}")
    if world == "v2":
        from moviead.toy.world_v2 import build_world_v2

        built = build_world_v2(movies, seed, feature_dim, fps)
    else:
        built = _world_v1(movies, seed, feature_dim, fps)
    root = Path(out)
    plans, features = built.plans, built.features
    write_mad(root / "mad", built)
    lsmdc_rows = write_lsmdc(root / "lsmdc", built, seed, fps)
    storyboard_records = write_storyboard(root / "storyboard", built, seed, fps)
    manifest = {
        **built.manifest_extra,
        "seed": seed,
        "fps": fps,
        "feature_dim": feature_dim,
        "vocabulary": built.vocabulary,
        "movies": {m.movie_id: {"imdb_id": m.imdb_id, "lsmdc_name": m.lsmdc_name, "characters": m.characters,
                                "num_frames": int(f.shape[0]), **built.movie_extra.get(m.movie_id, {})}
                   for m, f in zip(plans, features)},  # fmt: skip
        "tokenizers": {"bert-wordpiece": "tokenizers/bert-wordpiece", "byte-bpe": "tokenizers/byte-bpe"},
        "decoders": {DECODER: f"decoders/{DECODER}"},  # folders relative to the data set's root
        "encoders": {TEXT_TOWER: f"encoders/{TEXT_TOWER}"},
    }
    write_json(root / "toy_manifest.json", manifest)
    ads = [built.text(ad.sentence) for m in plans for ad in m.ads]
    subtitles = [sub.text for m in plans for sub in m.subtitles]
    write_bert_wordpiece(ads + subtitles + ["someone", "SOMEONE"], root / "tokenizers" / "bert-wordpiece")
    unnamed = [g.replace_names(built.text(ad.sentence), m.names(), word) for word in ("someone", "SOMEONE")
               for m in plans for ad in m.ads]  # fmt: skip
    bpe = write_toy_bpe_tokenizer(ads + unnamed + subtitles, root / "tokenizers" / "byte-bpe")
    decoder = write_tiny_causal_lm(root / "decoders" / DECODER, bpe, family="opt", seed=seed)
    write_toy_text_tower(root / "encoders" / TEXT_TOWER, built, fps)
    return ToyDatasetInfo(
        root=root,
        mad=root / "mad",
        lsmdc=root / "lsmdc",
        storyboard=root / "storyboard",
        manifest=root / "toy_manifest.json",
        movies=tuple(m.movie_id for m in plans),
        train_movies=tuple(built.split["TRAIN"]),
        eval_movies=tuple(built.split["EVAL"]),
        num_ads=sum(len(m.ads) for m in plans),
        num_subtitles=sum(len(m.subtitles) for m in plans),
        num_frames=sum(int(f.shape[0]) for f in features),
        num_lsmdc_rows=lsmdc_rows,
        num_storyboard_records=storyboard_records,
        decoder=decoder,
        val_movies=tuple(built.split.get("VAL", ())),
        world=world,
    )
