"""Name accuracy split by characters seen / unseen in the training ADs (FocusedAD's per-movie bank names unseen
characters too)."""

from __future__ import annotations

import math
from pathlib import Path

from moviead.focused.name_accuracy import storyboard_name_scoring, storyboard_name_sets
from moviead.metrics.names import mentioned, name_accuracy_by_seen, seen_names


def test_seen_names_come_from_training_ads() -> None:
    train = ["Anna opens the door.", "BEN looks at Annabel."]
    assert seen_names(train, ["Anna", "Ben", "Carl", "Annabel", "Ann"]) == {"Anna", "Ben", "Annabel"}  # words only
    assert mentioned("Carl, then anna.", ["Anna", "Carl", "Ben"]) == {"Anna", "Carl"}


def test_accuracy_is_split_by_seen_and_unseen() -> None:
    refs = ["Anna runs.", "Carl sits with Anna.", "Dora waves.", "The door opens."]
    preds = ["Anna runs.", "Ben sits with Anna.", "Dora waves.", "Anna opens the door."]
    scores = name_accuracy_by_seen(refs, preds, ["Anna", "Ben", "Carl", "Dora"], seen={"anna", "BEN"})
    # seen mentions: Anna (row 0, right), Anna (row 1, right); unseen: Carl (wrong), Dora (right)
    assert scores == {"name_acc_seen": 1.0, "name_acc_unseen": 0.5, "name_acc_all": 0.75,
                      "name_mentions_seen": 2.0, "name_mentions_unseen": 2.0}
    per_row = name_accuracy_by_seen(refs[:2], preds[:2], [["Anna"], ["Carl"]], seen=set())
    assert per_row["name_acc_unseen"] == 0.5 and math.isnan(per_row["name_acc_seen"])


def test_storyboard_scoring_uses_the_training_movies(toy_root: Path) -> None:
    board = toy_root / "storyboard"
    names, seen = storyboard_name_sets(board / "storyboard_v2.json", 0.17)
    assert seen and seen < set(names)  # the toy's held-out movies have characters no training AD names

    class Data:
        root = str(board)

        class storyboard:  # the shape of cfg.data.storyboard
            annotations = "storyboard_v2.json"
            val_fraction = 0.17

    unseen = min(set(names) - seen)
    score = storyboard_name_scoring(Data)
    result = score([f"{unseen} runs.", f"{min(seen)} runs."], [f"{unseen} runs.", "Someone runs."])
    assert (result["name_acc_unseen"], result["name_acc_seen"]) == (1.0, 0.0)
