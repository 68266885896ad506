"""Ducking the programme audio under the AD, and the mix's loudness and peak.

Ducking: a gain curve in dB that is 0 outside speech and ``-duck_db`` while an AD speaks. It ramps down linearly
(in dB) over the ``attack_s`` before each speech interval, so the programme is already lowered when the voice
starts, and back up over the ``release_s`` after it. Speech intervals closer than ``attack_s + release_s`` are
ducked as one (no pumping between them).

The mix: the AD speech is first set to the programme's integrated loudness plus ``ad_gain_db`` (a description is
spoken at about the level of the film's dialogue), added to the ducked programme, and the sum is normalised to
``target_lufs`` integrated loudness, ITU-R BS.1770-4 as measured by ``pyloudnorm`` (default -23 LUFS, EBU R128's
programme level). Then, if the true peak (BS.1770 Annex 2's estimate: the peak of the 4× oversampled signal) is
above ``peak_dbfs`` (default -1 dBTP), the whole mix is scaled down to it: nothing is ever clipped, and the mix is
then quieter than the target (``MixResult.peak_limited``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from moviead.speech.synth import MissingAudioDependencyError

TARGET_LUFS = -23.0
PEAK_DBFS = -1.0


@dataclass
class MixResult:
    """The mix, float32 mono ``(N,)`` at ``sample_rate`` Hz, the programme's gain curve ``(N,)`` and its measures."""

    samples: np.ndarray
    programme_gain: np.ndarray
    sample_rate: int
    loudness_lufs: float  # integrated loudness of the written mix (BS.1770-4)
    true_peak_dbfs: float  # of the written mix (4× oversampled)
    normalisation_db: float  # gain applied to reach the target (after the peak limit)
    peak_limited: bool  # True: scaled below the loudness target to keep the peak at peak_dbfs


def _meter(sample_rate: int):
    try:
        import pyloudnorm
    except ImportError as err:
        raise MissingAudioDependencyError("the mix's loudness (ITU-R BS.1770) needs pyloudnorm: install it with "
                                          "`pip install 'moviead[audio]'` (or `pip install pyloudnorm`)") from err
    return pyloudnorm.Meter(sample_rate)


def integrated_loudness(samples: np.ndarray, sample_rate: int) -> float:
    """ITU-R BS.1770-4 integrated loudness (LUFS) of mono ``samples`` (N,); -inf when silent or shorter than a
    0.4 s block."""
    if len(samples) < int(0.4 * sample_rate) or not np.any(samples):
        return float("-inf")
    with np.errstate(divide="ignore"):
        return float(_meter(sample_rate).integrated_loudness(samples.astype(np.float64)))


def true_peak_dbfs(samples: np.ndarray, block: int = 1 << 20, pad: int = 256) -> float:
    """The peak in dBFS of ``samples`` (N,) and of their 4× oversampled version, whichever is higher. Oversampled
    in blocks of ``block`` samples (with ``pad`` samples of context on each side), so a film-length signal needs
    no 4× copy in memory."""
    if len(samples) == 0 or not np.any(samples):
        return float("-inf")
    from scipy.signal import resample_poly

    peak = float(np.max(np.abs(samples)))
    for first in range(0, len(samples), block):
        lo, hi = max(first - pad, 0), min(first + block + pad, len(samples))
        up = resample_poly(samples[lo:hi].astype(np.float64), 4, 1)
        peak = max(peak, float(np.max(np.abs(up[4 * (first - lo): 4 * (min(first + block, hi) - lo)]))))
    return 20.0 * np.log10(peak)


