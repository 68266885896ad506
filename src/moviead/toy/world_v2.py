"""Toy world v2 (``write_toy_dataset(..., world="v2")``): intercut storylines and shared scenes.

v1 (:mod:`moviead.toy.generator`) makes context matter for names, but its relevant context is always the most
recent, and its neighbouring clips share little; so neither LoCo-MAD's Dynamic Selection Module nor DistinctAD's
EM attention and distinctive-word loss has anything to do there. v2 is built from the two papers' premises, fixed
before any model is trained on it:

1. **Intercut storylines** (LoCo-MAD: relevant context is not simply the most recent). A movie interleaves 2-3
   storylines, each with its own setting and a lead (plus, half the time, a partner who is only spoken to); a
   scene is a consecutive run of ADs of one storyline, and the movie cuts between storylines in rotation
   (:mod:`moviead.toy.grammar_v2`). A clip's frames show its setting, action and object and the lead's look (a
   slot shared across movies), never the name; the name is in the earlier ADs (and some subtitles) of the same
   storyline. When a storyline returns, its previous AD is 4-7 items back in the L_c = 10 item DSM proposal,
   behind 3-6 ADs of other storylines that name other characters.
2. **Relevance inferable from the clip and the items' text.** Every AD names the setting or one of the objects
   that only that setting has, so an item's AD text tells its setting, and the clip's frames show the setting:
   a DSM that matches the two can pick the same-storyline items, where a recency window of 3 cannot.
3. **Shared scenes** (DistinctAD: neighbouring clips are highly similar). Within a scene the frames share a strong
   common component (the setting, a random per-scene vector and the lead's look, 1.2 / 1.2 / 0.6); what tells a
   clip apart is a weaker residual (its action and object, 0.8 each), and consecutive ADs of a scene differ in
   both. Like real AD, the ground truth names the setting only at a scene change ("In the kitchen, Arlo opens the
   kettle." then "Arlo picks up the ladle.").
4. **v1's guarantees kept**: determinism per seed (byte-identical files), names absent from the frames, action,
   object and setting learnable by a linear probe on the frames; same on-disk layout.

Frame features (T, D), before L2 normalisation per frame:

- inside an AD of scene s: 1.2 place + 1.2 scene_s + 0.6 slot (lead's look) + 0.8 action + 0.8 object + jitter;
- between ADs (dialogue, belonging to the scene of the AD before it; before the first AD, to that AD's scene):
  1.5 dialogue + 1.2 place + 1.2 scene_s + jitter;
- everywhere: 1.5 "CLIP mean" direction, a per-movie 0.5 style offset and temporally smoothed noise (1.5), as v1.

Expected split of an AD clip's mean feature (centred on the data set's mean) into the scene mean and the
deviation from it: the common part has energy about 1.2² + 1.2² + 0.6² + 0.5² ≈ 3.5, the per-clip part about
0.8² + 0.8² ≈ 1.3 of which a scene of n clips keeps (1 - 1/n) in the deviation, so the scene mean carries about
three quarters of the energy of the clips of a scene.

Splits: the MAD split JSON keeps AutoAD's keys TRAIN and EVAL and adds **VAL**, movies disjoint from both (for model
selection, so EVAL stays a test set): of n movies, EVAL the last max(1, round(n/5)), VAL the max(1, round(n/6))
before them (n >= 3; 2 of 12), TRAIN the rest. LSMDC files follow it: training = TRAIN, val = VAL, test = EVAL.
The manifest adds ``"world": "v2"`` and, per movie, its storylines, the scene of each AD and the storyline of
each scene.
"""

from __future__ import annotations

import math

import numpy as np

from moviead.toy import grammar as g
from moviead.toy import grammar_v2 as g2
from moviead.toy.storyboard_patches import world_frames
from moviead.toy.writers import ToyWorld, frame_range

_CONCEPTS_V2, _FEATURES_V2 = 10, 12  # random streams of their own (v1: 0-4, the v2 plan: 11)
WEIGHTS_V2 = {"place": 1.2, "scene": 1.2, "slot": 0.6, "action": 0.8, "object": 0.8, "dialogue": 1.5,
              "clip_mean": 1.5, "style": 0.5, "jitter": 0.3, "noise": 1.5}  # fmt: skip
"""Norms of the v2 feature components (each concept vector has norm about 1)."""


def concept_bank_v2(seed: int, dim: int) -> dict[str, np.ndarray]:
    """Fixed random concepts, each N(0, I/dim): slot (4, D), action (10, D), object (32, D), place (8, D),
    dialogue (D,), clip_mean (D,)."""
    sizes = {"slot": g.NUM_SLOTS, "action": len(g.ACTIONS), "object": len(g2.OBJECTS_V2), "place": len(g2.PLACES_V2)}
    return g.draw_concepts(g.seeded_rng(seed, _CONCEPTS_V2), dim, sizes)


