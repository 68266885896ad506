"""Fitting a description's speech into its cue: measure the spoken duration and raise the rate where it overruns.

The duration of a phrase is measured on the synthesised samples, from the first to the last sample above
``SILENCE_DB`` (eSpeak NG's leading and trailing pauses do not count). A phrase that is longer than its interval
at ``base_wpm`` is synthesised again at a rate scaled by the measured overrun (speech time is close to inversely
proportional to the rate), at most ``max_wpm``, for a few rounds; one still too long at ``max_wpm`` is reported
as an overrun (``FittedSpeech.overrun_s`` > 0) and is cut by :func:`moviead.speech.track.ad_track`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from moviead.speech.synth import synthesise

SILENCE_DB = -50.0  # dBFS: quieter samples at the ends of a phrase are pauses, not speech
Synthesiser = Callable[[str, float], tuple[np.ndarray, int]]  # (text, rate in wpm) → (float32 samples, Hz)


@dataclass(frozen=True)
class FittedSpeech:
    """One cue's speech: ``samples`` float32 mono ``(N,)`` at ``sample_rate`` Hz, trimmed to the speech itself."""

    text: str
    samples: np.ndarray
    sample_rate: int
    rate_wpm: float
    interval_s: float  # the time available
    tries: int  # syntheses made

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def overrun_s(self) -> float:
        """Seconds by which the speech is longer than its interval, 0 when it fits."""
        return max(0.0, self.duration_s - self.interval_s)


def trim_silence(samples: np.ndarray, threshold_db: float = SILENCE_DB) -> np.ndarray:
    """``samples`` without the leading and trailing samples quieter than ``threshold_db`` dBFS (empty if all are)."""
    loud = np.flatnonzero(np.abs(samples) > 10.0 ** (threshold_db / 20.0))
    if loud.size == 0:
        return samples[:0]
    return samples[loud[0]: loud[-1] + 1]


def _speak_default(text: str, rate_wpm: float) -> tuple[np.ndarray, int]:
    return synthesise(text, rate_wpm)


def fit_to_interval(text: str, duration: float, base_wpm: float = 175.0, max_wpm: float | None = None,
                    synthesiser: Synthesiser | None = None, rounds: int = 4) -> FittedSpeech:
    """Synthesise ``text`` so that it lasts at most ``duration`` seconds, raising the rate from ``base_wpm`` up to
    ``max_wpm`` (default 1.5 × ``base_wpm``) only when it would overrun.

    Args:
        text: the description.
        duration: seconds available (the cue's length).
        base_wpm: the normal speaking rate, words per minute.
        max_wpm: the fastest rate allowed (eSpeak NG caps it at 450).
        synthesiser: ``(text, wpm) → (samples, Hz)``; default :func:`moviead.speech.synth.synthesise`.
        rounds: most syntheses at raised rates.

    Returns:
        The trimmed speech and the rate used; ``overrun_s`` > 0 when even ``max_wpm`` does not fit.
    """
    if not duration > 0:
        raise ValueError(f"the interval must be longer than 0 s, got {duration}")
    max_wpm = 1.5 * base_wpm if max_wpm is None else max_wpm
    if max_wpm < base_wpm:
        raise ValueError(f"max_wpm ({max_wpm}) is below base_wpm ({base_wpm})")
    speak = synthesiser or _speak_default
    rate, tries = float(base_wpm), 0
    while True:
        samples, sr = speak(text, rate)
        tries += 1
        speech = trim_silence(np.asarray(samples, dtype=np.float32))
        spoken = len(speech) / sr
        if spoken <= duration or rate >= max_wpm or tries > rounds:
            return FittedSpeech(text, speech, sr, rate, float(duration), tries)
        rate = min(max_wpm, rate * spoken / duration * 1.03)  # 3 % margin: pauses do not shrink with the rate
