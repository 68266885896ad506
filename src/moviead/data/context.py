"""Context of an AD (SPEC §3.2, LoCo-MAD §3.2): previous ADs of the same movie and intervening subtitles.

- *local*: no context at all (neither ADs nor subtitles).
- *oracle*: the previous ``context_size`` ground-truth ADs.
- *recurrent*: the model's own earlier outputs, supplied through a :class:`ContextProvider` that the
  evaluator fills as it decodes (:class:`PredictionContext`).

An AD is never in its own context: ADs with the same interval as the current one (a second description of the same
moment, such as LSMDC's duplicated clips) are not previous ADs; the window ends before the first of them.

Context sets: when an AD has a ``context_group`` (LSMDC's multi-sentence sets of 5 consecutive clips), its set is a
movie of its own for context: previous ADs (oracle, recurrent and the DSM proposal) come from the same set only, the
first AD of a set has none, and its subtitles are those of a movie's first AD. The ADs of a set must be consecutive
in the movie's time order (the LSMDC loader makes them so). Without a group (MAD, toy, Storyboard) every earlier AD
of the movie may be context.

Subtitles in oracle and recurrent mode: those that end after the previous AD's start and start before the current AD's
end (for the first AD of a movie, every subtitle before its end), the last ``max_subtitles`` of them.

:meth:`ContextBuilder.build_proposal` gives the same context as LoCo-MAD's DSM proposal: one
:class:`ProposalItem` per previous AD, each holding that AD and the subtitles that start after it (SPEC §5.2), at most
``context_size`` items.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from moviead.data.records import ADRecord, ContextMode, MovieAnnotations, SubtitleRecord

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


@dataclass(frozen=True)
class ProposalItem:
    """One item of the DSM proposal (LoCo-MAD eq. 5-10): a previous AD and the subtitles that start after it.

    Attributes:
        ad: the previous AD (ground truth or prediction); None for the leading item of a movie's start, which
            holds only the subtitles before the movie's first AD.
        subtitles: the item's subtitles in time order.
        start: start of the interval the item covers: its AD's start (leading item: its first subtitle's start).
        end: end of that interval (exclusive for subtitle starts): the next AD's start, or the current AD's end.
        feature_source: the text its sentence feature is computed from when not its own (a training example whose
            names were swapped keeps the data's text here: :mod:`moviead.data.name_swap`).
    """

    ad: ContextItem | None
    subtitles: tuple[ContextItem, ...]
    start: float
    end: float
    feature_source: str | None = None

    @property
    def subtitle_text(self) -> str:
        """The item's subtitles joined by a space ("" when it has none)."""
        return " ".join(item.text for item in self.subtitles)

    @property
    def feature_text(self) -> str:
        """The text its sentence feature is computed from: its AD's text, or its subtitles when it has no AD (or
        :attr:`feature_source` when set)."""
        if self.feature_source is not None:
            return self.feature_source
        return self.ad.text if self.ad is not None else self.subtitle_text


def previous_end(ads: Sequence[ADRecord], record: ADRecord) -> int:
    """The index after the last AD that may be context of ``record``: ADs sort by ``(start, end)``, so the ADs
    with ``record``'s interval sit just before it and are skipped."""
    end = record.index
    while end > 0 and (ads[end - 1].start, ads[end - 1].end) == (record.start, record.end):
        end -= 1
    return end


def previous_start(ads: Sequence[ADRecord], record: ADRecord, end: int) -> int:
    """The index of the oldest AD that may be context of ``record``, given ``end`` (:func:`previous_end`): 0 without a
    ``context_group``; otherwise the first of the ADs just before ``end`` that share ``record``'s group, so that no AD
    of another set (nor anything before one) is context."""
    if record.context_group is None:
        return 0
    start = end
    while start > 0 and ads[start - 1].context_group == record.context_group:
        start -= 1
    return start


def previous_window(ads: Sequence[ADRecord], record: ADRecord, count: int) -> Sequence[ADRecord]:
    """The ADs that are the context of ``record`` (at most ``count``, oldest first): the ADs just before it in its
    movie (``ads``, sorted by ``(start, end)``), without those with its interval and, when it has a
    ``context_group``, without those of another set."""
    end = previous_end(ads, record)
    start = previous_start(ads, record, end)
    return ads[max(start, end - count) : end]


class ContextProvider(Protocol):
    """Supplies the texts of the ADs that precede ``record`` (at most ``count``, oldest first)."""

    def previous_ads(self, record: ADRecord, count: int) -> list[ContextItem]: ...


class GroundTruthContext:
    """Oracle context: ground-truth ADs of the same movie (and of the same set, see :func:`previous_window`)."""

    def __init__(self, movies: dict[str, MovieAnnotations]) -> None:
        self.movies = movies

    def previous_ads(self, record: ADRecord, count: int) -> list[ContextItem]:
        earlier = previous_window(self.movies[record.movie].ads, record, count)
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
        items = []
        for ad in previous_window(self.movies[record.movie].ads, record, count):
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

    def starting_in(self, after: float, before: float, limit: int) -> list[SubtitleRecord]:
        """Subtitles with ``after <= start < before``, the last ``limit`` of them."""
        lo = bisect.bisect_left(self.starts, after) if after > float("-inf") else 0
        hi = bisect.bisect_left(self.starts, before)
        return self.subtitles[lo:hi][-limit:] if limit > 0 else []


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
            end = previous_end(movie_ads, record)
            after = movie_ads[end - 1].start if end > previous_start(movie_ads, record, end) else float("-inf")
            found = self._subtitles[record.movie].intervening(after, record.end, self.max_subtitles)
            subtitles = tuple(ContextItem("subtitle", s.start, s.end, s.text) for s in found)
        return ADContext(ads=ads, subtitles=subtitles)

    def build_proposal(self, record: ADRecord) -> list[ProposalItem]:
        """The DSM proposal of ``record``, oldest item first; empty in local mode.

        Item j (one per previous AD of the window, the last ``context_size`` ADs before ``record``) holds AD j from
        the provider and the subtitles starting in ``[AD_j.start, AD_{j+1}.start)`` (for the last one,
        ``[AD_{i-1}.start, AD_i.end)``). When the window reaches the movie's first AD with room to spare (fewer
        than ``context_size`` previous ADs), a leading item without AD holds the subtitles starting before it (for
        the first AD itself: before its end); it is left out when there are none. The proposal thus holds at most
        ``context_size`` items (the DSM's L_c): when the window is full, the subtitles before its oldest AD are
        dropped, as are those of every AD older than the window. Each item keeps its last ``max_subtitles``
        subtitles (none without ``use_subtitles``). With a ``context_group`` the set's first AD plays the part of
        the movie's first AD.
        """
        if self.mode == ContextMode.local:
            return []
        previous: list[ContextItem] = []
        if self.context_size > 0:
            assert self.provider is not None
            previous = list(self.provider.previous_ads(record, self.context_size))
        ads = self.movies[record.movie].ads
        index = self._subtitles.get(record.movie) if self.use_subtitles else None

        def subtitles(after: float, before: float) -> tuple[ContextItem, ...]:
            if index is None:
                return ()
            found = index.starting_in(after, before, self.max_subtitles)
            return tuple(ContextItem("subtitle", s.start, s.end, s.text) for s in found)

        items: list[ProposalItem] = []
        own = previous_end(ads, record)
        origin = previous_start(ads, record, own)
        first = previous[0].index if previous else own
        if first == origin and len(previous) < self.context_size:  # room for it: at most context_size items
            bound = ads[origin].start if previous else record.end
            leading = subtitles(float("-inf"), bound)
            if leading:
                items.append(ProposalItem(None, leading, leading[0].start, bound))
        for ad in previous:
            end = ads[ad.index + 1].start if ad.index + 1 < own else record.end
            items.append(ProposalItem(ad, subtitles(ads[ad.index].start, end), ads[ad.index].start, end))
        return items
