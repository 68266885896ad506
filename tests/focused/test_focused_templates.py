"""The dynamic instruction for 0 / 1 / n characters (FocusedAD's released strings) and the regions' boxes."""

from __future__ import annotations

import numpy as np
import pytest

from moviead.data.records import CharacterBox, StoryboardRecord
from moviead.focused.recognition import MovieQueries
from moviead.focused.templates import clip_characters, dynamic_instruction, normalised_boxes


def _record(detections: tuple[CharacterBox, ...]) -> StoryboardRecord:
    return StoryboardRecord("tt01", "tt01_0001", 1, (800, 1600), ("ANNA", "BEN"), len(detections), "ANNA runs.",
                            "clips/tt01/1.mp4", detections)


def test_no_character() -> None:
    assert dynamic_instruction([]) == "Describe the [<region>] in detail in the video."


def test_one_character() -> None:
    assert dynamic_instruction(["ANNA"]) == "The character name of [<region>] is ANNA. Describe what ANNA is doing."


def test_three_characters() -> None:
    assert dynamic_instruction(["ANNA", "BEN", "CARL"]) == (
        "There are 3 objects: The character name of [<region>] is ANNA. The character name of [<region>] is BEN. "
        "The character name of [<region>] is CARL. Describe the ANNA and BEN and CARL in detail in the video."
    )


def test_clip_characters_by_mode_and_boxes_as_frame_fractions() -> None:
    # the stored labels are wrong on purpose: names=recognised uses the embeddings and the bank, never the labels
    record = _record((CharacterBox("BEN", (400, 200, 800, 600), 0.9, 0.5, embedding=(1.0, 0.0)),
                      CharacterBox("ANNA", (0, 0, 1600, 900), 0.9, 1.4, embedding=(-1.0, 0.0))))
    bank = MovieQueries(("ANNA", "BEN"), np.array([[1.0, 0.0], [0.0, 1.0]]))
    recognised = clip_characters(record, "recognised", bank, 1.3, 0.7, 4)
    assert [(c.name, c.distance) for c in recognised] == [("ANNA", 0.0)]  # the second face: 1.41 from BEN, > τ
    assert [c.name for c in clip_characters(record, "recognised", bank, 1.5, 0.7, 4)] == ["ANNA", "BEN"]
    assert [c.name for c in clip_characters(record, "given", None, 1.3, 0.7, 4)] == ["BEN", "ANNA"]  # oracle labels
    assert clip_characters(record, "none", bank, 1.3, 0.7, 4) == []
    assert normalised_boxes(record, recognised) == [(0.25, 0.25, 0.5, 0.75)]
    assert normalised_boxes(record, record.detections) == [(0.25, 0.25, 0.5, 0.75), (0.0, 0.0, 1.0, 1.0)]  # clipped
    assert normalised_boxes(record, []) == [(0.0, 0.0, 1.0, 1.0)]  # no character: the whole frame
    with pytest.raises(ValueError, match="names must be one of"):
        clip_characters(record, "bank", None, 1.3, 0.7, 4)
