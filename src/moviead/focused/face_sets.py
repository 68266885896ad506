"""Labelled face embeddings on disk: what ``build-char-bank`` clusters and ``sweep-recognition`` scores.

Two layouts, read by :func:`read_face_set`:

- **npz** (``write_face_set`` writes it; ``build-char-bank --save-embeddings`` too)::

      embeddings   float (N, D)   one face embedding per row (L2-normalised on reading)
      labels       str (N,)       the character's name, or "other" for a face of none of the bank's characters
      movies       str (N,)       the imdbid of each face (the folder name of its best-query bank)
      confidences  float (N,)     optional: detector confidence (faces below the minimum are skipped)

- **folder** ``{imdbid}/{LABEL}/*.npy``, each file one embedding (D,) or several (n, D); confidence 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moviead.data.errors import DataFormatError

OTHER = "other"
"""The label of a face that is none of the bank's characters (and what recognition answers for it)."""


@dataclass(frozen=True)
class FaceSet:
    """N labelled faces: embeddings (N, D) float32 unit rows, labels (N,), movies (N,), confidences (N,)."""

    embeddings: np.ndarray
    labels: np.ndarray
    movies: np.ndarray
    confidences: np.ndarray

    def __post_init__(self) -> None:
        n = self.embeddings.shape[0]
        if self.embeddings.ndim != 2 or not (len(self.labels) == len(self.movies) == len(self.confidences) == n):
            sizes = f"{self.embeddings.shape}, {len(self.labels)}, {len(self.movies)}, {len(self.confidences)}"
            raise ValueError(f"a face set needs embeddings (N, D) and N labels, movies and confidences; got {sizes}")

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    def select(self, keep: np.ndarray) -> FaceSet:
        """The faces where the (N,) bool ``keep`` is True."""
        return FaceSet(self.embeddings[keep], self.labels[keep], self.movies[keep], self.confidences[keep])

    def by_movie(self) -> dict[str, FaceSet]:
        """One face set per imdbid, movies sorted."""
        return {str(m): self.select(self.movies == m) for m in sorted(set(self.movies.tolist()))}


def normalise_rows(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` (N, D) divided by their L2 norm, as float32.

    Raises:
        ValueError: a row with norm 0 or a non-finite value.
    """
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    if not np.isfinite(x).all() or (norms == 0).any():
        raise ValueError("face embeddings must be finite and non-zero")
    return (x / norms).astype(np.float32)


def make_face_set(
    embeddings: np.ndarray | Sequence[Sequence[float]], labels: Sequence[str] | np.ndarray,
    movies: Sequence[str] | np.ndarray, confidences: Sequence[float] | np.ndarray | None = None,
) -> FaceSet:
    """A :class:`FaceSet` from arrays or lists: embeddings (N, D), labels and movies (N,), confidences (N,) or None
    (all 1); rows are L2-normalised."""
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be (N, D), got {embeddings.shape}")
    n = embeddings.shape[0]
    conf = np.ones(n, dtype=np.float32) if confidences is None else np.asarray(confidences, dtype=np.float32)
    return FaceSet(normalise_rows(embeddings) if n else embeddings.astype(np.float32),
                   np.asarray(labels, dtype=str).reshape(n), np.asarray(movies, dtype=str).reshape(n), conf)


def write_face_set(faces: FaceSet, path: str | Path) -> Path:
    """Save ``faces`` in the npz layout of the module docstring."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, embeddings=faces.embeddings, labels=faces.labels, movies=faces.movies,
             confidences=faces.confidences)
    return path


def _read_npz(path: Path) -> FaceSet:
    fix = "write embeddings (N, D), labels (N,), movies (N,) [and confidences (N,)] with moviead's write_face_set"
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("embeddings", "labels", "movies") if k not in data]
            if missing:
                raise DataFormatError(path, f"missing arrays {missing} (found {sorted(data.files)})", fix)
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise DataFormatError(path, f"not a readable npz file ({err})", fix) from err
    try:
        return make_face_set(arrays["embeddings"], arrays["labels"], arrays["movies"], arrays.get("confidences"))
    except ValueError as err:
        raise DataFormatError(path, str(err), fix) from err


def _read_folder(root: Path) -> FaceSet:
    rows, labels, movies = [], [], []
    for file in sorted(root.glob("*/*/*.npy")):
        array = np.load(file, allow_pickle=False)
        array = array[None] if array.ndim == 1 else array
        if array.ndim != 2:
            raise DataFormatError(file, f"expected an embedding (D,) or (n, D), found {array.shape}", "re-save it")
        rows.append(array)
        labels += [file.parent.name] * len(array)
        movies += [file.parent.parent.name] * len(array)
    if not rows:
        raise DataFormatError(root, "no embeddings found (expected {imdbid}/{LABEL}/*.npy)",
                              "point at a folder of labelled embeddings or at an npz file")
    dims = {r.shape[1] for r in rows}
    if len(dims) > 1:
        raise DataFormatError(root, f"embeddings of different dimensions {sorted(dims)}", "use one face model")
    return make_face_set(np.concatenate(rows), labels, movies)


def read_face_set(path: str | Path) -> FaceSet:
    """Read labelled faces from an npz file or a ``{imdbid}/{LABEL}/*.npy`` folder (layouts in the module docstring).

    Raises:
        DataFormatError: missing path, missing arrays, bad shapes or non-finite embeddings, naming the file.
    """
    path = Path(path)
    if path.is_dir():
        return _read_folder(path)
    if not path.is_file():
        raise DataFormatError(path, "labelled faces not found", "give an npz file or a {imdbid}/{LABEL}/*.npy folder")
    return _read_npz(path)
