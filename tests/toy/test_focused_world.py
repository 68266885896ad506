"""FocusedAD's premises in the toy Storyboard-v2 part (:mod:`moviead.toy.storyboard_patches`, README "FocusedAD
in the toy world"), one test each, measured on what the files hold, read the way the model reads them.

The probe is a nearest-centroid classifier of the clip's action, fit on the records of the first 4 movies and scored
on the last 2 (10 actions: chance 0.1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from moviead.data.formats.storyboard import read_best_query_bank, read_storyboard_json
from moviead.data.records import StoryboardRecord
from moviead.focused.character_tokens import box_pool
from moviead.focused.recognition import movie_queries, recognise_record, recognition_accuracy
from moviead.toy.storyboard_patches import PATCH_FILE, cell_cover
from moviead.toy.world_v2 import build_world_v2
from moviead.toy.writers import frame_range, write_storyboard

MOVIES, TRAIN_MOVIES, SEED, FPS, TAU = 6, 4, 0, 5.0, 1.3


@dataclass
class FocusedWorld:
    root: Path
    records: list[StoryboardRecord]
    raw: list[dict]
    actions: dict[str, int]  # global_id -> the AD's action
    acting: dict[str, str]  # global_id -> the AD's character
    train_movies: set[str]
    full_frames: dict[str, np.ndarray]  # global_id -> the clip's MAD frames (T, D), action at full weight


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> FocusedWorld:
    """World v2's Storyboard-v2 part for 6 movies, written once (no MAD, tokenizers or decoder)."""
    built = build_world_v2(MOVIES, SEED, 768, FPS)
    root = tmp_path_factory.mktemp("focused_world") / "storyboard"
    write_storyboard(root, built, SEED, FPS)
    actions, acting, full = {}, {}, {}
    for movie, frames in zip(built.plans, built.features):
        for index, ad in enumerate(movie.ads):
            actions[f"{movie.imdb_id}_{index:04d}"] = ad.sentence.action
            acting[f"{movie.imdb_id}_{index:04d}"] = ad.sentence.name
            first, stop = frame_range(ad.start_ms, ad.end_ms, FPS)
            full[f"{movie.imdb_id}_{index:04d}"] = frames[first:stop]
    raw = json.loads((root / "storyboard_v2.json").read_text(encoding="utf-8"))
    return FocusedWorld(root, read_storyboard_json(root / "storyboard_v2.json"), raw, actions, acting,
                        {m.imdb_id for m in built.plans[:TRAIN_MOVIES]}, full)


def _pooled(patches: np.ndarray, track: np.ndarray, resolution: tuple[int, int]) -> np.ndarray:
    """The clip mean of the patches pooled in ``track`` (T, 4) pixels on each frame, with the model's pooling."""
    height, width = resolution
    boxes = torch.from_numpy(track / np.array([width, height, width, height]))[None, None].float()  # (1, 1, T, 4)
    return box_pool(torch.from_numpy(patches.astype(np.float32))[None], boxes)[0, 0].mean(0).numpy()


def _probe(train: list[tuple[np.ndarray, int]], test: list[tuple[np.ndarray, int]]) -> float:
    """Nearest-centroid accuracy of the action on ``test`` with centroids of ``train``."""
    return float(np.mean([m > 0 for m in _margins(train, test)]))


def _margins(train: list[tuple[np.ndarray, int]], test: list[tuple[np.ndarray, int]]) -> list[float]:
    """Per test clip, the distance to the nearest other action's centroid minus that to its own (> 0: right)."""
    classes = sorted({y for _, y in train})
    centroids = np.stack([np.mean([x for x, y in train if y == c], axis=0) for c in classes])
    out = []
    for x, y in test:
        distance = np.linalg.norm(centroids - x, axis=1)
        own = classes.index(y)
        out.append(float(np.delete(distance, own).min() - distance[own]))
    return out


