"""FocusedAD's dynamic instruction template (FocusedAD §3.2, eq. 7), with the released code's strings.

- no character:  ``Describe the [<region>] in detail in the video.`` (the region is the whole frame)
- one character: ``The character name of [<region>] is N. Describe what N is doing.``
- n characters:  ``There are n objects: The character name of [<region>] is A. The character name of [<region>] is
  B. Describe the A and B in detail in the video.``

Each ``<region>`` is where that region's character tokens go (:mod:`moviead.focused.character_tokens`); with
character tokens off it stays as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from moviead.data.records import CharacterBox, StoryboardRecord
from moviead.focused.recognition import MovieQueries, recognise_record, recognised_detections

REGION = "<region>"
"""The placeholder of one region's character tokens inside the instruction."""

NAME_MODES = ("recognised", "given", "none")
"""How a clip's names are found: recognised from the face embeddings with the best-query bank + threshold
(FocusedAD), the detections' ground-truth names (an oracle ablation), or not at all."""


def dynamic_instruction(names: Sequence[str]) -> str:
    """The instruction for a clip whose recognised characters are ``names`` (detection order)."""
    if not names:
        return f"Describe the [{REGION}] in detail in the video."
    if len(names) == 1:
        name = names[0]
        return f"The character name of [{REGION}] is {name}. Describe what {name} is doing."
    regions = ". ".join(f"The character name of [{REGION}] is {name}" for name in names)
    return f"There are {len(names)} objects: {regions}. Describe the {' and '.join(names)} in detail in the video."


def whole_frame(resolution: tuple[int, int]) -> tuple[float, float, float, float]:
    """The box [x1, y1, x2, y2] of a whole frame of ``resolution`` (height, width), in pixels."""
    height, width = resolution
    return (0.0, 0.0, float(width), float(height))


def clip_characters(
    record: StoryboardRecord, names: str, queries: MovieQueries | None, threshold: float, min_confidence: float,
    max_characters: int, source: str | Path | None = None,
) -> list[CharacterBox]:
    """The characters a clip's instruction names, in detection order (:func:`recognised_detections`).

    Args:
        names: ``recognised`` (FocusedAD: each face recognised from its embedding with the movie's best queries,
            ``queries``, eqs. 5-6 at τ = ``threshold``; :func:`recognise_record`), ``given`` (an oracle ablation, not
            FocusedAD: the detections' ground-truth names, no threshold) or ``none`` (no names).
        source: the records file, named by the error for a detection without an embedding.
    """
    if names not in NAME_MODES:
        raise ValueError(f"names must be one of {NAME_MODES}, got {names!r}")
    if names == "none":
        return []
    if names == "recognised":
        recognised = recognise_record(record, queries, threshold, min_confidence, source)
        known = set(queries.names) if queries is not None else set()
        return recognised_detections(recognised.detections, known, threshold, min_confidence, max_characters)
    truth = [replace(box, name=box.reference) for box in record.detections]
    return recognised_detections(truth, None, float("inf"), min_confidence, max_characters)


def normalised_boxes(record: StoryboardRecord, characters: Sequence[CharacterBox]) -> list[tuple[float, ...]]:
    """Boxes of the instruction's regions as fractions of the frame (x / width, y / height), clipped to [0, 1]:
    the characters' boxes, or the whole frame when there is none."""
    height, width = record.resolution
    boxes = [c.box for c in characters] or [whole_frame(record.resolution)]
    return [_as_fractions(box, width, height) for box in boxes]


def _as_fractions(box: Sequence[float], width: float, height: float) -> tuple[float, ...]:
    """A pixel box [x1, y1, x2, y2] as fractions of the frame, clipped to [0, 1]."""
    return tuple(min(max(v / s, 0.0), 1.0) for v, s in zip(box, (width, height, width, height)))


def normalised_frame_boxes(record: StoryboardRecord, characters: Sequence[CharacterBox],
                           frames: Sequence[int]) -> list[list[tuple[float, ...]]]:
    """(C, T, 4) boxes of the instruction's regions on the clip's sampled feature ``frames``, as fractions of the
    frame clipped to [0, 1]: a character's per-frame box (``frame_boxes``) where the record tracks it, else its
    one box on every frame (the whole frame when there is no character)."""
    static = normalised_boxes(record, characters)
    if not characters:
        return [[static[0]] * len(frames)]
    height, width = record.resolution
    out = []
    for character, box in zip(characters, static):
        if character.frame_boxes is None:
            out.append([box] * len(frames))
            continue
        out.append([_as_fractions(character.frame_boxes[f], width, height) for f in frames])
    return out
