"""Where an AD can go: dialogue-free gaps of a movie's timeline (``moviead describe``).

With subtitles, the gaps are the stretches of at least ``min_gap`` seconds that no subtitle covers (overlapping
subtitles are merged first; ``margin`` seconds are kept clear after and before each line). Without subtitles the
whole timeline is cut into fixed windows. Either way a stretch longer than ``max_cue`` seconds is cut into equal
parts of at most ``max_cue`` seconds, one AD each.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def merge_intervals(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted, overlapping or touching intervals joined."""
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if end < start:
            raise ValueError(f"interval ends before it starts: ({start}, {end})")
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def split_interval(start: float, end: float, max_cue: float) -> list[tuple[float, float]]:
    """``[start, end)`` cut into the fewest equal parts no longer than ``max_cue``."""
    if max_cue <= 0:
        raise ValueError(f"max_cue must be > 0, got {max_cue}")
    parts = max(1, math.ceil((end - start) / max_cue - 1e-9))
    step = (end - start) / parts
    return [(start + i * step, end if i == parts - 1 else start + (i + 1) * step) for i in range(parts)]


def dialogue_gaps(
    subtitles: Iterable[tuple[float, float]],
    duration: float,
    min_gap: float = 2.0,
    max_cue: float = 8.0,
    margin: float = 0.2,
) -> list[tuple[float, float]]:
    """The AD slots of a movie of ``duration`` seconds given its subtitle intervals (seconds).

    Returns:
        ``(start, end)`` slots in time order, each inside ``[0, duration]``, none overlapping a subtitle (nor its
        ``margin``), each at least ``min_gap`` long unless it is part of a longer gap split by ``max_cue``.
    """
    if duration <= 0:
        raise ValueError(f"duration must be > 0, got {duration}")
    if min_gap <= 0 or max_cue < min_gap:
        raise ValueError(f"need 0 < min_gap <= max_cue, got min_gap={min_gap}, max_cue={max_cue}")
    busy = merge_intervals((max(0.0, s - margin), min(duration, e + margin)) for s, e in subtitles if e > 0)
    slots: list[tuple[float, float]] = []
    cursor = 0.0
    for start, end in [*busy, (duration, duration)]:
        if start - cursor >= min_gap:
            slots.extend(split_interval(cursor, start, max_cue))
        cursor = max(cursor, end)
    return slots


def fixed_windows(duration: float, window: float = 8.0) -> list[tuple[float, float]]:
    """The timeline in consecutive windows of ``window`` seconds (the last one shorter, dropped under 1 s)."""
    if window <= 0:
        raise ValueError(f"window must be > 0, got {window}")
    slots = []
    start = 0.0
    while start < duration:
        end = min(duration, start + window)
        if end - start >= 1.0 or not slots:
            slots.append((start, end))
        start = end
    return slots
