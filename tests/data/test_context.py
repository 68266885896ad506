import pytest

from moviead.data.context import ContextBuilder, PredictionContext
from moviead.data.records import ADRecord, MovieAnnotations, SubtitleRecord


def _movie() -> dict[str, MovieAnnotations]:
    ads = [ADRecord("m", i, 10.0 * i, 10.0 * i + 3.0, f"ad {i}") for i in range(5)]
    subs = [
        SubtitleRecord("m", 4.0, 6.0, "s-a"),  # between AD 0 and AD 1
        SubtitleRecord("m", 9.0, 11.0, "s-b"),  # overlaps AD 1
        SubtitleRecord("m", 14.0, 15.0, "s-c"),  # between AD 1 and AD 2
        SubtitleRecord("m", 23.5, 24.0, "s-d"),  # after AD 2 ends
        SubtitleRecord("m", 1.0, 2.0, "s-0"),  # during AD 0
    ]
    return {"m": MovieAnnotations("m", ads, sorted(subs, key=lambda s: s.start))}


def test_oracle_context_is_the_previous_ground_truth_ads() -> None:
    movies = _movie()
    ctx = ContextBuilder(movies, "oracle", context_size=2, use_subtitles=False).build(movies["m"].ads[3])
    assert [item.text for item in ctx.ads] == ["ad 1", "ad 2"] and ctx.subtitles == ()


def test_first_ad_has_no_previous_ads() -> None:
    movies = _movie()
    ctx = ContextBuilder(movies, "oracle", context_size=3).build(movies["m"].ads[0])
    assert ctx.ads == () and [s.text for s in ctx.subtitles] == ["s-0"]


def test_intervening_subtitles_end_after_previous_start_and_start_before_current_end() -> None:
    movies = _movie()
    ctx = ContextBuilder(movies, "oracle", context_size=1).build(movies["m"].ads[2])  # AD 2: 20-23 s
    assert [s.text for s in ctx.subtitles] == ["s-b", "s-c"]  # end > 10 (AD 1 start), start < 23
    assert [i.text for i in ctx.in_time_order()] == ["s-b", "ad 1", "s-c"]


def test_max_subtitles_keeps_the_latest() -> None:
    movies = _movie()
    ctx = ContextBuilder(movies, "oracle", context_size=1, max_subtitles=1).build(movies["m"].ads[2])
    assert [s.text for s in ctx.subtitles] == ["s-c"]


def test_local_context_is_empty() -> None:
    movies = _movie()
    ctx = ContextBuilder(movies, "local", context_size=3).build(movies["m"].ads[3])
    assert ctx.ads == () and ctx.subtitles == () and ctx.as_text() == ""


def test_recurrent_context_uses_predictions_and_refuses_out_of_order() -> None:
    movies = _movie()
    predictions = PredictionContext(movies)
    builder = ContextBuilder(movies, "recurrent", context_size=2, use_subtitles=False, provider=predictions)
    with pytest.raises(KeyError, match="time order"):
        builder.build(movies["m"].ads[2])
    predictions.set_prediction("m", 0, "pred 0")
    predictions.set_prediction("m", 1, "pred 1")
    assert [i.text for i in builder.build(movies["m"].ads[2]).ads] == ["pred 0", "pred 1"]


def test_recurrent_without_provider_fails() -> None:
    with pytest.raises(ValueError, match="provider"):
        ContextBuilder(_movie(), "recurrent")


def test_an_ad_with_the_same_interval_is_never_context() -> None:
    ads = [ADRecord("m", 0, 0.0, 2.0, "before"), ADRecord("m", 1, 5.0, 8.0, "twin a"),
           ADRecord("m", 2, 5.0, 8.0, "twin b"), ADRecord("m", 3, 9.0, 10.0, "after")]
    subs = [SubtitleRecord("m", 1.0, 1.5, "s-early"), SubtitleRecord("m", 6.0, 7.0, "s-during")]
    movies = {"m": MovieAnnotations("m", ads, subs)}
    builder = ContextBuilder(movies, "oracle", context_size=3)
    ctx = builder.build(ads[2])
    assert [item.text for item in ctx.ads] == ["before"]  # not "twin a"
    assert [s.text for s in ctx.subtitles] == ["s-early", "s-during"]  # since "before" started, as for "twin a"
    assert builder.build(ads[1]) == ctx
    assert [item.text for item in builder.build(ads[3]).ads] == ["before", "twin a", "twin b"]
    proposal = builder.build_proposal(ads[2])
    assert [(p.ad.text if p.ad else None, p.start, p.end, p.subtitle_text) for p in proposal] == [
        ("before", 0.0, 8.0, "s-early s-during")]  # ends at the current AD's end, not at "twin b"'s start
    assert builder.build_proposal(ads[1]) == proposal
    predictions = PredictionContext(movies)
    predictions.set_prediction("m", 0, "pred 0")  # twin a not decoded yet: not needed
    recurrent = ContextBuilder(movies, "recurrent", context_size=3, use_subtitles=False, provider=predictions)
    assert [item.text for item in recurrent.build(ads[2]).ads] == ["pred 0"]
