"""The toy data's DSM sentence encoder: a bag-of-words text tower fitted into the toy frames' feature space.

The toy frames stand in for CLIP ViT-L/14 image features; LoCo-MAD's DSM reads its proposal's sentences with
CLIP's text tower, whose space CLIP's pre-training aligned with those frames (premise of the DSM's contextual
contrastive loss: ``cos(T_i, v)`` means something before the DSM is trained). A text model unrelated to the
frames (MiniLM) breaks that premise. So the toy data ships its own aligned tower, fitted on the **training** movies
only (no validation or test AD is read): each AD's words against the mean of its clip's frames, as written to the
h5 file (:mod:`moviead.data.bow_text_tower`). ``captioning.dsm.sentence_encoder=bow:<root>/encoders/toy-text-tower``.

The world's character names are left out of the tower (they encode to nothing). CLIP's text tower was not trained
on the movies at hand, so a character's name tells it nothing about that movie's frames; a tower fitted on the
training movies with the names would give each name the look of its storyline there (a training movie's lead is
in one setting), which holds for the training movies only: on the ablations' world (v2, 12 movies, seed 0),
ranking the 10 previous ADs by cos(tower(AD), clip mean frame), the same-storyline share of the top 2 was 1.000 on
the training movies and 0.941 on the validation movies with the names, 1.000 and 1.000 without
(``scripts/text_tower_probe.py``; ``tests/toy/test_world_v2.py`` checks it on its own world).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from moviead.data.bow_text_tower import BowTextTower, fit_bow_text_tower
from moviead.toy.writers import ToyWorld, frame_range

TEXT_TOWER = "toy-text-tower"
TOWER_RIDGE = 1.0


def write_toy_text_tower(folder: Path, world: ToyWorld, fps: float) -> BowTextTower:
    """Fit the tower on ``world``'s training movies (``split["TRAIN"]``), without the character names of its
    vocabulary, and save it into ``folder``."""
    train = set(world.split["TRAIN"])
    texts, targets = [], []
    for movie, frames in zip(world.plans, world.features):
        if movie.movie_id not in train:
            continue
        for ad in movie.ads:
            first, stop = frame_range(ad.start_ms, ad.end_ms, fps)
            clip = frames[first:max(stop, first + 1)].astype(np.float32)  # (t, D) as the h5 file holds them
            texts.append(world.text(ad.sentence))
            targets.append(clip.mean(axis=0))
    tower = fit_bow_text_tower(texts, np.stack(targets), ridge=TOWER_RIDGE, exclude=world.vocabulary["names"])
    tower.save(folder)
    return tower