def merge_intervals(intervals: Iterable[tuple[float, float]], min_gap: float) -> list[tuple[float, float]]:
    """Sorted intervals (seconds), those separated by less than ``min_gap`` joined into one."""
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start - merged[-1][1] < min_gap:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def duck_gain(intervals: Iterable[tuple[float, float]], length: int, sample_rate: int, duck_db: float = 12.0,
              attack_s: float = 0.08, release_s: float = 0.25) -> np.ndarray:
    """The programme's linear gain curve, float32 ``(length,)``: 1 outside speech, ``10^(-duck_db/20)`` inside the
    speech ``intervals`` (seconds), with linear-in-dB ramps over ``attack_s`` before and ``release_s`` after."""
    if duck_db < 0 or attack_s < 0 or release_s < 0:
        raise ValueError(f"duck_db, attack_s and release_s must be >= 0, got {duck_db}, {attack_s}, {release_s}")
    gain_db = np.zeros(length, dtype=np.float64)
    attack, release = round(attack_s * sample_rate), round(release_s * sample_rate)
    for start, end in merge_intervals(intervals, attack_s + release_s):
        a, b = round(start * sample_rate), round(end * sample_rate)
        pieces = (
            (a - attack, -duck_db * np.arange(attack) / max(attack, 1)),  # 0 → -duck_db, reached at a
            (a, np.full(max(b - a, 0), -duck_db)),
            (b, -duck_db * (1.0 - np.arange(1, release + 1) / max(release, 1))),  # back to 0 dB
        )
        for first, values in pieces:
            lo, hi = max(first, 0), min(first + len(values), length)
            if hi > lo:
                gain_db[lo:hi] = np.minimum(gain_db[lo:hi], values[lo - first: hi - first])
    return (10.0 ** (gain_db / 20.0)).astype(np.float32)


def duck_and_mix(programme: np.ndarray, ad: np.ndarray, speech: Iterable[tuple[float, float]], sample_rate: int,
                 duck_db: float = 12.0, attack_s: float = 0.08, release_s: float = 0.25, ad_gain_db: float = 0.0,
                 target_lufs: float = TARGET_LUFS, peak_dbfs: float = PEAK_DBFS) -> MixResult:
    """The programme lowered by ``duck_db`` while an AD speaks, plus the AD, loudness-normalised and peak-limited.

    Args:
        programme: the film's audio, float32 mono ``(N,)`` at ``sample_rate`` Hz.
        ad: the AD track, float32 mono ``(N,)`` on the same timeline (:func:`moviead.speech.track.ad_track`).
        speech: (start, end) seconds of each AD's speech: where to duck.
        ad_gain_db: the AD's loudness relative to the programme's integrated loudness.
        target_lufs: the mix's integrated loudness (BS.1770-4), unless the peak limit needs it lower.
        peak_dbfs: the highest true peak allowed (dBTP, < 0).

    Raises:
        ValueError: the two signals differ in length, or ``peak_dbfs`` is not below 0.
        MissingAudioDependencyError: pyloudnorm is not installed.
    """
    if len(programme) != len(ad):
        raise ValueError(f"programme ({len(programme)} samples) and AD track ({len(ad)}) differ in length")
    if not peak_dbfs < 0:
        raise ValueError(f"peak_dbfs must be below full scale (0 dBFS), got {peak_dbfs}")
    gain = duck_gain(speech, len(programme), sample_rate, duck_db, attack_s, release_s)
    ad = ad.astype(np.float64)
    prog_lufs, ad_lufs = integrated_loudness(programme, sample_rate), integrated_loudness(ad, sample_rate)
    if np.isfinite(prog_lufs) and np.isfinite(ad_lufs):
        ad = ad * 10.0 ** ((prog_lufs + ad_gain_db - ad_lufs) / 20.0)
    mix = programme.astype(np.float64) * gain + ad
    measured = integrated_loudness(mix, sample_rate)
    norm_db = target_lufs - measured if np.isfinite(measured) else 0.0
    mix *= 10.0 ** (norm_db / 20.0)
    peak = true_peak_dbfs(mix)
    limited = bool(peak > peak_dbfs)
    if limited:
        mix *= 10.0 ** ((peak_dbfs - peak) / 20.0)
        norm_db += peak_dbfs - peak
    mix32 = mix.astype(np.float32)
    return MixResult(mix32, gain, sample_rate, integrated_loudness(mix32, sample_rate), true_peak_dbfs(mix32), norm_db,
                     limited)
