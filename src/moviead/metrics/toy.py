"""Metrics that only the toy data can have, because its sentences come from a known grammar.

The toy data names a character only in the context (subtitles and earlier ADs), never in the frames, so
**name accuracy** measures whether a model uses its context; action and object accuracy measure whether it
reads the frames. Sentences of both toy worlds parse (:func:`moviead.toy.grammar_v2.parse_toy_text`; v2's ADs after
a scene's first name no place).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from moviead.metrics.names import mentioned
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


def toy_context_selection(rows: Iterable[tuple[str, Sequence[tuple[str | None, str]]]]) -> dict[str, float]:
    """How well the context a model was given serves its target: what a context selector (LoCo-MAD's DSM, or the
    last k items) is for, measured on the toy grammar.

    Args:
        rows: per decoded AD, its reference and the context items it was given, each ``(ad_text or None,
            subtitles)`` (``moviead evaluate``'s ``predictions.jsonl``: ``gt`` and ``context``).

    Returns:
        ``{"context_name_recall", "context_place_precision"}``: the fraction of references naming a character
        (not "Someone") whose name is in one of their context items (AD or subtitles), and the fraction of
        context ADs that parse and show the reference's setting (in world v2 a storyline's own, so the
        fraction of same-storyline items). 0 when nothing counts.
    """
    named = recalled = ads = same_place = 0
    for reference, context in rows:
        gt = parse_toy_text(reference)
        if gt is None:
            continue
        if gt.name.lower() != "someone":
            named += 1
            recalled += _holds_name(context, gt.name)
        for ad, _ in context:
            item = parse_toy_text(ad) if ad else None
            if item is not None:
                ads += 1
                same_place += item.place == gt.place
    return {"context_name_recall": recalled / named if named else 0.0,
            "context_place_precision": same_place / ads if ads else 0.0}


def toy_name_copying(rows: Iterable[tuple[str, str, Sequence[tuple[str | None, str]]]]) -> dict[str, float]:
    """Whether a model names the right character *when its context holds the name*: what the decoder does with the
    context a selector gave it, apart from how often the selector gave it the name (``context_name_recall``).

    Args:
        rows: per decoded AD, its reference, its prediction and its context items ``(ad_text or None, subtitles)``.

    Returns:
        Over the references naming a character (not "Someone") whose name is in one of their context items:
        ``name_acc_in_context``, the fraction of predictions naming that character; ``context_several_names``, the
        fraction whose context ADs name two or more characters (the model has to choose one); and
        ``name_acc_several_names``, the name accuracy on those. 0 when nothing counts.
    """
    in_context = right = several = several_right = 0
    for reference, prediction, context in rows:
        gt = parse_toy_text(reference)
        if gt is None or gt.name.lower() == "someone":
            continue
        if not _holds_name(context, gt.name):
            continue
        guess = parse_toy_text(prediction)
        correct = guess is not None and guess.name == gt.name
        names = {item.name for item in (parse_toy_text(ad) for ad, _ in context if ad) if item is not None}
        names.discard("Someone")
        in_context += 1
        right += correct
        if len(names) >= 2:
            several += 1
            several_right += correct
    return {"name_acc_in_context": right / in_context if in_context else 0.0,
            "context_several_names": several / in_context if in_context else 0.0,
            "name_acc_several_names": several_right / several if several else 0.0}


def _holds_name(context: Sequence[tuple[str | None, str]], name: str) -> bool:
    """Whether one of the context items ``(ad_text or None, subtitles)`` mentions ``name``."""
    return any(mentioned(f"{ad or ''} {subs}", [name]) for ad, subs in context)
