"""Which ADs are decoded together.

- *local* and *oracle*: contexts do not depend on predictions, so any order works; batches of ``batch_size`` ADs in
  data-set order.
- *recurrent*: AD i of a movie needs the model's predictions for the ADs before it, so each movie is decoded in time
  order, one AD at a time; **batched across movies**: every step takes the next AD of up to ``batch_movies``
  movies. Nothing but the predictions carries over from one step to the next (each batch is collated and prefilled
  afresh), so any movie may take any slot at any step. The default policy, *longest first*, gives each step's slots
  to the movies with the most ADs left (Hu's rule for chains of unit jobs): it decodes in the fewest steps possible,
  ``max(ceil(ADs / B), longest movie)``, because no long movie is left to run alone at the end. *fifo* keeps a movie
  in its slot until it runs out, then the next waiting movie takes the slot; with movies of unequal length its last
  batches shrink. Either way each AD sees the same context, so the predictions equal decoding one movie at a time,
  up to the rounding of batched floating-point work (padding lengths change sentence features and scores in their
  last bits, which can flip a near-tie of an untrained model's DSM).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from typing import Literal

RecurrentPolicy = Literal["longest_first", "fifo"]


def fixed_batches(pending: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """``pending`` (data-set positions) in consecutive chunks of ``batch_size``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, len(pending), batch_size):
        yield list(pending[start : start + batch_size])


def recurrent_batches(
    movies: Sequence[Sequence[int]], batch_movies: int, policy: RecurrentPolicy = "longest_first"
) -> Iterator[list[int]]:
    """Batches holding at most one AD per movie, each movie's ADs in the order given.

    Args:
        movies: per movie, the data-set positions of its ADs still to decode, in time order.
        batch_movies: how many movies are decoded side by side (B).
        policy: ``longest_first`` (each step, the movies with the most ADs left; ties to the earlier movie) or
            ``fifo`` (a movie keeps its slot until it runs out; waiting movies take free slots in order).

    Yields:
        lists of positions, in the order of their movies in ``movies``; position k of a movie is only yielded after
        its position k-1 was yielded in an earlier batch.
    """
    if batch_movies < 1:
        raise ValueError(f"batch_movies must be >= 1, got {batch_movies}")
    if policy == "fifo":
        yield from _fifo_batches(movies, batch_movies)
        return
    if policy != "longest_first":
        raise ValueError(f"unknown recurrent schedule policy {policy!r}: longest_first or fifo")
    queues = [deque(m) for m in movies if len(m)]
    while queues:
        chosen = sorted(sorted(range(len(queues)), key=lambda k: -len(queues[k]))[:batch_movies])  # stable: ties
        yield [queues[k].popleft() for k in chosen]
        queues = [queue for queue in queues if queue]


def _fifo_batches(movies: Sequence[Sequence[int]], batch_movies: int) -> Iterator[list[int]]:
    """The ``fifo`` policy of :func:`recurrent_batches`."""
    waiting = deque(deque(m) for m in movies if len(m))
    active: list[deque[int]] = []
    while waiting or active:
        while waiting and len(active) < batch_movies:
            active.append(waiting.popleft())
        yield [queue.popleft() for queue in active]
        active = [queue for queue in active if queue]
