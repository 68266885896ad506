"""Does the toy text tower pick a clip's storyline as well on held-out movies as on the training ones?

For every AD of toy world v2's MAD part with 10 previous ADs (LoCo-MAD's proposal, L_c = 10), the 10 items' AD
texts are ranked by ``cos(tower(text), v)``, v the mean frame of the AD's clip (the CCL's zero-shot similarity), and
the share of same-storyline items among the top 2 and top 3 is averaged, on the TRAIN movies (which the tower was
fitted on) and on the VAL movies (never read by it). Two towers: the world's own (``encoders/toy-text-tower``, which
leaves the character names out) and one fitted the same way *with* the names, for comparison.

Usage (world from ``moviead make-toy-data --world v2 --movies 12 --out DIR``)::

    .venv/bin/python scripts/text_tower_probe.py DIR

Measured on 2026-12-03 on the ablations' world (12 movies, seed 0; 217 TRAIN and 59 VAL ADs), precision@2 /
precision@3:

    world tower (no names)   TRAIN 1.000 / 0.935   VAL 1.000 / 0.955
    fitted with the names    TRAIN 1.000 / 0.935   VAL 0.941 / 0.881

With the names the tower does as well on the training movies and worse on the held-out ones: each name takes on the
look of its storyline in the movie it comes from, which a pre-trained text tower (CLIP's) cannot know. This is why
the world's tower leaves them out (session 13; until then it was fitted with them).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import numpy as np

from moviead.data.bow_text_tower import BowTextTower, fit_bow_text_tower
from moviead.data.formats.mad import index_by_movie, read_ad_csv, read_split_json, read_subtitles_csv
from moviead.data.frames import interval_frames
from moviead.toy.text_tower import TEXT_TOWER, TOWER_RIDGE

PROPOSAL = 10


def load(root: Path) -> dict[str, tuple[list[str], np.ndarray, list[int]]]:
    """Per movie: its AD texts, the (n, D) mean frame of each AD's clip, and each AD's storyline."""
    manifest = json.loads((root / "toy_manifest.json").read_text(encoding="utf-8"))
    if manifest.get("world") != "v2":
        raise SystemExit(f"{root} is not a toy world v2 (its manifest has no storylines): make one with --world v2")
    mad = root / "mad"
    movies = index_by_movie(read_ad_csv(mad / "mad-v2-ad-named.csv"), read_subtitles_csv(mad / "mad-v2-subs.csv"))
    out = {}
    with h5py.File(mad / "CLIP_L14_frames_features_5fps.h5", "r") as h5:
        for movie, annotations in movies.items():
            signal = h5[movie][()].astype(np.float32)
            clips = []
            for ad in annotations.ads:
                first, last = interval_frames(ad.start, ad.end, manifest["fps"])
                clips.append(signal[first:max(last, first + 1)].mean(axis=0))
            info = manifest["movies"][movie]
            storyline = [info["scene_storyline"][scene] for scene in info["ad_scene"]]
            out[movie] = ([ad.text for ad in annotations.ads], np.stack(clips), storyline)
    return out


def precision(tower: BowTextTower, movies: list[tuple[list[str], np.ndarray, list[int]]]) -> tuple[float, float, int]:
    """Mean same-storyline share of the top 2 and top 3 items, and the number of ADs scored."""
    top2 = top3 = count = 0.0
    for texts, clips, storyline in movies:
        features = tower.encode(texts).numpy()
        for i in range(PROPOSAL, len(texts)):
            order = np.argsort(-(features[i - PROPOSAL:i] @ (clips[i] / np.linalg.norm(clips[i]))), kind="stable")
            same = [storyline[i - PROPOSAL + j] == storyline[i] for j in order]
            top2, top3, count = top2 + sum(same[:2]) / 2, top3 + sum(same[:3]) / 3, count + 1
    return top2 / max(count, 1), top3 / max(count, 1), int(count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("world", type=Path)
    args = parser.parse_args()
    data = load(args.world)
    split = read_split_json(args.world / "mad" / "mad_split.json")
    train = [data[m] for m in split["TRAIN"] if m in data]
    texts = [text for movie in train for text in movie[0]]
    towers = {"world tower (no names)": BowTextTower.load(args.world / "encoders" / TEXT_TOWER),
              "fitted with the names": fit_bow_text_tower(texts, np.concatenate([m[1] for m in train]), TOWER_RIDGE)}
    for label, tower in towers.items():
        cells = []
        for part in ("TRAIN", "VAL"):
            p2, p3, n = precision(tower, [data[m] for m in split.get(part, []) if m in data])
            cells.append(f"{part} {p2:.3f} / {p3:.3f} ({n} ADs)")
        print(f"{label:24s} " + "   ".join(cells))


if __name__ == "__main__":
    main()
