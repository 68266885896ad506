"""Distinctive-word recall: how many of the words that set an AD apart from its context a prediction says.

DistinctAD's premise is that neighbouring clips look alike, so a model tends to repeat the context; what a good AD
adds is its *distinctive* words D (:func:`moviead.wordlists.distinctive_words`: the reference's content words found
in none of the context ADs). For each AD, the context is the ground truth of the ``context_ads`` ADs before it in the
same movie (index order; ADs missing from the predictions are skipped, as the evaluator's oracle context would not
skip them, so pass every AD of a movie). The corpus value is micro-averaged: the number of distinctive reference
words (lower-cased) that occur among the prediction's content words, over the number of distinctive reference words.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

from moviead.wordlists import content_words, distinctive_words


def distinctive_word_counts(rows: Iterable[tuple[str, int, str, str]], context_ads: int) -> tuple[int, int]:
    """``(recalled, total)`` over ``(movie, index, reference, prediction)`` rows, in any order.

    Raises:
        ValueError: ``context_ads`` < 1.
    """
    if context_ads < 1:
        raise ValueError(f"context_ads must be >= 1, got {context_ads}")
    by_movie: dict[str, dict[int, tuple[str, str]]] = defaultdict(dict)
    for movie, index, reference, prediction in rows:
        by_movie[movie][int(index)] = (reference, prediction)
    recalled = total = 0
    for movie in sorted(by_movie):
        ordered = [by_movie[movie][i] for i in sorted(by_movie[movie])]
        for position, (reference, prediction) in enumerate(ordered):
            context = [ref for ref, _ in ordered[max(0, position - context_ads):position]]
            wanted = [word.lower() for word in distinctive_words(reference, context)]
            said = set(content_words(prediction))
            recalled += sum(word in said for word in wanted)
            total += len(wanted)
    return recalled, total


def distinctive_word_recall(rows: Iterable[tuple[str, int, str, str]], context_ads: int) -> float:
    """Recalled distinctive reference words / all distinctive reference words; NaN when there are none."""
    recalled, total = distinctive_word_counts(rows, context_ads)
    return recalled / total if total else math.nan
