"""What ``moviead describe`` does, callable from Python (``cli.py`` only parses arguments).

A film's frame features (+ its subtitles), or the film file itself (``film``: the features extracted into a cache
beside the output and the subtitles read from the file's subtitle stream, see
:mod:`moviead.evaluation.film_input`) → AD slots in the dialogue-free gaps → recurrent decoding, each AD fitted
to its gap (:mod:`moviead.evaluation.budget`: a word budget from the cue's duration and ``words_per_second``, beams
within it preferred, an overflow cut at a clause boundary; repeated 3-grams blocked by default) →
``<movie>.vtt``, ``<movie>.srt`` and ``<movie>.ad.jsonl`` in the output folder; with ``audio`` also the spoken
track ``<movie>.ad.wav`` (and with ``film_audio`` the ducked mix ``<movie>.mix.wav``) through
:mod:`moviead.speech`, and with ``html`` the preview page (:mod:`moviead.evaluation.preview`).

The summary (:class:`~moviead.evaluation.budget.RateFigures`): cues, share over the rate, mean words per second and
repeated 3-grams. Without speech "over the rate" is the word count against the budget; with speech it is the
measured speech: an AD whose speech needed a raised rate or a cut to fit its cue is over.

The written track never holds a cue without words: an empty or whitespace-only prediction is left out of the
``.vtt``, ``.srt`` and ``.ad.jsonl`` files (it stays in ``predictions.jsonl``) and counted in the report's
``empty``. Cue times are rounded to the millisecond (:func:`moviead.export.round_ms`) in every file, so the
JSONL's ``start`` / ``end`` are the times the WebVTT and SRT files show.

``run.json`` holds the content hashes of :func:`moviead.evaluation.identity.content_identity` (checkpoint,
config, features + movie, subtitles): a rerun into the same ``--out`` after any of them changed is refused, naming
what changed; ``--restart`` starts over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from moviead.config import ContextMode
from moviead.data.datasets import ClipItem
from moviead.data.features import open_feature_store
from moviead.data.formats.srt import fit_subtitles_to_film, read_subtitle_file
from moviead.data.frames import interval_frames
from moviead.data.records import ADRecord, MovieAnnotations
from moviead.data.sources import SplitData
from moviead.evaluation.budget import NO_REPEAT_NGRAM, WORDS_PER_SECOND, rate_figures
from moviead.evaluation.commands import resolve_checkpoint
from moviead.evaluation.decode import DecodeSettings, decode_split
from moviead.evaluation.film_input import FilmSource
from moviead.evaluation.gaps import dialogue_gaps, fixed_windows
from moviead.evaluation.identity import content_identity
from moviead.export import cues_from_rows, round_ms, write_jsonl, write_movie_subtitles
from moviead.recipes.checkpoint import load_captioner


@dataclass
class DescribeRequest:
    """The arguments of ``moviead describe`` (see ``moviead describe --help``)."""

    features: str | None  # None: extracted from ``film`` into ``<out>/<movie>.features.h5``
    movie: str
    checkpoint: str
    out: str
    subtitles: str | None = None
    min_gap: float = 2.0
    max_cue: float = 8.0
    window: float = 8.0
    decode: DecodeSettings = field(default_factory=DecodeSettings)
    config: Sequence[str] = ()  # key=value overrides of the checkpoint's config (e.g. data.fps=5)
    restart: bool = False
    words_per_second: float = WORDS_PER_SECOND  # speaking rate of the word budgets
    no_repeat_ngram: int = NO_REPEAT_NGRAM  # 0: off
    audio: bool = False  # also speak the track: <movie>.ad.wav
    film_audio: str | None = None  # with audio: the programme, ducked under the AD in <movie>.mix.wav
    duck_db: float = 12.0
    html: bool = False  # also write the preview page
    video: str | None = None  # the film, for the preview page
    film: FilmSource | None = None  # without ``features``: the film file they are extracted from


def film_slots(request: DescribeRequest, fps: float, feature_dim: int) -> SplitData:
    """The AD slots of one film as a split: dialogue-free gaps (or fixed windows), its subtitles, its features."""
    assert request.features is not None, "features are extracted first (prepare_film)"
    store = open_feature_store(request.features, feature_dim)
    if request.movie not in store.movies():
        known = store.movies()
        raise ValueError(f"{request.features} has no features for {request.movie!r} (it has {known[:10]}"
                       f"{' ...' if len(known) > 10 else ''}); pass --movie with one of them")
    length = store.num_frames(request.movie)
    duration = length / fps
    subtitles = read_subtitle_file(request.subtitles, request.movie) if request.subtitles else []
    subtitles = fit_subtitles_to_film(subtitles, duration, request.subtitles) if request.subtitles else []
    if request.subtitles:
        slots = dialogue_gaps([(s.start, s.end) for s in subtitles], duration, request.min_gap, request.max_cue)
    else:
        slots = fixed_windows(duration, request.window)
    slots = [(s, e) for s, e in slots if interval_frames(s, e, fps)[1] < length]
    ads = [ADRecord(request.movie, i, start, end, "") for i, (start, end) in enumerate(slots)]
    movies = {request.movie: MovieAnnotations(request.movie, ads, subtitles)}
    items = [ClipItem(ad, request.movie, 0.0, length) for ad in ads]
    return SplitData(movies=movies, items=items, features=store)


def describe(request: DescribeRequest, synthesiser: Any = None) -> dict[str, Any]:
    """Write an AD track for one film (``synthesiser``: the speech engine of ``audio``, default eSpeak NG).

    Returns:
        ``cues`` (their number), ``empty`` (predictions without words, left out of the track), ``files`` (the
        paths written), ``seconds`` (decoding time), ``figures`` (:class:`RateFigures`, of the cues written) and, with
        ``audio``, ``speech`` (the :class:`~moviead.speech.commands.SpeakReport`).

    Raises:
        KeyError: the features hold no such movie.
        ValueError: no gap to describe, or a bad speaking rate.
        The errors of :func:`moviead.speech.commands.speak` with ``audio``.
    """
    if not request.words_per_second > 0:
        raise ValueError(f"--words-per-second must be above 0, got {request.words_per_second}")
    if request.no_repeat_ngram < 0:
        raise ValueError(f"--no-repeat-ngram must be >= 0 (0: off), got {request.no_repeat_ngram}")
    if request.film_audio and not request.audio:
        raise ValueError("--film-audio needs --audio (the mix is made from the spoken AD track)")
    checkpoint = resolve_checkpoint(request.checkpoint)
    parts, cfg = load_captioner(checkpoint, list(request.config))
    fps = float(cfg.data.fps)
    if request.features is None:
        if request.film is None:
            raise ValueError("give the film's frame features (--features FILE.h5) or the film itself (--video FILM)")
        from moviead.evaluation.film_input import prepare_film

        request = prepare_film(request, fps, int(cfg.data.feature_dim))
    assert request.features is not None
    data = film_slots(request, fps, int(cfg.data.feature_dim))
    if not data.items:
        raise ValueError(f"no dialogue-free gap of at least {request.min_gap} s in {request.movie}: lower --min-gap")
    out = Path(request.out)
    settings = replace(request.decode, mode=ContextMode.recurrent, batch_movies=1,
                       words_per_second=request.words_per_second, no_repeat_ngram=request.no_repeat_ngram)
    info = {"checkpoint": str(checkpoint), "features": str(request.features), "movie": request.movie,
            "subtitles": request.subtitles, "min_gap": request.min_gap, "max_cue": request.max_cue,
            **content_identity(checkpoint, cfg, features=request.features, movie=request.movie,
                               subtitles=request.subtitles)}
    result = decode_split(parts, cfg, data, out, settings, info, restart=request.restart)
    rows, empty = track_rows(result.rows)
    paths = write_movie_subtitles(cues_from_rows(rows) or {request.movie: []}, out, ("vtt", "srt"))[request.movie]
    track = out / f"{paths[0].stem}.ad.jsonl"
    write_jsonl(({"start": r["start"], "end": r["end"], "text": r["pred"]} for r in rows), track)
    report: dict[str, Any] = {"cues": len(rows), "empty": empty, "files": [*paths, track], "seconds": result.seconds}
    spoken_over = None
    if request.audio:
        speech = _speak(request, track, data.features.num_frames(request.movie) / fps, synthesiser)
        report["speech"] = speech
        report["files"] += speech.files
        spoken_over = _spoken_over(rows, speech, 60.0 * request.words_per_second)
    report["figures"] = rate_figures(rows, request.words_per_second, spoken_over=spoken_over)
    if request.html:
        from moviead.evaluation.preview import PreviewRequest, write_preview

        report["files"].append(write_preview(PreviewRequest(str(out), video=request.video,
                                                            words_per_second=request.words_per_second)))
    return report


def track_rows(rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The prediction rows that become cues, in index order, with ``start`` / ``end`` rounded to the millisecond,
    and how many rows were left out for an empty or whitespace-only ``pred``."""
    kept = [{**r, "start": round_ms(r["start"]), "end": round_ms(r["end"])}
            for r in sorted(rows, key=lambda r: r["index"]) if str(r["pred"]).strip()]
    return kept, len(rows) - len(kept)


def _speak(request: DescribeRequest, track: Path, film_s: float, synthesiser: Any):  # -> speech's SpeakReport
    """Speak ``track`` into the output folder (and mix it with the film audio)."""
    from moviead.speech.commands import SpeakRequest, speak

    return speak(SpeakRequest(track=str(track), out=request.out, film_audio=request.film_audio,
                              duration=None if request.film_audio else film_s, duck_db=request.duck_db,
                              words_per_second=request.words_per_second), synthesiser)


def _spoken_over(rows: Sequence[dict[str, Any]], speech: Any, base_wpm: float) -> list[bool]:
    """Per row, whether its measured speech did not fit its cue at the base rate (a raised rate or a cut)."""
    over = {(round(p.cue.start, 3), p.cue.text): p.rate_wpm > base_wpm + 1e-6 or p.cut_s > 0
            for p in speech.track.placed}
    return [over.get((round(float(r["start"]), 3), " ".join(str(r["pred"]).split())), False) for r in rows]
