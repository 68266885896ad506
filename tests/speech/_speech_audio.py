"""Generated audio for the spoken-track tests: a stand-in synthesiser, programme signals, frame levels."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

SYNTH_RATE = 22050


def espeak_available() -> bool:
    from moviead.speech.synth import SynthesiserMissingError, synthesiser_info

    try:
        synthesiser_info()
    except SynthesiserMissingError:
        return False
    return True


needs_espeak = pytest.mark.skipif(not espeak_available(), reason="eSpeak NG is not installed: "
                                  "pip install 'moviead[audio]' (espeakng-loader)")


def tone_synthesiser(text: str, rate_wpm: float) -> tuple[np.ndarray, int]:
    """A stand-in for eSpeak NG: a 2 kHz tone lasting words × 60 / rate seconds, between 0.1 s pauses."""
    seconds = len(text.split()) * 60.0 / rate_wpm
    t = np.arange(round(seconds * SYNTH_RATE)) / SYNTH_RATE
    pause = np.zeros(round(0.1 * SYNTH_RATE), np.float32)
    return np.concatenate([pause, 0.5 * np.sin(2 * np.pi * 2000 * t).astype(np.float32), pause]), SYNTH_RATE


def frame_rms_db(samples: np.ndarray, sample_rate: int, frame_s: float = 0.02) -> np.ndarray:
    """RMS level (dBFS, floor -200) of consecutive frames of ``frame_s``."""
    size = round(frame_s * sample_rate)
    frames = samples[: len(samples) // size * size].reshape(-1, size).astype(np.float64)
    return 10 * np.log10(np.maximum(np.mean(frames ** 2, axis=1), 1e-20))


def tone_level_db(samples: np.ndarray, sample_rate: int, freq: float, frame_s: float = 0.05) -> np.ndarray:
    """Amplitude (dB re full-scale sine) of the ``freq`` component in each frame (lock-in: frames hold whole
    periods, so other whole-period tones do not leak)."""
    size = round(frame_s * sample_rate)
    frames = samples[: len(samples) // size * size].reshape(-1, size).astype(np.float64)
    phasor = np.exp(-2j * np.pi * freq * np.arange(size) / sample_rate)
    return 20 * np.log10(np.maximum(2 * np.abs(frames @ phasor) / size, 1e-12))


def frames_inside(intervals, count: int, frame_s: float, margin_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Masks of frames wholly inside any interval (shrunk by ``margin_s``) and wholly outside all (widened)."""
    starts = np.arange(count) * frame_s
    ends = starts + frame_s
    inside = np.zeros(count, bool)
    near = np.zeros(count, bool)
    for a, b in intervals:
        inside |= (starts >= a + margin_s) & (ends <= b - margin_s)
        near |= (ends > a - margin_s) & (starts < b + margin_s)
    return inside, ~near


def write_wav(path: Path, samples: np.ndarray, sample_rate: int, channels: int = 1) -> Path:
    data = np.repeat(samples[:, None], channels, axis=1) if channels > 1 else samples
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(np.round(np.clip(data, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def pinkish_noise(seconds: float, sample_rate: int, level_dbfs: float = -20.0, seed: int = 0) -> np.ndarray:
    """Noise with a 1/f power spectrum at ``level_dbfs`` RMS."""
    n = round(seconds * sample_rate)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)
    freqs[0] = freqs[1]
    noise = np.fft.irfft(spectrum / np.sqrt(freqs), n)
    return (noise / np.sqrt(np.mean(noise ** 2)) * 10 ** (level_dbfs / 20)).astype(np.float32)


def write_cues(path: Path, cues) -> Path:
    path.write_text("".join(json.dumps({"start": a, "end": b, "text": t}) + "\n" for a, b, t in cues), "utf-8")
    return path
