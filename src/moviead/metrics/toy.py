"""Metrics that only the toy data can have, because its sentences come from a known grammar.

The toy data names a character only in the context (subtitles and earlier ADs), never in the frames, so
**name accuracy** measures whether a model uses its context; action and object accuracy measure whether it
reads the frames. Sentences of both toy worlds parse (:func:`moviead.toy.grammar_v2.parse_toy_text`; v2's ADs after
a scene's first name no place).
"""

from __future__ import annotations

from typing import Sequence

from moviead.toy.grammar_v2 import parse_toy_text


def toy_slot_accuracy(references: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """Fraction of predictions whose name / action / object equals the reference's (unparsable counts wrong).

    Returns ``{"name_acc", "action_acc", "object_acc", "parsable"}``; references outside the grammar are
    skipped; all zeros when none is left.
    """
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
    counts = {"name_acc": 0, "action_acc": 0, "object_acc": 0, "parsable": 0}
    total = 0
    for ref, pred in zip(references, predictions):
        gt = parse_toy_text(ref)
        if gt is None:
            continue
        total += 1
        guess = parse_toy_text(pred)
        if guess is None:
            continue
        counts["parsable"] += 1
        counts["name_acc"] += guess.name == gt.name
        counts["action_acc"] += guess.action == gt.action
        counts["object_acc"] += guess.obj == gt.obj
    return {k: (v / total if total else 0.0) for k, v in counts.items()}
