"""What ``moviead speak`` does, callable from Python: a ``<movie>.ad.jsonl`` (rows ``{"start", "end", "text"}`` in
seconds, as ``moviead describe`` writes) → ``<movie>.ad.wav``, the AD speech alone on the film's timeline, and with
film audio also ``<movie>.mix.wav``, the programme ducked under the AD (see :mod:`moviead.speech.mixing`).

Order of work, so that bad input fails before anything is synthesised and nothing half-written is left: the cue
file is read and checked, the output folder created and checked for writing, eSpeak NG started, the film audio
decoded and checked against the timeline; then everything is rendered in memory and both WAVs are written at once
(:func:`moviead.speech.audio_io.write_wavs`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from moviead.speech.audio_io import prepare_output_folder, read_programme_audio, write_wavs
from moviead.speech.fitting import Synthesiser
from moviead.speech.mixing import PEAK_DBFS, TARGET_LUFS, MixResult, duck_and_mix, integrated_loudness, true_peak_dbfs
from moviead.speech.synth import DEFAULT_WPM, MissingAudioDependencyError, synthesiser_info
from moviead.speech.track import AdTrack, SpeechCue, TimelineError, ad_track, energy_inside


class CueFileError(ValueError):
    """The ``.ad.jsonl`` is missing fields or holds something that is not a cue."""


@dataclass
class SpeakRequest:
    """The arguments of ``moviead speak`` (see ``moviead speak --help``)."""

    track: str  # <movie>.ad.jsonl
    out: str
    film_audio: str | None = None
    duration: float | None = None  # the timeline (s); default: the film audio's length, else the last cue's end
    duck_db: float = 12.0
    words_per_second: float = DEFAULT_WPM / 60.0
    max_speedup: float = 1.5
    sample_rate: int = 48000
    target_lufs: float = TARGET_LUFS
    peak_dbfs: float = PEAK_DBFS
    attack_s: float = 0.08
    release_s: float = 0.25
    ad_gain_db: float = 0.0


@dataclass
class SpeakReport:
    """What was written and measured."""

    movie: str
    timeline_s: float
    track: AdTrack
    inside_share: float  # share of the AD track's energy inside the cue intervals
    ad_peak_dbfs: float
    ad_loudness_lufs: float
    mix: MixResult | None = None
    files: list[Path] = field(default_factory=list)
    base_wpm: float = DEFAULT_WPM  # the requested speaking rate; cues above it were sped up to fit their gap

    def lines(self) -> list[str]:
        """The summary ``moviead speak`` prints."""
        placed = self.track.placed
        speech = sum(p.end - p.start for p in placed)
        raised = [p for p in placed if p.rate_wpm > self.base_wpm + 1e-6]
        out = [f"{self.movie}: timeline {self.timeline_s:.2f} s, {len(placed)} cues, speech {speech:.2f} s "
               f"({len(raised)} at a raised rate, {sum(p.cut_s > 0 for p in placed)} cut)"]
        for n, p in enumerate(placed):
            note = f", cut {p.cut_s:.2f} s: shorten it or raise --max-speedup" if p.cut_s > 0 else ""
            out.append(f"  #{n:<3d} {p.cue.start:8.2f}-{p.cue.end:8.2f} s  speech {p.end - p.start:5.2f} s at "
                       f"{p.rate_wpm:5.0f} wpm{note}")
        out.append(f"AD track: {100 * self.inside_share:.2f} % of the speech energy inside cues, peak "
                   f"{self.ad_peak_dbfs:.2f} dBFS, {self.ad_loudness_lufs:.2f} LUFS")
        if self.mix is not None:
            limited = " (peak-limited below the target)" if self.mix.peak_limited else ""
            out.append(f"mix: {self.mix.loudness_lufs:.2f} LUFS integrated{limited}, true peak "
                       f"{self.mix.true_peak_dbfs:.2f} dBFS")
        out += [f"wrote {path}" for path in self.files]
        return out


def movie_name(track: str | Path) -> str:
    """``Film.ad.jsonl`` → ``Film``."""
    name = Path(track).name
    for suffix in (".ad.jsonl", ".jsonl"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(track).stem


def read_ad_cues(path: str | Path) -> list[SpeechCue]:
    """The cues of a ``.ad.jsonl``: one JSON object per line with ``start`` and ``end`` (seconds) and ``text``.

    Raises:
        FileNotFoundError: no such file.
        CueFileError: a line that is not such an object (the message gives its number).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"AD cue file not found: {path}")
    cues = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            cue = SpeechCue(float(row["start"]), float(row["end"]), str(row["text"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise CueFileError(f"{path}:{number}: expected {{\"start\": s, \"end\": s, \"text\": ...}} ({err!r})") \
                from err
        cues.append(cue)
    if not cues:
        raise CueFileError(f"{path} holds no cues")
    return cues


def speak(request: SpeakRequest, synthesiser: Synthesiser | None = None) -> SpeakReport:
    """Synthesise the AD track of ``request.track`` (and the mix with ``request.film_audio``) and write the WAVs.

    Raises:
        FileNotFoundError, CueFileError, TimelineError: bad input.
        moviead.speech.audio_io.OutputFolderError: the output folder cannot be created or written.
        moviead.speech.synth.SynthesiserMissingError: eSpeak NG is not installed (says how to install it).
        moviead.speech.audio_io.ProgrammeAudioError: the film audio is unreadable or shorter than the timeline.
    """
    cues = read_ad_cues(request.track)
    last_end = max(c.end for c in cues)
    if request.duration is not None and request.duration < last_end:
        raise TimelineError(f"--duration {request.duration:.2f} s ends before the last cue ({last_end:.2f} s)")
    out = prepare_output_folder(request.out)
    if synthesiser is None:
        synthesiser_info()  # fails now, with how to install it, if eSpeak NG is missing
    sr = int(request.sample_rate)
    programme = None
    if request.film_audio is not None:
        # the timeline: --duration, else the whole film audio (which must reach past the last cue)
        programme = read_programme_audio(request.film_audio, sr, request.duration or last_end,
                                         cut=request.duration is not None)
    timeline = len(programme) / sr if programme is not None else (request.duration or last_end)
    base = 60.0 * request.words_per_second
    track = ad_track(cues, timeline, sr, base, base * request.max_speedup, synthesiser)
    peak = true_peak_dbfs(track.samples)
    if peak > request.peak_dbfs:  # keep the speech-only track below full scale too
        track.samples *= np.float32(10.0 ** ((request.peak_dbfs - peak) / 20.0))
        peak = true_peak_dbfs(track.samples)
    movie = movie_name(request.track)
    files = {out / f"{movie}.ad.wav": track.samples}
    mix = None
    if programme is not None:
        mix = duck_and_mix(programme, track.samples, track.speech_intervals(), sr, request.duck_db, request.attack_s,
                           request.release_s, request.ad_gain_db, request.target_lufs, request.peak_dbfs)
        files[out / f"{movie}.mix.wav"] = mix.samples
    written = write_wavs(files, sr)
    try:
        loudness = integrated_loudness(track.samples, sr)
    except MissingAudioDependencyError:  # the speech-only track does not need pyloudnorm
        loudness = math.nan
    return SpeakReport(movie, timeline, track, energy_inside(track.samples, sr, track.cue_intervals()), peak,
                       loudness, mix, written, base_wpm=base)

