"""The FocusedAD part of the toy worlds: patch features, moving per-frame boxes and a background-dominated frame.

FocusedAD (§3.3) adds character tokens pooled inside each named character's region because the global frame
feature is dominated by the background: what the character does is a small part of the frame. The toy
Storyboard-v2 part (:func:`moviead.toy.writers.write_storyboard`) is built from that premise, fixed before any
model was trained on it (numbers below are the defaults of this module):

1. **Patch features** ``storyboard/patch_features.h5``: one float16 dataset (T, H', W', Dp) = (T, 4, 4, 64) per
   ``global_id``, at the same frames (same T, same fps) as ``storyboard_clip_features.h5``. Cell (i, j) covers
   [j/W', (j+1)/W'] x [i/H', (i+1)/H'] of the frame (the layout :func:`moviead.focused.character_tokens.box_pool`
   reads). Each cell is the area average of what it shows: the **background** (1.0 setting + 1.0 per-clip layout +
   0.5 cell position) where no character is, and a character's **content** on the fraction of the cell its box
   covers on that frame, plus per-cell noise (0.3). The content of the **acting** character (the one the AD is
   about) is 1.5 action + 0.5 look; every other person in the clip (a second main character, a stranger, a face
   the detector is unsure of) is 1.0 idle + 0.5 look. The action vector is the same for every character (it does
   not tell who acts) and the look is the character's appearance slot, shared across movies (it does not tell the
   name either).
2. **Per-frame boxes** (record key ``frame boxes``, one track per detection of ``detect characters``): a detection's
   box moves linearly across the clip (up to 1.5 % of the frame per frame in x and y, stopped at the frame's
   edge); its box at the clip's middle frame is the one ``detect characters`` gives. The acting character of a
   type 3 clip (no main character) is its first stranger if one was detected, else an undetected person.
3. **Two characters, one acting**: 30 % of the type 1 and 2 clips show a second main character; only the AD's
   character carries the action in its box.
4. **A background-dominated global frame**: ``storyboard_clip_features.h5`` is the world's frame signal with the
   action's weight times :data:`ACTION_IN_FRAME` (0.1, about the area a character's box covers), everything else
   (setting, look, object, noise: the same random draws) unchanged, then L2-normalised per frame. The MAD-v2 and LSMDC features
   keep the full action, and their files are byte-identical to a world without this part.

Random streams: 5 (the patch concepts, per seed) and 6 (per movie: tracks, layouts, noise); the other streams of
the worlds draw exactly what they drew before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moviead.toy import grammar as g

PATCH_FILE = "patch_features.h5"
PATCH_GRID = 4
PATCH_DIM = 64
ACTION_IN_FRAME = 0.1
BOX_SPEED = 0.015  # the most a box moves per frame, as a fraction of the frame's width (x) or height (y)
SECOND_CHARACTER = 0.3  # share of type 1/2 clips with a second main character (the writers' draw)
PATCH_WEIGHTS = {"place": 1.0, "layout": 1.0, "position": 0.5, "action": 1.5, "idle": 1.0, "look": 0.5,
                 "noise": 0.3}  # fmt: skip
"""Norms of the patch components (each concept vector has norm about 1)."""
_PATCH_CONCEPTS, _PATCH_CLIPS = 5, 6
_MAX_PLACES = 16  # more than either world has (v1: 6, v2: 8)


def patch_bank(seed: int) -> dict[str, np.ndarray]:
    """The patch concepts, each N(0, I/Dp): place (16, Dp), action (10, Dp), look (4, Dp), idle (Dp,), position
    (H' * W', Dp)."""
    rng = g.seeded_rng(seed, _PATCH_CONCEPTS)
    sizes = {"place": _MAX_PLACES, "action": len(g.ACTIONS), "look": g.NUM_SLOTS, "idle": 1,
             "position": PATCH_GRID * PATCH_GRID}  # fmt: skip
    bank = {k: rng.standard_normal((n, PATCH_DIM), dtype=np.float32) / np.sqrt(PATCH_DIM) for k, n in sizes.items()}
    bank["idle"] = bank["idle"][0]
    return bank


def clip_rng(seed: int, movie: int) -> np.random.Generator:
    """The random stream of one movie's patches and tracks (used clip after clip, in record order)."""
    return g.seeded_rng(seed, _PATCH_CLIPS, movie)