def render_signal_v2(movie: g2.StoryMovie, bank: dict[str, np.ndarray], seed: int, fps: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The frame signal of ``movie`` before normalisation, float32 (T, D), and its action component (T, D)."""
    rng = g.seeded_rng(seed, _FEATURES_V2, movie.index)
    dim = bank["dialogue"].shape[0]
    w = WEIGHTS_V2
    num_frames = math.ceil(movie.duration_ms * fps / 1000)
    scenes = rng.standard_normal((len(movie.scene_storyline), dim), dtype=np.float32) / np.sqrt(dim)
    signal = np.empty((num_frames, dim), dtype=np.float32)  # (T, D)
    action = np.zeros((num_frames, dim), dtype=np.float32)  # (T, D): the action's part of the signal

    def unit_noise() -> np.ndarray:
        return rng.standard_normal(dim, dtype=np.float32) / np.sqrt(dim)

    def scene_part(ad: int) -> np.ndarray:
        """The component every frame of AD ``ad``'s scene shares: setting and per-scene vector."""
        place = movie.storylines[movie.scene_storyline[movie.ad_scene[ad]]].place
        return w["place"] * bank["place"][place] + w["scene"] * scenes[movie.ad_scene[ad]]

    done = 0
    for i, ad in enumerate(movie.ads):
        s = ad.sentence
        first, stop = frame_range(ad.start_ms, ad.end_ms, fps)
        gap_owner = max(i - 1, 0)  # dialogue belongs to the scene of the AD before it
        signal[done:first] = w["dialogue"] * bank["dialogue"] + scene_part(gap_owner) + w["jitter"] * unit_noise()
        signal[first:stop] = (
            scene_part(i)
            + w["slot"] * bank["slot"][ad.slot]
            + w["action"] * bank["action"][s.action]
            + w["object"] * bank["object"][s.obj]
            + w["jitter"] * unit_noise()
        )
        action[first:stop] = w["action"] * bank["action"][s.action]
        done = stop
    last = len(movie.ads) - 1
    signal[done:] = w["dialogue"] * bank["dialogue"] + scene_part(last) + w["jitter"] * unit_noise()
    signal += w["clip_mean"] * bank["clip_mean"] + w["style"] * unit_noise()
    white = rng.standard_normal((num_frames + 2, dim), dtype=np.float32)
    signal += (w["noise"] / np.sqrt(3 * dim)) * (white[:-2] + white[1:-1] + white[2:])  # smoothed over 3 frames
    return signal, action


def split_v2(ids: list[str]) -> dict[str, list[str]]:
    """TRAIN / VAL / EVAL by movie, in that order of ids (sizes in the module docstring)."""
    n = len(ids)
    n_eval = max(1, round(n / 5)) if n >= 2 else 0
    n_val = max(1, round(n / 6)) if n >= 3 else 0
    n_train = n - n_val - n_eval
    return {"TRAIN": ids[:n_train], "VAL": ids[n_train : n_train + n_val], "EVAL": ids[n_train + n_val :]}


def build_world_v2(movies: int, seed: int, feature_dim: int, fps: float) -> ToyWorld:
    """Plan and render ``movies`` v2 movies; :func:`moviead.toy.generator.write_toy_dataset` writes them."""
    bank = concept_bank_v2(seed, feature_dim)
    plans = [g2.plan_movie_v2(seed, i) for i in range(movies)]
    frames, storyboard = world_frames([render_signal_v2(m, bank, seed, fps) for m in plans])
    split = split_v2([m.movie_id for m in plans])
    lsmdc = {"TRAIN": "training", "VAL": "val", "EVAL": "test"}
    extra = {
        m.movie_id: {
            "storylines": [{"place": g2.PLACES_V2[s.place], "lead": s.lead, "partner": s.partner}
                           for s in m.storylines],  # fmt: skip
            "ad_scene": list(m.ad_scene),
            "scene_storyline": list(m.scene_storyline),
        }
        for m in plans
    }
    return ToyWorld(
        plans=list(plans),
        features=frames,
        text=g2.ad_sentence_v2,
        variant=g2.second_sentence_v2,
        split=split,
        lsmdc_split={movie: lsmdc[key] for key, ids in split.items() for movie in ids},
        vocabulary={"names": list(g.NAMES), "actions": list(g.ACTIONS), "objects": list(g2.OBJECTS_V2),
                    "places": list(g2.PLACES_V2), "place_objects": {k: list(v) for k, v in g2.PLACE_OBJECTS.items()},
                    "num_slots": g.NUM_SLOTS},  # fmt: skip
        movie_extra=extra,
        manifest_extra={"world": "v2"},
        storyboard_features=storyboard,
    )
