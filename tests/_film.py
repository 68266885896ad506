"""A film for the ``moviead describe`` tests: random frame features of one movie and its subtitles as an SRT."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from moviead.export import format_timestamp


def write_film(folder: Path, dim: int, subtitles: Sequence[tuple[float, float, str]], seconds: float = 60.0,
               fps: float = 5.0, movie: str = "myfilm") -> tuple[Path, Path]:
    """``folder/film.h5`` ((seconds·fps, dim) float16 features of ``movie``, seed 0) and ``folder/<movie>.srt``; SRT
    holds whole milliseconds, so any finer part of a subtitle time is dropped."""
    features = folder / "film.h5"
    with h5py.File(features, "w") as f:
        f[movie] = np.random.default_rng(0).standard_normal((int(seconds * fps), dim)).astype(np.float16)

    def stamp(t: float) -> str:
        return format_timestamp(int(t * 1000 + 1e-6), ",")

    srt = folder / f"{movie}.srt"
    srt.write_text("".join(f"{i + 1}\n{stamp(s)} --> {stamp(e)}\n{text}\n\n"
                           for i, (s, e, text) in enumerate(subtitles)), encoding="utf-8")
    return features, srt