def _acting_detection(world: FocusedWorld, record: StoryboardRecord) -> int | None:
    """The detection of the AD's character (types 1 and 2), by ground truth."""
    truths = [box.truth for box in record.detections]
    name = world.acting[record.global_id]
    return truths.index(name) if record.clip_type != 3 and name in truths else None


def _features(world: FocusedWorld, static: bool = False) -> dict[str, list]:
    """Per split, (feature, action) pairs: the acting box's pooled patches ('box'), the global frame ('frame'), the
    MAD frames of the same clip ('mad'), and the box of the other main character of two-character clips where the
    two boxes (nearly) never share a patch ('other': pooling a shared patch would mix the actor in)."""
    kinds = ("box", "frame", "mad", "other")
    out: dict[str, list] = {f"{kind}_{split}": [] for kind in kinds for split in ("train", "test")}
    with h5py.File(world.root / PATCH_FILE, "r") as patches, \
            h5py.File(world.root / "storyboard_clip_features.h5", "r") as frames:
        for record in world.records:
            actor = _acting_detection(world, record)
            if actor is None:
                continue
            split = "train" if record.movie_id in world.train_movies else "test"
            grid, action = patches[record.global_id][()], world.actions[record.global_id]

            def track(i: int, record: StoryboardRecord = record) -> np.ndarray:
                box = record.detections[i]
                tracked = np.asarray(box.frame_boxes)
                return np.repeat(np.asarray(box.box)[None], len(tracked), 0) if static else tracked

            out[f"box_{split}"].append((_pooled(grid, track(actor), record.resolution), action))
            out[f"frame_{split}"].append((frames[record.global_id][()].astype(np.float32).mean(0), action))
            out[f"mad_{split}"].append((world.full_frames[record.global_id].astype(np.float32).mean(0), action))
            scale = np.array(record.resolution[::-1] * 2, dtype=np.float64)
            actor_cells = cell_cover(track(actor) / scale)
            for i, box in enumerate(record.detections):
                if i != actor and box.truth in record.main_characters and box.confidence >= 0.7:
                    shared = (cell_cover(track(i) / scale) * actor_cells).sum((1, 2))  # (T,)
                    if shared.mean() < 0.05:  # the two boxes (nearly) never cover the same patch
                        out[f"other_{split}"].append((_pooled(grid, track(i), record.resolution), action))
    return out


def test_the_best_query_recognises_faces_better_than_the_portrait_mean_and_the_actor_bank(world):
    """Premise: the actor's photos (the actor bank, FocusedAD Table 1's B2) miss the film's look, and the portraits
    have outliers (mislabelled and blurred crops), so eqs. 1-3's best query beats the actor bank at τ = 1.3 and is
    not worse than the plain mean of the portraits (which the 9 clean crops of 12 dominate: measured, a tie)."""
    best = read_best_query_bank(world.root / "best_query")
    actor = read_best_query_bank(world.root / "actor_query")
    mean = {movie: {name: np.load(world.root / "portraits" / movie / name / "faces.npy").mean(0, keepdims=True)
                    for name in names} for movie, names in best.items()}
    mean = {m: {n: v / np.linalg.norm(v) for n, v in names.items()} for m, names in mean.items()}

    def recognition(bank: dict):
        queries = movie_queries(bank)
        recognised = [recognise_record(r, queries.get(r.movie_id), TAU) for r in world.records]
        return recognition_accuracy(recognised, {m: q.names for m, q in queries.items()})

    results = {"best": recognition(best), "mean": recognition(mean), "actor": recognition(actor)}
    scores = {bank: result.accuracy for bank, result in results.items()}
    print(scores)
    one_face = 1 / results["best"].total  # the measured tie with the mean: a face at the threshold may round either way
    assert scores["best"] >= scores["mean"] - one_face and scores["best"] > scores["actor"] + 0.05, scores


