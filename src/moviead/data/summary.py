"""What a loaded split holds: movies, ADs, durations, feature dimension and context statistics."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from moviead.data.context import ContextBuilder
from moviead.data.sources import SplitData


@dataclass(frozen=True)
class SplitSummary:
    """Counts and means for one split; ``context_*`` are means over its ADs."""

    split: str
    movies: int
    ads: int
    dropped: int
    subtitles: int
    mean_ad_seconds: float
    mean_ad_words: float
    feature_dim: int
    context_ads: float
    context_subtitles: float
    context_words: float
    with_context: float  # fraction of ADs whose context is not empty

    def as_dict(self) -> dict:
        return asdict(self)


def summarize_split(split: str, data: SplitData, context: ContextBuilder) -> SplitSummary:
    """Summarise ``data``, building every AD's context with ``context`` (a pass over text only)."""
    records = [item.record for item in data.items]
    contexts = [context.build(r) for r in records]
    mean = lambda values: float(np.mean(values)) if len(values) else 0.0  # noqa: E731
    return SplitSummary(
        split=split,
        movies=len({r.movie for r in records}),
        ads=len(records),
        dropped=data.dropped,
        subtitles=sum(len(m.subtitles) for m in data.movies.values()),
        mean_ad_seconds=mean([r.duration for r in records]),
        mean_ad_words=mean([len(r.text.split()) for r in records]),
        feature_dim=data.features.dim(),
        context_ads=mean([len(c.ads) for c in contexts]),
        context_subtitles=mean([len(c.subtitles) for c in contexts]),
        context_words=mean([len(c.as_text().split()) for c in contexts]),
        with_context=mean([bool(c.ads or c.subtitles) for c in contexts]),
    )


def format_summaries(summaries: list[SplitSummary]) -> str:
    """A fixed-width table, one column per split."""
    rows = [
        ("movies", "movies", "{:d}"),
        ("ADs", "ads", "{:d}"),
        ("dropped (past features)", "dropped", "{:d}"),
        ("subtitles", "subtitles", "{:d}"),
        ("mean AD duration (s)", "mean_ad_seconds", "{:.2f}"),
        ("mean AD words", "mean_ad_words", "{:.1f}"),
        ("feature dim", "feature_dim", "{:d}"),
        ("context ADs / AD", "context_ads", "{:.2f}"),
        ("context subtitles / AD", "context_subtitles", "{:.2f}"),
        ("context words / AD", "context_words", "{:.1f}"),
        ("ADs with context", "with_context", "{:.1%}"),
    ]
    width = max(len(label) for label, _, _ in rows) + 2
    lines = ["".ljust(width) + "".join(s.split.rjust(10) for s in summaries)]
    for label, key, fmt in rows:
        lines.append(label.ljust(width) + "".join(fmt.format(getattr(s, key)).rjust(10) for s in summaries))
    return "\n".join(lines)


def format_overlaps(overlaps: dict[tuple[str, str], list[str]], shown: int = 10) -> str:
    """One line per pair of splits sharing movies (``val/test share 2 movie(s): a, b``), for ``data-summary``."""
    lines = []
    for (first, second), movies in overlaps.items():
        more = f", ... ({len(movies) - shown} more)" if len(movies) > shown else ""
        lines.append(f"{first}/{second} share {len(movies)} movie(s): {', '.join(movies[:shown])}{more}")
    fix = ("model selection and scores need disjoint splits: fix the split file or the data.mad.*_split keys "
           "(data.mad.val_split=null carves validation from train)")
    return "; ".join(lines) + f". Fix: {fix}"
