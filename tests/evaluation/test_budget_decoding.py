"""Budget-aware decoding (:func:`moviead.models.generation.generate` with per-row token limits)."""

from __future__ import annotations

import pytest

from moviead.models.generation import GenerationSettings, generate, pick_within_budget
from tests.test_generation import LENGTHS, left, make_decoder, one, prefix_batch


def test_pick_prefers_the_best_beam_within_budget_else_the_shortest() -> None:
    beams = [[1, 2, 3, 4, 5], [1, 2, 3], [1, 2]]
    scores = [-0.1, -0.5, -0.9]
    assert pick_within_budget(beams, scores, lambda ids: len(ids) <= 3) == [1, 2, 3]  # best of those that fit
    assert pick_within_budget(beams, scores, lambda ids: len(ids) <= 9) == [1, 2, 3, 4, 5]
    assert pick_within_budget(beams, scores, lambda ids: False) == [1, 2]  # none fits: the shortest


def test_greedy_rows_with_own_limits_equal_each_row_decoded_with_its_limit() -> None:
    decoder = make_decoder("opt")
    batch = prefix_batch(LENGTHS)
    limits = (2, 5, 8)
    budgeted = generate(decoder, left(decoder, batch),
                        GenerationSettings(num_beams=1, max_new_tokens=8, row_token_limits=limits))
    alone = [generate(decoder, left(decoder, one(batch, b)), GenerationSettings(num_beams=1, max_new_tokens=n))[0]
             for b, n in enumerate(limits)]
    assert budgeted == alone
    assert [len(t) for t in budgeted] == [2, 5, 8]


def test_beams_over_the_budget_lose_to_beams_within_it() -> None:
    decoder = make_decoder("opt")
    inputs = left(decoder, prefix_batch(LENGTHS))
    plain = generate(decoder, inputs, GenerationSettings(num_beams=3, max_new_tokens=8, stop_token_ids=(4, 14)))
    # a budget that the unconstrained best beam breaks: "no token the best beam ends with"
    banned = [row[-1] for row in plain]
    settings = GenerationSettings(num_beams=3, max_new_tokens=8, stop_token_ids=(4, 14), row_token_limits=(8, 8, 8),
                                  fits=lambda b, ids: banned[b] not in ids)
    budgeted = generate(decoder, inputs, settings)
    assert budgeted != plain
    for b, row in enumerate(budgeted):
        assert len(row) <= 8
        if row != plain[b]:  # another beam was chosen: it fits, or none did and it is the shortest
            assert banned[b] not in row or len(row) <= len(plain[b])
    assert sum(banned[b] not in row for b, row in enumerate(budgeted)) >= 2


def test_row_limits_must_match_the_batch() -> None:
    decoder = make_decoder("opt")
    with pytest.raises(ValueError, match="row_token_limits"):
        generate(decoder, left(decoder, prefix_batch(LENGTHS)), GenerationSettings(num_beams=1, row_token_limits=(3,)))
