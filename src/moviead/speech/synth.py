"""eSpeak NG, driven through its C library with :mod:`ctypes`: text → mono speech samples.

Where the library comes from (first found wins):

1. the PyPI package ``espeakng-loader`` (in the ``audio`` and ``dev`` extras, so ``make install`` sets it up): a
   wheel for Linux, macOS and Windows (x86-64 and arm64) that ships ``libespeak-ng`` 1.52 and its
   ``espeak-ng-data``; nothing needs root and CI on a fresh machine gets it from ``pip``;
2. a system library found by :func:`ctypes.util.find_library` (Debian: ``apt-get install libespeak-ng1``), with
   its own data folder.

Why the library and not the ``espeak-ng`` program: ``pip`` can install it without root, and calling it in-process
(synchronous output into a callback) costs a few milliseconds per cue instead of a process and a WAV file per cue.
eSpeak NG keeps global state, so calls are serialised by a lock. Output: 16-bit samples at the library's rate
(22050 Hz for the bundled voices), returned as float32 in [-1, 1].
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from dataclasses import dataclass

import numpy as np

from moviead.user_errors import UserError

INSTALL_HINT = ("install it with `pip install 'moviead[audio]'` (or `pip install espeakng-loader`), or the system "
                "library with `apt-get install libespeak-ng1` (Debian/Ubuntu)")
MIN_WPM, MAX_WPM = 80, 450  # eSpeak NG's espeakRATE_MINIMUM / espeakRATE_MAXIMUM
DEFAULT_WPM = 175  # eSpeak NG's default rate, ≈ 2.9 words per second

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE = 1
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class MissingAudioDependencyError(UserError, RuntimeError):
    """A package or library the spoken track needs is not installed; the message says how to install it."""


class SynthesiserMissingError(MissingAudioDependencyError):
    """eSpeak NG could not be found or started; the message says how to install it."""


@dataclass
class _Engine:
    lib: ctypes.CDLL
    sample_rate: int
    source: str
    callback: object  # the ctypes callback: kept alive as long as the library may call it
    chunks: list[np.ndarray]
    voice: str = ""


_lock = threading.Lock()
_engine: _Engine | None = None


def _locate() -> tuple[str, bytes | None, str]:
    """(library path, data path or None for the library's default, description) of the first eSpeak NG found."""
    try:
        import espeakng_loader
    except ImportError:
        espeakng_loader = None
    if espeakng_loader is not None:
        return (espeakng_loader.get_library_path(), espeakng_loader.get_data_path().encode(),
                f"espeakng-loader {getattr(espeakng_loader, '__version__', '')}".strip())
    found = ctypes.util.find_library("espeak-ng")
    if found:
        return found, None, f"system {found}"
    raise SynthesiserMissingError(f"eSpeak NG is not installed (no espeakng-loader package, no libespeak-ng): "
                                  f"{INSTALL_HINT}")


def _start() -> _Engine:
    global _engine
    if _engine is not None:
        return _engine
    path, data, source = _locate()
    try:
        lib = ctypes.CDLL(path)
    except OSError as err:
        raise SynthesiserMissingError(f"eSpeak NG library {path} could not be loaded ({err}): {INSTALL_HINT}") from err
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_DONT_EXIT)
    if rate <= 0:
        raise SynthesiserMissingError(f"eSpeak NG ({source}) failed to start (its data folder is missing or "
                                      f"broken): {INSTALL_HINT}")
    chunks: list[np.ndarray] = []

    def collect(wav, count, _events) -> int:
        if wav and count > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0  # 0: go on synthesising

    callback = _CALLBACK(collect)
    lib.espeak_SetSynthCallback(callback)
    _engine = _Engine(lib=lib, sample_rate=rate, source=source, callback=callback, chunks=chunks)
    return _engine


def synthesiser_info() -> str:
    """Where eSpeak NG was loaded from, e.g. ``espeakng-loader``; raises :class:`SynthesiserMissingError`."""
    with _lock:
        return _start().source


def synthesise(text: str, rate_wpm: float = DEFAULT_WPM, voice: str = "en") -> tuple[np.ndarray, int]:
    """Speak ``text`` at ``rate_wpm`` words per minute (clamped to eSpeak NG's 80..450).

    Returns:
        ``(samples, sample_rate)``: float32 mono samples in [-1, 1] of shape ``(N,)`` (eSpeak NG's trailing pause
        included) and their rate in Hz (22050 for the bundled voices).

    Raises:
        SynthesiserMissingError: eSpeak NG is not installed (the message says how to install it).
        ValueError: ``voice`` is unknown to eSpeak NG, or the synthesis failed.
    """
    rate = int(round(min(max(float(rate_wpm), MIN_WPM), MAX_WPM)))
    encoded = text.encode("utf-8")
    with _lock:
        engine = _start()
        if engine.voice != voice:
            if engine.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"eSpeak NG has no voice {voice!r} (try 'en', 'en-us', 'de', 'fr', ...)")
            engine.voice = voice
        engine.lib.espeak_SetParameter(_RATE, rate, 0)
        engine.chunks.clear()
        status = engine.lib.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        engine.lib.espeak_Synchronize()
        chunks = list(engine.chunks)
        engine.chunks.clear()
    if status != 0:
        raise ValueError(f"eSpeak NG failed on {text!r} (error {status})")
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    return (samples.astype(np.float32) / 32768.0), engine.sample_rate
