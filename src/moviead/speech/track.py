"""The AD track: each cue's speech placed at the cue's start on the film's timeline (``<movie>.ad.wav``).

Cues are sorted by start; a cue that runs into the next one ends where the next starts (two descriptions are
never spoken over each other). Each cue's text is fitted to its interval (:func:`fit_to_interval`), resampled
from the synthesiser's rate to the track's, and written from the cue's start. Speech that still overruns its
interval at the fastest rate allowed is cut at the interval's end with a ``CUT_FADE_S`` fade-out and reported
(``PlacedSpeech.cut_s``), so the AD never speaks outside its cue, i.e. over dialogue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from moviead.speech.fitting import FittedSpeech, Synthesiser, fit_to_interval

CUT_FADE_S = 0.02


class TimelineError(ValueError):
    """Cues that do not fit the film's timeline (negative, reversed, or past its end)."""


@dataclass(frozen=True)
class SpeechCue:
    """One description to speak: ``start`` and ``end`` in seconds on the film's timeline, and its text."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class PlacedSpeech:
    """Where one cue's speech lies on the track (seconds) and how it was fitted."""

    cue: SpeechCue
    start: float
    end: float  # the speech's end (≤ the cue's end)
    rate_wpm: float
    natural_s: float  # the speech's duration at that rate, before any cut
    cut_s: float  # seconds cut off because it overran the cue even at the fastest rate (0: it fits)


@dataclass
class AdTrack:
    """The AD speech alone: ``samples`` float32 mono ``(round(total_duration * sample_rate),)``."""

    samples: np.ndarray
    sample_rate: int
    placed: list[PlacedSpeech] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    def speech_intervals(self) -> list[tuple[float, float]]:
        """(start, end) in seconds of the speech of each cue, in time order."""
        return [(p.start, p.end) for p in self.placed]

    def cue_intervals(self) -> list[tuple[float, float]]:
        """(start, end) in seconds of the cues that were spoken, each ending no later than the next one starts."""
        return [(p.cue.start, p.cue.end) for p in self.placed]


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """``samples`` (N,) at ``from_rate`` Hz → float32 at ``to_rate`` Hz (polyphase, anti-aliased)."""
    if from_rate == to_rate:
        return samples.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    common = math.gcd(int(from_rate), int(to_rate))
    return resample_poly(samples, to_rate // common, from_rate // common).astype(np.float32)


def energy_inside(samples: np.ndarray, sample_rate: int, intervals: Iterable[tuple[float, float]]) -> float:
    """The share (0..1) of the signal's energy (sum of squares) that lies inside ``intervals`` (seconds); 1 for
    a silent signal."""
    inside = np.zeros(len(samples), dtype=bool)
    for start, end in intervals:
        inside[max(0, round(start * sample_rate)): max(0, round(end * sample_rate))] = True
    squares = np.square(samples, dtype=np.float64)
    total = float(squares.sum())
    return 1.0 if total == 0 else float(squares[inside].sum()) / total


def ordered_cues(cues: Iterable[SpeechCue], total_duration: float) -> list[SpeechCue]:
    """Cues with text, sorted by start, each ending no later than the next starts; checked against the timeline.

    Raises:
        TimelineError: a negative or non-finite time, an end before its start, or a cue ending after
            ``total_duration``.
    """
    kept = []
    for cue in cues:
        if not (math.isfinite(cue.start) and math.isfinite(cue.end)) or cue.start < 0 or cue.end <= cue.start:
            raise TimelineError(f"cue {cue.start!r}..{cue.end!r} ({cue.text!r}) needs 0 <= start < end (seconds)")
        if cue.end > total_duration + 1e-6:
            raise TimelineError(f"cue {cue.start:.3f}..{cue.end:.3f} s ends after the timeline "
                                f"({total_duration:.3f} s): the film (audio) is shorter than its AD track")
        if cue.text.strip():
            kept.append(SpeechCue(float(cue.start), float(cue.end), " ".join(cue.text.split())))
    kept.sort(key=lambda c: (c.start, c.end))
    out = []
    for cue, following in zip(kept, kept[1:] + [None]):
        end = min(cue.end, following.start) if following is not None else cue.end
        if end > cue.start:  # a cue starting with the next one is dropped, not spoken over it
            out.append(SpeechCue(cue.start, end, cue.text))
    return out


def ad_track(cues: Sequence[SpeechCue], total_duration: float, sample_rate: int = 48000, base_wpm: float = 175.0,
             max_wpm: float | None = None, synthesiser: Synthesiser | None = None) -> AdTrack:
    """Synthesise every cue and place its speech at the cue's start on a silent timeline.

    Args:
        cues: the descriptions (seconds on the film's timeline).
        total_duration: the film's length in seconds; the track has ``round(total_duration * sample_rate)`` samples.
        sample_rate: the track's rate in Hz (the film audio's rate for a mix; speech is resampled to it).
        base_wpm, max_wpm: the normal and the fastest speaking rate (default max: 1.5 × base), words per minute.
        synthesiser: ``(text, wpm) → (samples, Hz)``; default eSpeak NG.

    Raises:
        TimelineError: bad cue times, or a cue past ``total_duration``.
        moviead.speech.synth.SynthesiserMissingError: eSpeak NG is not installed.
    """
    if not total_duration > 0:
        raise TimelineError(f"the timeline must be longer than 0 s, got {total_duration}")
    track = np.zeros(round(total_duration * sample_rate), dtype=np.float32)
    placed = []
    for cue in ordered_cues(cues, total_duration):
        fitted: FittedSpeech = fit_to_interval(cue.text, cue.end - cue.start, base_wpm, max_wpm, synthesiser)
        speech = resample(fitted.samples, fitted.sample_rate, sample_rate)
        first = round(cue.start * sample_rate)
        room = min(round(cue.end * sample_rate), len(track)) - first
        natural = len(speech) / sample_rate
        if len(speech) > room:
            speech = speech[:room].copy()
            fade = min(room, round(CUT_FADE_S * sample_rate))
            if fade:
                speech[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        track[first: first + len(speech)] = speech
        placed.append(PlacedSpeech(cue, cue.start, cue.start + len(speech) / sample_rate, fitted.rate_wpm, natural,
                                   max(0.0, natural - len(speech) / sample_rate)))
    return AdTrack(track, sample_rate, placed)
