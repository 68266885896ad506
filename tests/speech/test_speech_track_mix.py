"""The AD track on the timeline, ducking, loudness and peak, measured on generated audio."""

from __future__ import annotations

import numpy as np
import pytest

from moviead.speech.mixing import duck_and_mix, duck_gain, integrated_loudness, true_peak_dbfs
from moviead.speech.track import SpeechCue, TimelineError, ad_track, energy_inside
from tests.speech._speech_audio import (
    frame_rms_db,
    frames_inside,
    needs_espeak,
    pinkish_noise,
    tone_level_db,
    tone_synthesiser,
)

SR = 48000
CUES = [SpeechCue(1.0, 4.0, "A woman in a red coat crosses the empty square."),
        SpeechCue(6.5, 8.0, "She stops at the fountain and looks back over her shoulder at the man following her."),
        SpeechCue(10.0, 13.0, "Night. Rain streams down the window.")]


def _speech_only_inside_cues(track, cues) -> None:
    db = frame_rms_db(track.samples, SR)
    inside, outside = frames_inside([(c.start, c.end) for c in cues], len(db), 0.02)
    speaking = db[inside][db[inside] > -60]
    assert speaking.size > 50
    assert db[outside].max() < np.median(speaking) - 60, (db[outside].max(), np.median(speaking))
    assert energy_inside(track.samples, SR, track.cue_intervals()) > 0.9999


@needs_espeak
def test_espeak_speech_energy_lies_only_inside_the_cues() -> None:
    track = ad_track(CUES, 15.0, SR)
    assert len(track.samples) == 15 * SR and len(track.placed) == 3
    _speech_only_inside_cues(track, CUES)
    assert track.placed[1].rate_wpm > 175  # the long line in a 1.5 s cue was sped up ...
    assert track.placed[1].cut_s > 0 and track.placed[1].end == pytest.approx(8.0, abs=1e-3)  # ... and still cut


def test_overrunning_speech_is_cut_at_the_cue_end_and_reported() -> None:
    track = ad_track(CUES, 15.0, SR, base_wpm=120, synthesiser=tone_synthesiser)
    _speech_only_inside_cues(track, CUES)
    long = track.placed[1]  # 16 words in 1.5 s: 640 wpm needed, 180 allowed
    assert long.rate_wpm == pytest.approx(180) and long.cut_s == pytest.approx(16 * 60 / 180 - 1.5, abs=0.01)
    assert track.placed[0].cut_s == pytest.approx(10 * 60 / 180 - 3.0, abs=0.01)  # 10 words in 3 s
    last = track.placed[2]  # 6 words at 120 wpm: exactly its 3 s, at the base rate, not cut
    assert last.rate_wpm == 120 and last.cut_s == 0 and last.end - last.start == pytest.approx(3.0, abs=1e-3)


def test_overlapping_cues_are_not_spoken_over_each_other() -> None:
    cues = [SpeechCue(1.0, 6.0, "one two three four five six seven eight"), SpeechCue(3.0, 6.0, "nine ten")]
    track = ad_track(cues, 8.0, SR, base_wpm=120, max_wpm=120, synthesiser=tone_synthesiser)
    assert track.placed[0].end == pytest.approx(3.0, abs=1e-3) and track.placed[1].start == 3.0


def test_a_cue_past_the_timeline_is_an_error() -> None:
    with pytest.raises(TimelineError, match="ends after the timeline"):
        ad_track([SpeechCue(5.0, 12.0, "late")], 10.0, SR, synthesiser=tone_synthesiser)


def test_ducking_lowers_the_programme_only_while_an_ad_speaks() -> None:
    seconds, speech = 12.0, [(2.0, 4.0), (7.0, 9.5)]
    t = np.arange(round(seconds * SR)) / SR
    programme = (0.1 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)  # the film: a 200 Hz tone, fixed level
    ad = np.zeros_like(programme)
    for a, b in speech:  # the AD: 2 kHz while it speaks (orthogonal to 200 Hz in 50 ms frames)
        span = slice(round(a * SR), round(b * SR))
        ad[span] = 0.3 * np.sin(2 * np.pi * 2000 * t[span])
    mix = duck_and_mix(programme, ad, speech, SR, duck_db=12.0, attack_s=0.08, release_s=0.25)
    level = tone_level_db(mix.samples, SR, 200) - tone_level_db(programme, SR, 200)  # programme's gain, dB
    inside, outside = frames_inside(speech, len(level), 0.05, margin_s=0.3)
    reference = np.median(level[outside])  # the loudness normalisation's gain, the same everywhere
    assert np.ptp(level[outside]) < 0.05  # unchanged outside speech and its ramps
    assert np.abs(level[inside] - reference + 12.0).max() < 0.1  # 12 dB lower while the AD speaks
    gain = mix.programme_gain
    assert gain[round(1.0 * SR)] == 1.0 and gain[round(1.95 * SR)] < 1.0  # the attack ramp precedes the speech
    assert gain[round(4.0 * SR) + round(0.25 * SR)] == pytest.approx(1.0, abs=1e-6)  # released 0.25 s after


def test_close_speech_intervals_are_ducked_as_one() -> None:
    gain = duck_gain([(1.0, 2.0), (2.2, 3.0)], 4 * SR, SR, duck_db=12, attack_s=0.08, release_s=0.25)
    assert gain[round(2.1 * SR)] == pytest.approx(10 ** (-12 / 20), rel=1e-5)


@pytest.mark.parametrize("target", [-23.0, -5.0])
def test_the_mix_is_loudness_normalised_and_never_reaches_full_scale(target: float) -> None:
    programme = pinkish_noise(20.0, SR, level_dbfs=-12.0)
    programme[round(5 * SR): round(5 * SR) + 200] = 0.99  # a transient: a high crest factor
    track = ad_track(CUES, 20.0, SR, synthesiser=tone_synthesiser)
    mix = duck_and_mix(programme, track.samples, track.speech_intervals(), SR, target_lufs=target, peak_dbfs=-1.0)
    assert float(np.max(np.abs(mix.samples))) < 10 ** (-1.0 / 20) + 1e-6
    assert true_peak_dbfs(mix.samples) <= -1.0 + 1e-3 and mix.true_peak_dbfs <= -1.0 + 1e-3
    if target == -23.0:  # reachable: exactly the target
        assert not mix.peak_limited and integrated_loudness(mix.samples, SR) == pytest.approx(-23.0, abs=0.1)
    else:  # -5 LUFS would push the transient past full scale: the peak limit wins, the mix is quieter
        assert mix.peak_limited and integrated_loudness(mix.samples, SR) < target - 1.0


def test_true_peak_sees_the_peak_between_samples() -> None:
    n = np.arange(SR)
    sine = 0.9 * np.sin(2 * np.pi * (SR / 4) * n / SR + np.pi / 4)  # samples at ±0.64, the wave peaks at 0.9
    assert 20 * np.log10(np.max(np.abs(sine))) == pytest.approx(-3.93, abs=0.01)
    assert true_peak_dbfs(sine) == pytest.approx(20 * np.log10(0.9), abs=0.2)
    assert true_peak_dbfs(sine, block=1000) == true_peak_dbfs(sine)  # the blocked oversampling misses nothing
