"""eSpeak NG synthesis and fitting speech into its cue (the real synthesiser; skipped without it)."""

from __future__ import annotations

import ctypes.util
import sys

import numpy as np
import pytest

from moviead.speech import synth
from moviead.speech.fitting import fit_to_interval, trim_silence
from moviead.speech.synth import SynthesiserMissingError, synthesise
from tests.speech._speech_audio import needs_espeak

LONG = ("She stops at the fountain and looks back over her shoulder at the man who has followed her all the way "
        "through the crowd of tourists.")


@needs_espeak
def test_synthesise_returns_mono_float_speech_whose_length_follows_the_rate() -> None:
    slow, sr = synthesise("A woman in a red coat crosses the empty square.", 175)
    fast, sr_fast = synthesise("A woman in a red coat crosses the empty square.", 350)
    assert sr == sr_fast == 22050
    assert slow.dtype == np.float32 and slow.ndim == 1
    assert 0.05 < float(np.max(np.abs(slow))) <= 1.0
    slow_s, fast_s = len(trim_silence(slow)) / sr, len(trim_silence(fast)) / sr
    assert 1.5 < slow_s < 5.0, slow_s  # 9 words at 175 wpm ≈ 3 s
    assert fast_s < 0.65 * slow_s, (slow_s, fast_s)


@needs_espeak
def test_rate_raising_makes_a_long_text_fit_a_short_gap() -> None:
    natural = len(trim_silence(synthesise(LONG, 175)[0])) / 22050
    gap = 0.75 * natural  # needs +33 % of rate: within the 1.5x limit
    fitted = fit_to_interval(LONG, gap, base_wpm=175, max_wpm=262.5)
    assert fitted.duration_s <= gap and fitted.overrun_s == 0
    assert 175 < fitted.rate_wpm <= 262.5
    again = len(trim_silence(synthesise(LONG, fitted.rate_wpm)[0])) / 22050  # measured independently
    assert again <= gap + 1e-3, (natural, gap, again)


@needs_espeak
def test_a_text_that_cannot_fit_is_reported_as_overrunning() -> None:
    fitted = fit_to_interval(LONG, 1.5, base_wpm=175, max_wpm=262.5)
    assert fitted.rate_wpm == pytest.approx(262.5)
    assert fitted.overrun_s > 1.0 and fitted.duration_s > 1.5


@needs_espeak
def test_a_text_that_fits_keeps_the_base_rate() -> None:
    fitted = fit_to_interval("Night.", 5.0, base_wpm=175)
    assert fitted.rate_wpm == 175 and fitted.tries == 1 and 0.1 < fitted.duration_s < 1.5


def test_missing_synthesiser_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synth, "_engine", None)
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # import fails
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    with pytest.raises(SynthesiserMissingError) as err:
        synthesise("Night.", 175)
    assert "pip install 'moviead[audio]'" in str(err.value) and "apt-get install libespeak-ng1" in str(err.value)
