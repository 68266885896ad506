"""Which ADs are decoded together.

- *local* and *oracle*: contexts do not depend on predictions, so any order works; batches of ``batch_size`` ADs in
  data-set order.
- *recurrent*: AD i of a movie needs the model's predictions for the ADs before it, so each movie is decoded in time
  order, one AD at a time; **batched across movies**: every step takes the next AD of up to ``batch_movies``
  movies. A movie that runs out of ADs leaves the batch and the next waiting movie takes its place, so batches stay
  full until the last movies. The result equals decoding one movie at a time (each AD sees the same context).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence


def fixed_batches(pending: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """``pending`` (data-set positions) in consecutive chunks of ``batch_size``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, len(pending), batch_size):
        yield list(pending[start : start + batch_size])


def recurrent_batches(movies: Sequence[Sequence[int]], batch_movies: int) -> Iterator[list[int]]:
    """Batches holding at most one AD per movie, each movie's ADs in the order given.

    Args:
        movies: per movie, the data-set positions of its ADs still to decode, in time order.
        batch_movies: how many movies are decoded side by side (B).

    Yields:
        lists of positions; position k of a movie is only yielded after its position k-1 was yielded in an
        earlier batch.
    """
    if batch_movies < 1:
        raise ValueError(f"batch_movies must be >= 1, got {batch_movies}")
    waiting = deque(deque(m) for m in movies if len(m))
    active: list[deque[int]] = []
    while waiting or active:
        while waiting and len(active) < batch_movies:
            active.append(waiting.popleft())
        yield [queue.popleft() for queue in active]
        active = [queue for queue in active if queue]
