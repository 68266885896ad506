"""The DSM proposal (LoCo-MAD eq. 5-10): which ADs and subtitles each item holds, on a hand-made movie."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from moviead.data.context import ContextBuilder, ContextItem, PredictionContext, ProposalItem
from moviead.data.datasets import ADClipDataset, ClipItem
from moviead.data.frames import FrameSampler
from moviead.data.records import ADRecord, MovieAnnotations, SubtitleRecord

ADS = [(10.0, 13.0), (20.0, 23.0), (30.0, 34.0), (40.0, 43.0)]
SUBTITLES = [
    (2.0, 4.0, "pre"),  # before AD 0
    (11.0, 12.0, "in0"),  # inside AD 0
    (15.0, 17.0, "a"),  # between AD 0 and AD 1
    (18.0, 21.0, "b"),  # starts before AD 1, ends inside it
    (21.5, 22.5, "in1"),  # inside AD 1
    (25.0, 26.0, "c"),
    (32.0, 33.0, "in2"),  # inside AD 2
    (36.0, 37.0, "d"),
    (41.0, 42.0, "in3"),  # inside AD 3
]


def _movies() -> dict[str, MovieAnnotations]:
    ads = [ADRecord("m", i, start, end, f"ad {i}") for i, (start, end) in enumerate(ADS)]
    subs = [SubtitleRecord("m", start, end, text) for start, end, text in SUBTITLES]
    return {"m": MovieAnnotations("m", ads, subs)}


def _summary(items: list[ProposalItem]) -> list[tuple[str | None, list[str], float, float]]:
    return [(i.ad.text if i.ad else None, [s.text for s in i.subtitles], i.start, i.end) for i in items]


def test_items_hold_each_previous_ad_and_the_subtitles_starting_after_it() -> None:
    movies = _movies()
    items = ContextBuilder(movies, "oracle", context_size=3).build_proposal(movies["m"].ads[2])
    assert _summary(items) == [
        (None, ["pre"], 2.0, 10.0),  # leading item: the window reaches the movie's start
        ("ad 0", ["in0", "a", "b"], 10.0, 20.0),  # starts in [AD0.start, AD1.start)
        ("ad 1", ["in1", "c", "in2"], 20.0, 34.0),  # starts in [AD1.start, AD2.end): "in2" is inside AD 2
    ]
    assert [i.ad.index for i in items[1:]] == [0, 1]
    assert [i.feature_text for i in items] == ["pre", "ad 0", "ad 1"]
    assert items[1].subtitle_text == "in0 a b"


def test_first_ad_has_only_the_leading_item_up_to_its_end() -> None:
    movies = _movies()
    items = ContextBuilder(movies, "oracle", context_size=3).build_proposal(movies["m"].ads[0])
    assert _summary(items) == [(None, ["pre", "in0"], 2.0, 13.0)]
    assert items[0].feature_text == "pre in0"


def test_window_is_the_last_context_size_ads_with_leading_item_at_the_start() -> None:
    movies = _movies()
    items = ContextBuilder(movies, "oracle", context_size=2).build_proposal(movies["m"].ads[3])
    assert _summary(items) == [("ad 1", ["in1", "c"], 20.0, 30.0), ("ad 2", ["in2", "d", "in3"], 30.0, 43.0)]
    exactly = ContextBuilder(movies, "oracle", context_size=3).build_proposal(movies["m"].ads[3])
    assert [i.feature_text for i in exactly] == ["ad 0", "ad 1", "ad 2"]  # full window: no room for "pre"
    larger = ContextBuilder(movies, "oracle", context_size=10).build_proposal(movies["m"].ads[3])
    assert [i.feature_text for i in larger] == ["pre", "ad 0", "ad 1", "ad 2"]  # room: the leading item stays
    assert larger[1:] == exactly


def test_proposal_holds_at_most_context_size_items() -> None:
    """More than L_c previous ADs and subtitles before the first AD: exactly L_c items, each with an AD; the
    subtitles before the window's oldest AD ("pre", and AD 0's "in0 a b" for L_c = 2) are dropped."""
    movies = _movies()
    for size in (1, 2, 3):
        items = ContextBuilder(movies, "oracle", context_size=size).build_proposal(movies["m"].ads[3])
        assert len(items) == size
        assert [i.ad.index for i in items if i.ad is not None] == list(range(3 - size, 3))
    two = ContextBuilder(movies, "oracle", context_size=2).build_proposal(movies["m"].ads[2])
    assert _summary(two) == [("ad 0", ["in0", "a", "b"], 10.0, 20.0), ("ad 1", ["in1", "c", "in2"], 20.0, 34.0)]
    one = ContextBuilder(movies, "oracle", context_size=1).build_proposal(movies["m"].ads[0])
    assert _summary(one) == [(None, ["pre", "in0"], 2.0, 13.0)]  # no previous AD: the leading item fits


def test_max_subtitles_keeps_the_last_of_each_item() -> None:
    movies = _movies()
    items = ContextBuilder(movies, "oracle", context_size=3, max_subtitles=1).build_proposal(movies["m"].ads[2])
    assert [[s.text for s in i.subtitles] for i in items] == [["pre"], ["b"], ["in2"]]


def test_without_subtitles_items_hold_ads_only_and_no_leading_item() -> None:
    movies = _movies()
    builder = ContextBuilder(movies, "oracle", context_size=3, use_subtitles=False)
    assert _summary(builder.build_proposal(movies["m"].ads[2])) == [("ad 0", [], 10.0, 20.0), ("ad 1", [], 20.0, 34.0)]
    assert builder.build_proposal(movies["m"].ads[0]) == []


def test_local_mode_has_no_proposal() -> None:
    movies = _movies()
    assert ContextBuilder(movies, "local", context_size=3).build_proposal(movies["m"].ads[2]) == []


def test_recurrent_items_use_the_predictions() -> None:
    movies = _movies()
    predictions = PredictionContext(movies)
    builder = ContextBuilder(movies, "recurrent", context_size=2, provider=predictions)
    with pytest.raises(KeyError, match="time order"):
        builder.build_proposal(movies["m"].ads[2])
    predictions.set_prediction("m", 0, "pred 0")
    predictions.set_prediction("m", 1, "pred 1")
    items = builder.build_proposal(movies["m"].ads[2])
    assert _summary(items) == [  # a full window of 2: the leading subtitles are dropped
        ("pred 0", ["in0", "a", "b"], 10.0, 20.0),
        ("pred 1", ["in1", "c", "in2"], 20.0, 34.0),
    ]
    assert items[0].ad == ContextItem("ad", 10.0, 13.0, "pred 0", 0)


class _ArrayStore:
    """An in-memory feature store: frame t of movie "m" is the vector filled with t."""

    path = Path("memory")

    def movies(self) -> list[str]:
        return ["m"]

    def num_frames(self, movie: str) -> int:
        return 250

    def dim(self) -> int:
        return 2

    def read(self, movie: str, indices: np.ndarray) -> np.ndarray:
        return np.repeat(indices[:, None].astype(np.float32), 2, axis=1)


def test_dataset_carries_the_proposal_only_when_asked() -> None:
    movies = _movies()
    builder = ContextBuilder(movies, "oracle", context_size=3)
    items = [ClipItem(ad, "m", 0.0, 250) for ad in movies["m"].ads]
    sampler = FrameSampler(fps=5.0, num_frames=4)
    with_proposal = ADClipDataset(items, _ArrayStore(), sampler, builder, with_proposal=True)[2]
    assert with_proposal.proposal == tuple(builder.build_proposal(movies["m"].ads[2]))
    assert len(with_proposal.proposal) == 3
    assert with_proposal.context == builder.build(movies["m"].ads[2])
    assert with_proposal.frames[:, 0].tolist() == [150.0, 156.0, 163.0, 169.0]  # AD 2: 30-34 s at 5 fps
    assert ADClipDataset(items, _ArrayStore(), sampler, builder)[2].proposal == ()
