"""How well a selected context serves its target on the toy grammar (:func:`moviead.metrics.toy.toy_context_selection`)."""

from __future__ import annotations

import pytest

from moviead.metrics.toy import toy_context_selection, toy_name_copying


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


def test_name_copying_counts_only_references_whose_name_the_context_holds() -> None:
    rows = [
        # in context (subtitles), context ADs name Bree and Arlo: several names; predicted right
        ("Arlo opens the kettle in the kitchen.", "Arlo opens the kettle.",
         [("Bree drops the rake in the garden.", ""), ("Arlo inspects the ladle.", "Arlo, come here.")]),
        # in context, context ADs name Bree and Cai (Arlo only in subtitles): several names; predicted wrong
        ("Arlo drops the ladle.", "Bree drops the ladle.",
         [("Bree drops the rake in the garden.", "Is that you, Arlo?"), ("Cai inspects the ladle.", "")]),
        # in context, one AD name: not several; an unparsable prediction counts wrong
        ("Arlo inspects the ladle.", "Arlo Arlo the the", [("Arlo opens the kettle.", "")]),
        ("Arlo opens the kettle.", "Arlo opens the kettle.", [("Bree drops the rake.", "")]),  # name not in context
        ("Someone opens the kettle.", "Someone opens the kettle.", [("Someone inspects the ladle.", "")]),  # unnamed
        ("not a toy sentence", "Arlo opens the kettle.", [("Arlo inspects the ladle.", "")]),  # skipped
    ]
    result = toy_name_copying(rows)
    assert result == pytest.approx({"name_acc_in_context": 1 / 3, "context_several_names": 2 / 3,
                                    "name_acc_several_names": 1 / 2})
    assert toy_name_copying([]) == {"name_acc_in_context": 0.0, "context_several_names": 0.0,
                                    "name_acc_several_names": 0.0}
