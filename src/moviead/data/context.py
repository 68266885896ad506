"""Context of an AD (SPEC §3.2, LoCo-MAD §3.2): previous ADs of the same movie and intervening subtitles.

- *local*: no context at all (neither ADs nor subtitles).
- *oracle*: the previous ``context_size`` ground-truth ADs.
- *recurrent*: the model's own earlier outputs, supplied through a :class:`ContextProvider` that the
  evaluator fills as it decodes (:class:`PredictionContext`).

Subtitles in oracle and recurrent mode: those that end after the previous AD's start and start before the current AD's
end (for the first AD of a movie, every subtitle before its end), the last ``max_subtitles`` of them.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Protocol, Sequence

from moviead.config import ContextMode
from moviead.data.records import ADRecord, MovieAnnotations, SubtitleRecord

MAX_SUBTITLE_SECONDS = 60.0  # no subtitle lasts longer; bounds the backward search for intervening lines


@dataclass(frozen=True)
class ContextItem:
    """One piece of context: a previous AD (``index`` ≥ 0) or a subtitle (``index`` = -1)."""

    kind: str  # "ad" or "subtitle"
    start: float
    end: float
    text: str
    index: int = -1


@dataclass(frozen=True)
class ADContext:
    """The context of one AD: previous ADs and intervening subtitles, each in time order."""

    ads: tuple[ContextItem, ...] = ()
    subtitles: tuple[ContextItem, ...] = ()

    def in_time_order(self) -> list[ContextItem]:
        return sorted(self.ads + self.subtitles, key=lambda item: (item.start, item.end))

    def as_text(self, separator: str = " ") -> str:
        """All context texts in time order, joined; the plain-text form used for tokenisation."""
        return separator.join(item.text for item in self.in_time_order())


class ContextProvider(Protocol):
    """Supplies the texts of the ADs that precede ``record`` (at most ``count``, oldest first)."""

    def previous_ads(self, record: ADRecord, count: int) -> list[ContextItem]: ...


class GroundTruthContext:
    """Oracle context: ground-truth ADs of the same movie."""

    def __init__(self, movies: dict[str, MovieAnnotations]) -> None:
        self.movies = movies

    def previous_ads(self, record: ADRecord, count: int) -> list[ContextItem]:
        ads = self.movies[record.movie].ads
        earlier = ads[max(0, record.index - count) : record.index]
        return [ContextItem("ad", ad.start, ad.end, ad.text, ad.index) for ad in earlier]


class PredictionContext:
    """Recurrent context: the model's own predictions, filled in by the evaluator as it decodes.

    Asking for the context of AD i before the predictions of the ``count`` ADs before it exist is an
    error, so an evaluator cannot silently decode out of order.
    """

    def __init__(self, movies: dict[str, MovieAnnotations]) -> None:
        self.movies = movies
        self.predictions: dict[tuple[str, int], str] = {}

    def set_prediction(self, movie: str, index: int, text: str) -> None:
        self.predictions[(movie, index)] = text

    def previous_ads(self, record: ADRecord, count: int) -> list[ContextItem]:
        ads = self.movies[record.movie].ads
        items = []
        for ad in ads[max(0, record.index - count) : record.index]:
            key = (ad.movie, ad.index)
            if key not in self.predictions:
                raise KeyError(
                    f"recurrent context for {record.movie}#{record.index} needs the prediction of AD {ad.index} first; "
                    "decode each movie's ADs in time order"
                )
            items.append(ContextItem("ad", ad.start, ad.end, self.predictions[key], ad.index))
        return items


class _SubtitleIndex:
    """Subtitles of one movie sorted by start, searchable by time."""

    def __init__(self, subtitles: Sequence[SubtitleRecord]) -> None:
        self.subtitles = sorted(subtitles, key=lambda s: (s.start, s.end))
        self.starts = [s.start for s in self.subtitles]

    def intervening(self, after: float, before: float, limit: int) -> list[SubtitleRecord]:
        """Subtitles with ``end > after`` and ``start < before``, the last ``limit`` of them."""
        hi = bisect.bisect_left(self.starts, before)
        lo = bisect.bisect_left(self.starts, after - MAX_SUBTITLE_SECONDS) if after > float("-inf") else 0
        found = [s for s in self.subtitles[lo:hi] if s.end > after]
        return found[-limit:] if limit > 0 else []


class ContextBuilder:
    """Assembles :class:`ADContext` for records of the given movies.

    Args:
        movies: every movie's ADs (indexed) and subtitles.
        mode: local, oracle or recurrent.
        context_size: number of previous ADs.
        use_subtitles: add intervening subtitles.
        max_subtitles: keep the last this many intervening subtitles.
        provider: the source of previous ADs; default ground truth for oracle. Recurrent needs one (a
            :class:`PredictionContext`) and fails without it.
    """

    def __init__(
        self,
        movies: dict[str, MovieAnnotations],
        mode: ContextMode | str = ContextMode.oracle,
        context_size: int = 3,
        use_subtitles: bool = True,
        max_subtitles: int = 8,
        provider: ContextProvider | None = None,
    ) -> None:
        self.movies = movies
        self.mode = ContextMode(mode)
        self.context_size = context_size
        self.use_subtitles = use_subtitles
        self.max_subtitles = max_subtitles
        if provider is None and self.mode == ContextMode.oracle:
            provider = GroundTruthContext(movies)
        if provider is None and self.mode == ContextMode.recurrent:
            raise ValueError("recurrent context needs a provider of the model's predictions (PredictionContext)")
        self.provider = provider
        self._subtitles = {movie: _SubtitleIndex(ann.subtitles) for movie, ann in movies.items()}

    def build(self, record: ADRecord) -> ADContext:
        """The context of ``record``; empty in local mode (no previous ADs, no subtitles)."""
        if self.mode == ContextMode.local:
            return ADContext()
        ads: tuple[ContextItem, ...] = ()
        if self.context_size > 0:
            assert self.provider is not None
            ads = tuple(self.provider.previous_ads(record, self.context_size))
        subtitles: tuple[ContextItem, ...] = ()
        if self.use_subtitles and record.movie in self._subtitles:
            movie_ads = self.movies[record.movie].ads
            after = movie_ads[record.index - 1].start if record.index > 0 else float("-inf")
            found = self._subtitles[record.movie].intervening(after, record.end, self.max_subtitles)
            subtitles = tuple(ContextItem("subtitle", s.start, s.end, s.text) for s in found)
        return ADContext(ads=ads, subtitles=subtitles)
