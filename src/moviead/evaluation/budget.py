"""Fitting an AD to its gap: word budgets, token limits, the clause cut and the rate figures.

A cue of ``d`` seconds narrated at ``r`` words per second has room for ``floor(d * r)`` words (at least one): its
*word budget*. The default rate, 2.7 words/s (≈ 160 wpm), is the usual pace of AD narration. Decoding turns the
budget into a token limit (:func:`token_limit`: ``ceil(TOKENS_PER_WORD * budget) + TOKEN_SLACK``, 1.6 GPT-2 tokens
per English word of AD plus room for the full stop and a leading space token), ranks the beams that fit the budget
above those that do not (:mod:`moviead.models.generation`), and a text still over budget is cut at its last clause
boundary within the budget (:func:`fit_to_budget`), never inside a word.

The figures: an AD is *over the rate* when it has more words than its cue's budget allows, i.e. more than ``r``
words per second of its interval, or, where its speech was synthesised and measured, when that speech did not fit
the cue at the base rate (:func:`rate_figures` with ``spoken_over``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

WORDS_PER_SECOND = 2.7
TOKENS_PER_WORD = 1.6
TOKEN_SLACK = 2
NO_REPEAT_NGRAM = 3

_WORD = re.compile(r"[\w'’-]+")
_CONJUNCTIONS = frozenset({"and", "while", "as", "but", "then", "before", "after", "when", "until", "who", "which",
                           "where", "or", "so", "because", "whilst", "with"})
_CLAUSE_PUNCTUATION = (",", ";", ":", "—", "–")


def word_count(text: str) -> int:
    """The words of ``text`` (runs of letters, digits, apostrophes and hyphens)."""
    return len(_WORD.findall(text))


def word_budget(duration: float, words_per_second: float = WORDS_PER_SECOND) -> int:
    """``floor(duration * words_per_second)``, at least 1.

    Raises:
        ValueError: a rate that is not positive.
    """
    if not words_per_second > 0:
        raise ValueError(f"the speaking rate must be above 0 words/s, got {words_per_second}")
    return max(1, math.floor(max(0.0, duration) * words_per_second + 1e-9))


def token_limit(budget: int) -> int:
    """The new-token limit of a cue with ``budget`` words: ``ceil(1.6 * budget) + 2``."""
    return math.ceil(TOKENS_PER_WORD * max(1, budget)) + TOKEN_SLACK


def fit_to_budget(text: str, budget: int) -> str:
    """``text`` when it has at most ``budget`` words; else its longest prefix of at most ``budget`` words that ends
    at a clause boundary (after a comma, semicolon, colon or dash, or before a conjunction such as "and", "while",
    "as", "who"), ended with a full stop. Without such a boundary the text is cut after its ``budget``-th word. Words
    are never split.
    """
    text = text.strip()
    if word_count(text) <= budget:
        return text
    tokens = text.split()  # whitespace tokens: a word with its punctuation
    kept: list[str] = []  # tokens within the budget
    words = 0
    for token in tokens:
        n = word_count(token)
        if words + n > budget:
            break
        kept.append(token)
        words += n
    best = 0  # the number of tokens of the longest clause-bounded prefix: it ends with clause punctuation, or the
    for i, token in enumerate(kept):  # token after it is a conjunction
        following = tokens[i + 1].lower().strip(",;:") if i + 1 < len(tokens) else ""
        if token.endswith(_CLAUSE_PUNCTUATION) or following in _CONJUNCTIONS:
            best = i + 1
    cut = kept[:best] if best else kept
    if not cut:  # a first "word" longer than the budget allows (budget 0 is not one): keep the first token
        cut = tokens[:1]
    return _full_stop(" ".join(cut))


def _full_stop(text: str) -> str:
    """``text`` without trailing clause punctuation and with one full stop."""
    text = text.rstrip(" ,;:—–-")
    return text if text.endswith((".", "!", "?")) else text + "."


def repeated_ngrams(text: str, n: int = 3) -> int:
    """How many word ``n``-grams of ``text`` repeat an earlier one (case-insensitive): 0 for a text without."""
    words = [w.lower() for w in _WORD.findall(text)]
    counts = Counter(tuple(words[i: i + n]) for i in range(len(words) - n + 1))
    return sum(c - 1 for c in counts.values())


@dataclass(frozen=True)
class RateFigures:
    """The pace of a track: cues, ADs over the rate (their share), mean words per second, repeated n-grams."""

    cues: int
    over_rate: int
    mean_words_per_second: float
    repeated_ngrams: int
    measured: bool = False  # "over the rate" from the measured speech rather than the word count

    @property
    def over_rate_share(self) -> float:
        return self.over_rate / self.cues if self.cues else 0.0

    def scores(self) -> dict[str, float]:
        """The two keys of ``metrics.json``."""
        return {"over_rate_share": self.over_rate_share, "mean_words_per_second": self.mean_words_per_second}

    def line(self) -> str:
        """The summary line ``moviead describe`` prints."""
        how = "measured speech" if self.measured else "word count"
        return (f"{self.cues} cues, {100 * self.over_rate_share:.1f} % over the rate ({self.over_rate}, by {how}), "
                f"mean {self.mean_words_per_second:.2f} words/s, {self.repeated_ngrams} repeated 3-gram(s)")


def rate_figures(rows: Iterable[Mapping[str, Any]], words_per_second: float = WORDS_PER_SECOND,
                 text_key: str = "pred", spoken_over: Sequence[bool] | None = None) -> RateFigures:
    """The :class:`RateFigures` of rows with ``start``, ``end`` (seconds) and a text under ``text_key``.

    Args:
        spoken_over: per row, whether its synthesised speech overran the cue at the base rate; given, it decides
            "over the rate" instead of the word count.
    """
    rows = list(rows)
    if spoken_over is not None and len(spoken_over) != len(rows):
        raise ValueError(f"spoken_over has {len(spoken_over)} values for {len(rows)} rows")
    rates, over, repeats = [], 0, 0
    for i, row in enumerate(rows):
        text = str(row[text_key])
        duration = float(row["end"]) - float(row["start"])
        words = word_count(text)
        rates.append(words / duration if duration > 0 else 0.0)
        if spoken_over is not None:
            over += bool(spoken_over[i])
        else:
            over += words > word_budget(duration, words_per_second)
        repeats += repeated_ngrams(text)
    mean = sum(rates) / len(rates) if rates else 0.0
    return RateFigures(len(rows), over, mean, repeats, spoken_over is not None)
