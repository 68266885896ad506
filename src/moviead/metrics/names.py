"""Name accuracy split by whether a character was **seen** in training (FocusedAD's per-movie bank: a character
who never appears in the training ADs can still be named, since the bank of a new movie holds its names).

A reference AD *mentions* a name when the name occurs in it as a word (case-insensitive). Each mention of a
reference is one trial, right when the prediction mentions the same name. A name is *seen* when it occurs in at
least one AD of the training split, else *unseen*.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(name)}(?!\w)", re.IGNORECASE)


def mentioned(text: str, names: Iterable[str]) -> set[str]:
    """The names of ``names`` that occur in ``text`` as words, case-insensitive (returned as given)."""
    return {n for n in names if _pattern(n).search(text)}


def seen_names(training_texts: Iterable[str], names: Iterable[str]) -> set[str]:
    """The names of ``names`` occurring in at least one training AD (case-insensitive, as words)."""
    remaining = {n for n in names if n.strip()}
    seen: set[str] = set()
    for text in training_texts:
        found = mentioned(text, remaining)
        seen |= found
        remaining -= found
        if not remaining:
            break
    return seen


def name_accuracy_by_seen(
    references: Sequence[str], predictions: Sequence[str], names: Sequence[Iterable[str]] | Iterable[str],
    seen: set[str],
) -> dict[str, float]:
    """Name accuracy over the names the references mention, split into seen and unseen names.

    Args:
        names: the candidate names, for all rows (an iterable of str) or per row (a sequence of iterables, one per
            reference, e.g. each movie's characters).
        seen: names occurring in the training split's ADs (:func:`seen_names`), compared case-insensitively.

    Returns:
        ``name_acc_seen``, ``name_acc_unseen`` (nan when no mention of that kind), ``name_acc_all`` and the counts
        ``name_mentions_seen``, ``name_mentions_unseen``.
    """
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
    per_row = (isinstance(names, Sequence) and not isinstance(names, str) and len(names) == len(references)
               and all(not isinstance(n, str) for n in names))
    shared = None if per_row else [str(n) for n in names]  # type: ignore[union-attr]
    known = {s.lower() for s in seen}
    right = {"seen": 0, "unseen": 0}
    total = {"seen": 0, "unseen": 0}
    for i, (ref, pred) in enumerate(zip(references, predictions)):
        candidates = shared if shared is not None else list(names[i])  # type: ignore[index]
        for name in mentioned(ref, candidates):
            kind = "seen" if name.lower() in known else "unseen"
            total[kind] += 1
            right[kind] += bool(_pattern(name).search(pred))

    def ratio(a: int, b: int) -> float:
        return a / b if b else float("nan")

    return {"name_acc_seen": ratio(right["seen"], total["seen"]),
            "name_acc_unseen": ratio(right["unseen"], total["unseen"]),
            "name_acc_all": ratio(right["seen"] + right["unseen"], total["seen"] + total["unseen"]),
            "name_mentions_seen": float(total["seen"]), "name_mentions_unseen": float(total["unseen"])}
