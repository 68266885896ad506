"""Reading the programme audio (PyAV) and writing WAV files so that no half-written file looks complete.

``write_wavs`` renders every file to a hidden temporary name in the output folder (``.<name>.partial-<pid>``) and
renames them to their final names only when all are written: a run that fails leaves no ``.wav`` of that run, and
a crash leaves only ``.partial`` files. WAVs are 16-bit PCM mono; a signal beyond full scale is refused, never
clipped.
"""

from __future__ import annotations

import os
import tempfile
import wave
from pathlib import Path
from typing import Mapping

import numpy as np

from moviead.user_errors import UserError


class ProgrammeAudioError(ValueError):
    """The film audio cannot be read, has no audio stream, or is shorter than the AD timeline."""


class OutputFolderError(UserError, OSError):
    """The output folder cannot be created or written to."""


def read_programme_audio(path: str | Path, sample_rate: int, min_duration: float | None = None,
                         cut: bool = True, tolerance_s: float = 0.05) -> np.ndarray:
    """Decode the first audio stream of ``path`` (a WAV, or any file PyAV/FFmpeg decodes, e.g. the film itself),
    down-mixed to mono and resampled to ``sample_rate`` Hz.

    Args:
        min_duration: the timeline in seconds: the audio must be at least this long (up to ``tolerance_s`` short,
            which is padded with silence).
        cut: with ``min_duration``, drop what comes after it.

    Returns:
        float32 samples ``(N,)``; N = ``round(min_duration * sample_rate)`` with ``min_duration`` and ``cut``.

    Raises:
        FileNotFoundError: no such file.
        ProgrammeAudioError: unreadable, no audio stream, or shorter than ``min_duration``.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"film audio not found: {path}")
    chunks = []
    try:
        with av.open(str(path)) as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise ProgrammeAudioError(f"{path} has no audio stream")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            for frame in container.decode(stream):
                chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except av.FFmpegError as err:
        raise ProgrammeAudioError(f"cannot decode the film audio {path}: {err}") from err
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if min_duration is None:
        return samples
    wanted = round(min_duration * sample_rate)
    if len(samples) < wanted - round(tolerance_s * sample_rate):
        raise ProgrammeAudioError(f"the film audio {path} lasts {len(samples) / sample_rate:.2f} s, shorter than the "
                                  f"AD timeline ({min_duration:.2f} s): give the whole film's audio, or a shorter "
                                  "--duration if the cues allow it")
    if cut:
        samples = samples[:wanted]
    return np.pad(samples, (0, max(0, wanted - len(samples))))


def prepare_output_folder(folder: str | Path) -> Path:
    """Create ``folder`` (and its parents) and check that a file can be written there.

    Raises:
        OutputFolderError: it cannot be created (e.g. a file of that name is in the way) or is not writable.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputFolderError(f"cannot create the output folder {folder}: {err.strerror or err}") from err
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as err:
        raise OutputFolderError(f"the output folder {folder} is not writable: {err.strerror or err}") from err
    return folder


def _write_pcm16(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(int(sample_rate))
        out.writeframes(np.round(samples * 32767.0).astype("<i2").tobytes())


def write_wavs(files: Mapping[str | Path, np.ndarray], sample_rate: int) -> list[Path]:
    """Write each float32 mono signal ``(N,)`` in [-1, 1] as a 16-bit WAV at ``sample_rate`` Hz, all or none.

    Raises:
        ValueError: a signal is beyond full scale (it would clip) or not finite; nothing is written.
        OutputFolderError: writing failed; no final file of this call is left.
    """
    for path, samples in files.items():
        if samples.ndim != 1 or not np.all(np.isfinite(samples)):
            raise ValueError(f"{path}: expected finite mono samples (N,), got shape {samples.shape}")
        if len(samples) and float(np.max(np.abs(samples))) > 1.0:
            raise ValueError(f"{path}: the signal peaks above full scale and would clip")
    partial = {Path(p): Path(p).with_name(f".{Path(p).name}.partial-{os.getpid()}") for p in files}
    renamed: list[Path] = []
    try:
        for path, samples in files.items():
            _write_pcm16(partial[Path(path)], samples, sample_rate)
        for final, temporary in partial.items():
            os.replace(temporary, final)
            renamed.append(final)
    except BaseException as err:
        for path in [*partial.values(), *renamed]:  # the set is all or nothing
            path.unlink(missing_ok=True)
        if not isinstance(err, OSError):
            raise
        raise OutputFolderError(f"writing {', '.join(str(p) for p in partial)} failed: {err.strerror or err}") from err
    return list(partial)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A 16-bit mono WAV → (float32 samples (N,) in [-1, 1], sample rate Hz)."""
    with wave.open(str(Path(path)), "rb") as src:
        if src.getsampwidth() != 2 or src.getnchannels() != 1:
            raise ValueError(f"{path}: expected a 16-bit mono WAV")
        data = np.frombuffer(src.readframes(src.getnframes()), dtype="<i2")
        return data.astype(np.float32) / 32767.0, src.getframerate()