def test_faces_are_the_identity_plus_a_film_shift_plus_noise(world):
    """Premise: a character's in-film faces scatter (noise) around a film look that is shifted from the actor's
    identity (the actor's photos) but still nearer to it than to the other actors."""
    photos = read_best_query_bank(world.root / "actor_query")
    own, others, shift, spread = [], [], [], []
    for movie, names in photos.items():
        faces = {n: np.asarray([b.embedding for r in world.records if r.movie_id == movie for b in r.detections
                                if b.truth == n]) for n in names}
        looks = {n: f.mean(0) / np.linalg.norm(f.mean(0)) for n, f in faces.items() if len(f) >= 3}
        for name, look in looks.items():
            identity = names[name][0]
            own.append(float(look @ identity))
            others += [float(looks[o] @ identity) for o in looks if o != name]
            shift.append(float(np.linalg.norm(look - identity)))
            spread.append(float(np.median(np.linalg.norm(faces[name] - look, axis=1))))
    print({"own": np.mean(own), "others": np.mean(others), "shift": np.mean(shift), "spread": np.mean(spread)})
    assert min(own) > max(others)  # the identity persists under the film's look
    assert np.mean(shift) > 0.5  # ... but the look is shifted from it
    assert np.median(spread) > 0.3  # and each face is noisy around the look


def test_some_clips_show_two_characters_and_only_one_acts(world):
    """Premise: some type 1/2 clips show a second main character; the action is in the AD's character's box only
    (a probe fit on acting boxes reads it there, not in the other character's box)."""
    named = [r for r in world.records if r.clip_type != 3]
    two = [r for r in named if len({b.truth for b in r.detections if b.truth in r.main_characters}) >= 2]
    share = len(two) / len(named)
    features = _features(world)
    acting = _probe(features["box_train"], features["box_test"])
    others = features["other_train"] + features["other_test"]  # the probe never saw a non-acting box
    other = _probe(features["box_train"], others)
    print({"two_character_share": share, "acting": acting, "other": other, "others": len(others)})
    assert 0.1 <= share <= 0.6 and len(others) >= 10
    assert acting >= 0.8 and other <= 0.3


def test_the_action_is_read_from_the_acting_box_far_better_than_from_the_global_frame(world):
    """Premise: the global frame is dominated by the background; the action lies in the acting character's box."""
    features = _features(world)
    box = _probe(features["box_train"], features["box_test"])
    frame = _probe(features["frame_train"], features["frame_test"])
    mad = _probe(features["mad_train"], features["mad_test"])
    print({"box": box, "frame": frame, "mad_frames": mad, "test_clips": len(features["box_test"])})
    assert box >= 0.8 and frame <= box - 0.3
    assert mad >= frame + 0.3  # the same probe reads it from the MAD frames, where the action is not weakened


def test_per_frame_boxes_move_and_pooling_them_keeps_the_action(world):
    """Premise: boxes move within a clip (the record tracks them per frame, inside the frame, the detection's box on
    the middle frame); pooling the per-frame boxes keeps more of the action than the middle frame's box used
    throughout (a larger mean probe margin)."""
    moved, total = 0, 0
    for raw in world.raw:
        height, width = raw["resolution"]
        for detection, track in zip(raw["detect characters"], raw["frame boxes"]):
            track = np.asarray(track)
            assert track[:, [0, 1]].min() >= 0 and track[:, 2].max() <= width and track[:, 3].max() <= height
            assert track[len(track) // 2] == pytest.approx(next(iter(detection.values()))[:4])
            step = np.abs(track[-1] - track[0])[:2] / (width, height)
            moved += bool(step.max() >= 0.05)
            total += 1
    tracked = _features(world)
    static = _features(world, static=True)
    per_frame = float(np.mean(_margins(tracked["box_train"], tracked["box_test"])))
    one_box = float(np.mean(_margins(static["box_train"], static["box_test"])))
    print({"moved": moved / total, "per_frame_margin": per_frame, "static_margin": one_box})
    assert moved / total >= 0.5
    assert per_frame > one_box
