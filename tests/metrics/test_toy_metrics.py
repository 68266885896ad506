import pytest

from moviead.metrics.toy import toy_slot_accuracy


def test_slot_accuracy_counts_each_slot():
    refs = ["Tamsin opens the map in the attic.", "In the garden, Arlo drops the clock.", "not toy text"]
    preds = ["Tamsin opens the letter in the attic.", "Zora drops the clock in the garden.", "anything"]
    out = toy_slot_accuracy(refs, preds)
    assert out == {"name_acc": 0.5, "action_acc": 1.0, "object_acc": 0.5, "parsable": 1.0}


def test_unparsable_prediction_counts_wrong():
    out = toy_slot_accuracy(["Tamsin opens the map in the attic."], ["Tamsin opens"])
    assert out["name_acc"] == 0.0 and out["parsable"] == 0.0


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError):
        toy_slot_accuracy(["a"], [])
