"""AD slots of a film: dialogue-free gaps from subtitles, or fixed windows without them."""

from __future__ import annotations

import pytest

from moviead.evaluation.gaps import dialogue_gaps, fixed_windows, merge_intervals, split_interval


def test_merge_and_split() -> None:
    assert merge_intervals([(5, 6), (0, 2), (1, 3), (3, 4)]) == [(0, 4), (5, 6)]
    assert split_interval(0.0, 20.0, 8.0) == [(0.0, 20 / 3), (20 / 3, 40 / 3), (40 / 3, 20.0)]
    assert split_interval(0.0, 8.0, 8.0) == [(0.0, 8.0)]


def test_gaps_by_hand() -> None:
    subtitles = [(1.0, 3.0), (2.5, 4.0), (5.0, 6.0), (15.0, 16.0)]
    # busy with 0.2 s margins: [0.8, 4.2], [4.8, 6.2], [14.8, 16.2]; duration 20
    slots = dialogue_gaps(subtitles, 20.0, min_gap=2.0, max_cue=8.0, margin=0.2)
    assert [x for slot in slots for x in slot] == pytest.approx([6.2, 10.5, 10.5, 14.8, 16.2, 20.0])
    assert dialogue_gaps([], 5.0, min_gap=2.0) == [(0.0, 5.0)]


def test_every_slot_lies_in_a_gap() -> None:
    import random

    rng = random.Random(0)
    subtitles = []
    t = 0.0
    for _ in range(200):
        t += rng.uniform(0.0, 12.0)
        length = rng.uniform(0.5, 4.0)
        subtitles.append((t, t + length))
        t += length * rng.random()
    slots = dialogue_gaps(subtitles, t + 30.0, min_gap=3.0, max_cue=6.0)
    assert slots and all(e - s <= 6.0 + 1e-9 for s, e in slots)
    for s, e in slots:
        assert all(e <= a or s >= b for a, b in subtitles)
    assert all(a[1] <= b[0] for a, b in zip(slots, slots[1:]))


def test_fixed_windows_and_bad_arguments() -> None:
    assert fixed_windows(20.0, 8.0) == [(0.0, 8.0), (8.0, 16.0), (16.0, 20.0)]
    assert fixed_windows(16.5, 8.0) == [(0.0, 8.0), (8.0, 16.0)]  # a last window under 1 s is dropped
    with pytest.raises(ValueError, match="min_gap"):
        dialogue_gaps([], 10.0, min_gap=5.0, max_cue=2.0)
