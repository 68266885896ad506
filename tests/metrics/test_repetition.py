"""Repetition rate between consecutive predictions of a movie, on fixed sentences."""

from __future__ import annotations

import math

import pytest

from moviead.metrics.repetition import pair_repetition, repetition_rate, repetition_rates


def test_pair_rate_counts_occurrences_of_current_content_words_found_in_the_previous() -> None:
    # content words of the current: tamsin, opens, map, attic, map -> tamsin, attic and the two "map" repeat
    assert pair_repetition("In the attic, Tamsin reads a MAP.", "Tamsin opens the map in the attic, map.") == 4 / 5
    assert pair_repetition("Arlo waits.", "Tamsin opens the map.") == 0.0
    assert pair_repetition("Arlo waits.", "He is there.") is None  # no content word


def test_corpus_rate_is_the_mean_over_consecutive_pairs_within_each_movie() -> None:
    rows = [
        ("m", 2, "Tamsin opens the map."),  # vs index 1: tamsin repeats, opens and map do not -> 1/3
        ("m", 0, "Tamsin waits."),
        ("m", 1, "Tamsin waits."),  # vs index 0: 2/2
        ("m", 4, "Tamsin opens the map."),  # index 3 missing: no pair
        ("n", 0, "Tamsin opens the map."),  # another movie: never paired with m
        ("n", 1, "It is."),  # no content word: left out
    ]
    assert repetition_rates(rows) == pytest.approx([1.0, 1 / 3])
    assert repetition_rate(rows) == pytest.approx(2 / 3)
    assert math.isnan(repetition_rate([("m", 0, "Tamsin waits.")]))
