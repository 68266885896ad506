"""``moviead speak`` end to end, its film-audio decoding, and its clear errors that leave no complete-looking WAV."""

from __future__ import annotations

import ctypes.util
import errno
import sys
from pathlib import Path

import numpy as np
import pytest

from moviead.cli import main
from moviead.speech import audio_io, synth
from moviead.speech.audio_io import OutputFolderError, ProgrammeAudioError, read_programme_audio, read_wav
from moviead.speech.commands import CueFileError, SpeakRequest, speak
from moviead.speech.mixing import integrated_loudness
from moviead.speech.track import energy_inside
from tests.speech._speech_audio import (
    frame_rms_db,
    frames_inside,
    needs_espeak,
    pinkish_noise,
    tone_synthesiser,
    write_cues,
    write_wav,
)

SR = 48000
CUES = [(1.0, 4.5, "A woman in a red coat crosses the empty square."),
        (7.0, 9.5, "She stops at the fountain and looks back."),
        (12.0, 15.0, "Night. Rain streams down the window.")]


@pytest.fixture
def film(tmp_path: Path) -> tuple[Path, Path]:
    """(a 3-cue Film.ad.jsonl, an 18 s pink-noise programme WAV at 44.1 kHz stereo)."""
    track = write_cues(tmp_path / "Film.ad.jsonl", CUES)
    audio = write_wav(tmp_path / "film.wav", pinkish_noise(18.0, 44100, level_dbfs=-18.0), 44100, channels=2)
    return track, audio


def _wavs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".wav" in p.name) if folder.is_dir() else []


@needs_espeak
@pytest.mark.integration
def test_speak_writes_the_ad_track_and_the_ducked_mix(film, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    track, audio = film
    out = tmp_path / "out"
    assert main(["speak", str(track), "--out", str(out), "--film-audio", str(audio)]) == 0
    printed = capsys.readouterr().out
    assert _wavs(out) == ["Film.ad.wav", "Film.mix.wav"]
    ad, sr = read_wav(out / "Film.ad.wav")
    mix, _ = read_wav(out / "Film.mix.wav")
    assert sr == SR and len(ad) == len(mix) == 18 * SR  # the film audio's timeline, resampled to 48 kHz
    assert energy_inside(ad, sr, [(a, b) for a, b, _ in CUES]) > 0.9999
    assert float(np.max(np.abs(mix))) < 10 ** (-1 / 20) + 1e-4 and float(np.max(np.abs(ad))) < 1.0
    assert integrated_loudness(mix, sr) == pytest.approx(-23.0, abs=0.3)
    # the programme is ducked by ~12 dB while the AD speaks: compare the mix's noise floor between words
    db = frame_rms_db(mix, sr)
    _, outside = frames_inside([(a, b) for a, b, _ in CUES], len(db), 0.02, margin_s=0.3)
    assert 3 < np.median(db[outside]) - np.percentile(frame_rms_db(mix[SR:4 * SR], sr), 5) < 20
    assert "3 cues" in printed and "LUFS" in printed and "% of the speech energy inside cues" in printed


def test_film_audio_shorter_than_the_timeline_is_one_clear_error(film, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    track, _ = film
    short = write_wav(tmp_path / "short.wav", pinkish_noise(10.0, SR), SR)  # cues run to 15 s
    out = tmp_path / "out"
    with pytest.raises(ProgrammeAudioError, match="lasts 10.00 s, shorter than the AD timeline"):
        speak(SpeakRequest(str(track), str(out), film_audio=str(short)), synthesiser=tone_synthesiser)
    assert _wavs(out) == []


def test_an_unwritable_output_folder_is_one_clear_error(film, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    track, audio = film
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert main(["speak", str(track), "--out", str(blocker / "out"), "--film-audio", str(audio)]) == 2
    message = capsys.readouterr().err
    assert "moviead speak: error: cannot create the output folder" in message and message.count("\n") == 1


def test_missing_espeak_fails_before_anything_is_written(film, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(synth, "_engine", None)
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    track, audio = film
    out = tmp_path / "out"
    assert main(["speak", str(track), "--out", str(out), "--film-audio", str(audio)]) == 2
    message = capsys.readouterr().err
    assert "eSpeak NG is not installed" in message and "pip install 'moviead[audio]'" in message
    assert _wavs(out) == []


def test_a_failed_write_leaves_no_wav_that_looks_complete(film, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    track, audio = film
    out = tmp_path / "out"
    real = audio_io._write_pcm16

    def fail_on_the_mix(path: Path, samples: np.ndarray, sample_rate: int) -> None:
        real(path, samples[: len(samples) // 2], sample_rate)  # half written, then the disk is full
        if "mix" in path.name:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(audio_io, "_write_pcm16", fail_on_the_mix)
    with pytest.raises(OutputFolderError, match="No space left on device"):
        speak(SpeakRequest(str(track), str(out), film_audio=str(audio)), synthesiser=tone_synthesiser)
    assert list(out.iterdir()) == []  # neither WAV, nor the partial files


def test_a_bad_cue_row_names_its_line(tmp_path: Path) -> None:
    track = tmp_path / "Film.ad.jsonl"
    track.write_text('{"start": 1, "end": 2, "text": "ok"}\n{"start": 3, "end": 4}\n', "utf-8")
    with pytest.raises(CueFileError, match=r"Film.ad.jsonl:2: expected"):
        speak(SpeakRequest(str(track), str(tmp_path / "out")), synthesiser=tone_synthesiser)


def test_speech_only_track_without_film_audio_spans_the_cues(film, tmp_path: Path) -> None:
    track, _ = film
    report = speak(SpeakRequest(str(track), str(tmp_path / "out"), duration=16.0, sample_rate=22050),
                   synthesiser=tone_synthesiser)
    ad, sr = read_wav(tmp_path / "out" / "Film.ad.wav")
    assert sr == 22050 and len(ad) == 16 * 22050 and report.mix is None
    assert report.inside_share > 0.9999 and report.ad_peak_dbfs <= -1.0 + 1e-3


def test_programme_audio_is_decoded_to_mono_at_the_track_rate(tmp_path: Path) -> None:
    t = np.arange(3 * 44100) / 44100
    path = write_wav(tmp_path / "tone.wav", 0.5 * np.sin(2 * np.pi * 440 * t), 44100, channels=2)
    samples = read_programme_audio(path, SR)
    assert samples.dtype == np.float32 and samples.ndim == 1 and abs(len(samples) - 3 * SR) <= 64
    crossings = np.count_nonzero(np.diff(np.signbit(samples[SR // 10: -SR // 10])))
    assert crossings / (2 * 2.8) == pytest.approx(440, abs=2)  # still 440 Hz at the new rate
    amplitude = float(np.sqrt(np.mean(samples[SR // 10: -SR // 10] ** 2))) * np.sqrt(2)
    assert 0.45 < amplitude < 0.75  # FFmpeg's down-mix: identical channels at 0.5 come out at 0.5 to 0.71
    with pytest.raises(ProgrammeAudioError, match="shorter than the AD timeline"):
        read_programme_audio(path, SR, min_duration=5.0)