def box_track(rng: np.random.Generator, box: tuple[float, float, float, float], frames: int,
              resolution: tuple[int, int]) -> np.ndarray:
    """A box moving linearly over ``frames`` frames, (T, 4) [x1, y1, x2, y2] in pixels rounded to 0.1: ``box`` on
    the middle frame (T // 2), a constant size, a random velocity of at most :data:`BOX_SPEED` of the frame per
    frame in each axis, stopped at the frame's edges."""
    height, width = resolution
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    velocity = rng.uniform(-BOX_SPEED, BOX_SPEED, 2) * (width, height)
    steps = np.arange(frames, dtype=np.float64) - frames // 2
    left = np.clip(x1 + velocity[0] * steps, 0.0, max(width - w, 0.0))
    top = np.clip(y1 + velocity[1] * steps, 0.0, max(height - h, 0.0))
    left[frames // 2], top[frames // 2] = x1, y1  # exactly the detection's box on the middle frame
    return np.round(np.stack([left, top, left + w, top + h], axis=1), 1)


def cell_cover(boxes: np.ndarray, grid: int = PATCH_GRID) -> np.ndarray:
    """(T, grid, grid) share of each cell's area covered by the box of each frame; ``boxes`` (T, 4) are fractions
    of the frame [x1, y1, x2, y2]."""
    edges = np.arange(grid + 1) / grid

    def axis(low: np.ndarray, high: np.ndarray) -> np.ndarray:  # (T, grid) covered share of each cell's side
        overlap = np.minimum(high[:, None], edges[1:]) - np.maximum(low[:, None], edges[:-1])
        return np.clip(overlap, 0.0, None) * grid

    return axis(boxes[:, 1], boxes[:, 3])[:, :, None] * axis(boxes[:, 0], boxes[:, 2])[:, None, :]


@dataclass(frozen=True)
class Person:
    """Someone on screen in a clip: a track (T, 4) in pixels, the look slot, and whether they do the AD's action."""

    track: np.ndarray
    look: int
    acting: bool


def render_patches(bank: dict[str, np.ndarray], rng: np.random.Generator, place: int, action: int,
                   people: list[Person], resolution: tuple[int, int]) -> np.ndarray:
    """One clip's patch features, float16 (T, H', W', Dp), from premise 1 of the module docstring.

    Args:
        place: the clip's setting; action: the AD's action (shown inside the acting person's box).
        people: everyone on screen, with tracks of the clip's T frames (at least one person).
        resolution: (height, width) of the frame the tracks are in.
    """
    w = PATCH_WEIGHTS
    layout = rng.standard_normal(PATCH_DIM, dtype=np.float32) / np.sqrt(PATCH_DIM)
    background = (w["place"] * bank["place"][place] + w["layout"] * layout
                  + w["position"] * bank["position"].reshape(PATCH_GRID, PATCH_GRID, PATCH_DIM))  # (H', W', Dp)
    height, width = resolution
    scale = np.array([width, height, width, height], dtype=np.float64)
    covers = np.stack([cell_cover(p.track / scale) for p in people])  # (P, T, H', W')
    total = covers.sum(0)
    covers = covers / np.maximum(total, 1.0)[None]  # overlapping boxes share a cell, never more than all of it
    contents = np.stack([w["look"] * bank["look"][p.look]
                         + (w["action"] * bank["action"][action] if p.acting else w["idle"] * bank["idle"])
                         for p in people])  # (P, Dp)
    shown = covers.sum(0)[..., None]  # (T, H', W', 1)
    patches = (1.0 - shown) * background[None] + np.einsum("pthw,pd->thwd", covers, contents)
    noise = rng.standard_normal(patches.shape, dtype=np.float32) * (w["noise"] / np.sqrt(PATCH_DIM))
    return (patches + noise).astype(np.float16)


def unit_frames(signal: np.ndarray) -> np.ndarray:
    """A frame signal (T, D) as the features a world writes: float16, unit L2 norm per frame."""
    return (signal / np.linalg.norm(signal, axis=1, keepdims=True)).astype(np.float16)


def weaken_action(signal: np.ndarray, action: np.ndarray) -> np.ndarray:
    """Premise 4's frames, float16 (T, D) with unit L2 norm per frame: a world's frame signal before normalisation
    (T, D) with its action component ``action`` (T, D) scaled down to :data:`ACTION_IN_FRAME` of its weight."""
    return unit_frames(signal - (1.0 - ACTION_IN_FRAME) * action)


def world_frames(signals: list[tuple[np.ndarray, np.ndarray]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per movie, from its (signal, action) pair (T, D) each: the frame features every data set but Storyboard-v2
    reads, and the Storyboard-v2 part's (premise 4), both float16 (T, D) with unit rows."""
    return [unit_frames(signal) for signal, _ in signals], [weaken_action(s, a) for s, a in signals]


def hidden_box(rng: np.random.Generator, resolution: tuple[int, int]) -> tuple[float, float, float, float]:
    """The box of an undetected acting person (type 3 clips without a detection), drawn like the detections'."""
    height, width = resolution
    box_w = float(rng.uniform(0.1, 0.3)) * width
    x1, y1 = float(rng.uniform(0, width - box_w)), float(rng.uniform(0, max(height - 1.3 * box_w, 0.0)))
    return (x1, y1, x1 + box_w, y1 + min(1.3 * box_w, float(height)))


def clip_patches(bank: dict[str, np.ndarray], rng: np.random.Generator, boxes: list[tuple[float, float, float, float]],
                 looks: list[int | None], acting: int | None, place: int, action: int, resolution: tuple[int, int],
                 frames: int) -> tuple[list[np.ndarray], np.ndarray]:
    """One clip's per-frame boxes and patch features (premises 1-3).

    Args:
        boxes: each detection's box (pixels) on the clip's middle frame; looks: each detection's look slot (None: a
            stranger, whose look is drawn); acting: the detection that does the AD's action (None: an undetected
            person does).
        frames: T, the clip's number of feature frames.

    Returns:
        one (T, 4) track in pixels per detection, and the (T, H', W', Dp) float16 patches.
    """
    tracks = [box_track(rng, box, frames, resolution) for box in boxes]
    people = [Person(track, int(rng.integers(g.NUM_SLOTS)) if look is None else look, i == acting)
              for i, (track, look) in enumerate(zip(tracks, looks))]
    if acting is None:
        hidden = box_track(rng, hidden_box(rng, resolution), frames, resolution)
        people.append(Person(hidden, int(rng.integers(g.NUM_SLOTS)), True))
    return tracks, render_patches(bank, rng, place, action, people, resolution)
