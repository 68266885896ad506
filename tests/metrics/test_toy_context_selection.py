"""How well a selected context serves its target on the toy grammar (:func:`moviead.metrics.toy.toy_context_selection`)."""

from __future__ import annotations

import pytest

from moviead.metrics.toy import toy_context_selection


def test_name_recall_and_place_precision_on_hand_counted_rows() -> None:
    rows = [
        # the name is in the subtitles of the second item; one of two context ADs shows the kitchen
        ("Arlo opens the kettle in the kitchen.", [("Bree drops the rake in the garden.", ""),
                                                   ("Arlo inspects the ladle.", "Arlo, come here.")]),
        # the name is nowhere (Arlosson is another word); the only AD is in the garden (object rake)
        ("Arlo opens the kettle.", [("Arlosson drops the rake.", ""), (None, "Hello there.")]),
        ("Someone opens the kettle.", [("Cai inspects the ladle.", "")]),  # unnamed: no recall, kitchen: same place
        ("not a toy sentence", [("Arlo inspects the ladle.", "")]),  # skipped
    ]
    result = toy_context_selection(rows)
    assert result["context_name_recall"] == pytest.approx(1 / 2)
    assert result["context_place_precision"] == pytest.approx(2 / 4)
    assert toy_context_selection([]) == {"context_name_recall": 0.0, "context_place_precision": 0.0}
