"""Word budgets, the clause cut and the rate figures of :mod:`moviead.evaluation.budget`."""

from __future__ import annotations

import pytest

from moviead.evaluation.budget import (
    fit_to_budget,
    rate_figures,
    repeated_ngrams,
    token_limit,
    word_budget,
    word_count,
)


def test_word_budget_is_floor_of_duration_times_rate_at_least_one() -> None:
    assert word_budget(4.0, 2.7) == 10  # 10.8
    assert word_budget(3.0, 2.0) == 6
    assert word_budget(0.2, 2.7) == 1
    assert token_limit(10) == 18  # ceil(1.6 * 10) + 2
    with pytest.raises(ValueError, match="above 0"):
        word_budget(3.0, 0.0)


def test_a_text_within_budget_is_kept_as_is() -> None:
    assert fit_to_budget("She opens the door.", 4) == "She opens the door."


def test_overflow_is_cut_at_the_last_clause_boundary_within_budget() -> None:
    text = "Tom runs to the car, grabs his bag and drives away into the night."
    assert fit_to_budget(text, 9) == "Tom runs to the car, grabs his bag."  # before "and"
    assert fit_to_budget(text, 6) == "Tom runs to the car."  # after the comma
    assert fit_to_budget("She smiles while he reads the old letter aloud.", 5) == "She smiles."


def test_without_a_boundary_the_cut_falls_between_words() -> None:
    text = "An extraordinarily long unpunctuated description continues endlessly"
    cut = fit_to_budget(text, 3)
    assert cut == "An extraordinarily long."
    assert all(word in text.split() for word in cut.rstrip(".").split())  # whole words only
    for budget in range(1, 8):
        fitted = fit_to_budget("Mary, the tall woman in red, walks slowly and sits down while it rains.", budget)
        assert 1 <= word_count(fitted) <= budget and fitted.endswith(".")


def test_repeated_ngrams_counts_repeats_only() -> None:
    assert repeated_ngrams("He looks at her. He looks at her again.") == 2  # "he looks at", "looks at her"
    assert repeated_ngrams("He looks at the sea.") == 0


def test_rate_figures_from_words_or_from_measured_speech() -> None:
    rows = [{"start": 0.0, "end": 2.0, "pred": "A man walks in."},  # 4 words > budget 5? no: 4 <= 5
            {"start": 5.0, "end": 6.0, "pred": "A woman runs fast now."}]  # 5 words > budget 2
    figures = rate_figures(rows, 2.7)
    assert (figures.cues, figures.over_rate) == (2, 1)
    assert figures.over_rate_share == pytest.approx(0.5)
    assert figures.mean_words_per_second == pytest.approx((4 / 2 + 5 / 1) / 2)
    assert set(figures.scores()) == {"over_rate_share", "mean_words_per_second"}
    measured = rate_figures(rows, 2.7, spoken_over=[True, True])
    assert measured.over_rate == 2 and measured.measured and "measured speech" in measured.line()
    with pytest.raises(ValueError, match="spoken_over"):
        rate_figures(rows, spoken_over=[True])
