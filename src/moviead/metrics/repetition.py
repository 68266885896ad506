"""Repetition between consecutive ADs: how much of each prediction repeats the previous one of the same movie.

For the predictions of ADs i-1 and i of one movie (consecutive indices), the pair's rate is the fraction of the
content words of prediction i (every occurrence; lower-cased; stopwords removed:
:func:`moviead.wordlists.content_words`) whose lower-case form is among the content words of
prediction i-1. The corpus value is the mean over pairs (macro). Pairs are left out when prediction i has no
content word or when AD i-1 was not predicted (a gap in the indices). Lower means less redundant narration
(DistinctAD's motivation); ground-truth ADs have a rate of their own, which is the reference to compare with.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

from moviead.wordlists import content_words


def pair_repetition(previous: str, current: str) -> float | None:
    """Fraction of ``current``'s content words (occurrences) found among ``previous``'s; None without any."""
    words = content_words(current)
    if not words:
        return None
    before = set(content_words(previous))
    return sum(word in before for word in words) / len(words)


def repetition_rates(predictions: Iterable[tuple[str, int, str]]) -> list[float]:
    """Per-pair rates of ``(movie, index, text)`` predictions (any order), movie by movie in index order."""
    by_movie: dict[str, dict[int, str]] = defaultdict(dict)
    for movie, index, text in predictions:
        by_movie[movie][int(index)] = text
    rates: list[float] = []
    for movie in sorted(by_movie):
        texts = by_movie[movie]
        for index in sorted(texts):
            if index - 1 in texts:
                rate = pair_repetition(texts[index - 1], texts[index])
                if rate is not None:
                    rates.append(rate)
    return rates


def repetition_rate(predictions: Iterable[tuple[str, int, str]]) -> float:
    """Mean pair rate of ``(movie, index, text)`` predictions; NaN when no pair counts."""
    rates = repetition_rates(predictions)
    return sum(rates) / len(rates) if rates else math.nan
