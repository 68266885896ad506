"""Decoding schedules: fixed batches, and recurrent batches that hold one AD per movie in each movie's order."""

from __future__ import annotations

import math
import random

import pytest

from moviead.evaluation.schedule import fixed_batches, recurrent_batches


def test_fixed_batches_chunk_in_order() -> None:
    assert list(fixed_batches([5, 6, 7, 8, 9], 2)) == [[5, 6], [7, 8], [9]]
    assert list(fixed_batches([], 3)) == []
    with pytest.raises(ValueError, match="batch_size"):
        list(fixed_batches([1], 0))


def test_recurrent_batches_fifo_refill_from_waiting_movies() -> None:
    movies = [[0, 1, 2], [10], [20, 21], [30, 31, 32, 33]]
    batches = list(recurrent_batches(movies, 2, policy="fifo"))
    # movie 1 ends after one AD, movie 2 takes its place; then movie 3 replaces whoever ends next
    assert batches == [[0, 10], [1, 20], [2, 21], [30], [31], [32], [33]]


def test_recurrent_batches_longest_first_keep_the_batch_full() -> None:
    movies = [[0, 1, 2], [10], [20, 21], [30, 31, 32, 33]]
    batches = list(recurrent_batches(movies, 2))
    # the movies with the most ADs left go first (ties: the earlier movie), so no movie is left alone at the end
    assert batches == [[0, 30], [1, 31], [20, 32], [2, 10], [21, 33]]
    assert list(recurrent_batches(movies, 2, policy="longest_first")) == batches
    with pytest.raises(ValueError, match="policy"):
        list(recurrent_batches(movies, 2, policy="random"))  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(20))
def test_recurrent_batches_longest_first_take_the_fewest_steps(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [rng.randint(1, 12) for _ in range(rng.randint(1, 20))]
    movies = [list(range(m * 100, m * 100 + n)) for m, n in enumerate(lengths)]
    b = rng.randint(1, 8)
    fewest = max(math.ceil(sum(lengths) / b), max(lengths))  # a lower bound on the steps of any schedule
    assert len(list(recurrent_batches(movies, b))) == fewest
    assert len(list(recurrent_batches(movies, b, policy="fifo"))) >= fewest


@pytest.mark.parametrize("policy", ["longest_first", "fifo"])
@pytest.mark.parametrize("batch_movies", [1, 2, 3, 8])
def test_recurrent_batches_keep_each_movie_in_order_and_one_ad_per_movie(batch_movies: int, policy: str) -> None:
    movies = [list(range(m * 100, m * 100 + n)) for m, n in enumerate([4, 1, 6, 2, 3])]
    batches = list(recurrent_batches(movies, batch_movies, policy=policy))  # type: ignore[arg-type]
    flat = [p for b in batches for p in b]
    assert sorted(flat) == sorted(p for m in movies for p in m)  # every AD once
    for batch in batches:
        assert len(batch) <= batch_movies
        assert len({p // 100 for p in batch}) == len(batch)  # never two ADs of one movie in a batch
        assert batch == sorted(batch)  # in the order of their movies
    for movie in movies:
        steps = [next(i for i, b in enumerate(batches) if p in b) for p in movie]
        assert steps == sorted(steps) and len(set(steps)) == len(steps)  # strictly later batches, in order
    if batch_movies == 1 and policy == "fifo":
        assert flat == [p for m in movies for p in m]  # one movie at a time
