"""Frame-feature access for MAD-v2 style data: one HDF5 file keyed by movie, or a folder of ``{movie}.npy``.

Both stores open their files lazily and **per process**: a store created in the main process and pickled
into DataLoader workers opens its own handle in each worker on first use (h5py handles must not cross a
fork). Nothing reads a whole feature file: each read touches only the frames asked for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from moviead.data.errors import DataFormatError


class FeatureStore(Protocol):
    """What the data layer needs from a feature source."""

    path: Path

    def movies(self) -> list[str]: ...

    def num_frames(self, movie: str) -> int: ...

    def dim(self) -> int: ...

    def read(self, movie: str, indices: np.ndarray) -> np.ndarray:
        """Frames at the sorted ``indices`` (N,) as float32, shape (N, D), read in one contiguous slice."""
        ...


def _check_range(path: Path, movie: str, indices: np.ndarray, length: int) -> tuple[int, int]:
    first, last = int(indices[0]), int(indices[-1])
    if first < 0 or last < first or last >= length:
        raise DataFormatError(
            path,
            f"frames {first}..{last} requested but the movie has {length} frames",
            "drop records whose interval lies past the end of the features (the datasets do this and count them)",
            record=f"movie {movie}",
        )
    return first, last


def _width_error(path: Path, movie: str, shape: tuple[int, ...], expected: int) -> DataFormatError:
    """The error for a movie whose features are not (T, ``expected``)."""
    if len(shape) != 2:
        return DataFormatError(
            path, f"features have shape {shape}, expected (frames, {expected})",
            "store one (T, D) array per movie (re-extract its features with `moviead extract-features`)",
            record=f"movie {movie}",
        )
    return DataFormatError(
        path,
        f"features are {shape[1]}-d but the config expects {expected}-d",
        f"set data.feature_dim={shape[1]} (e.g. 512 for CLIP B/32, 768 for L/14) or point to the right feature file; "
        "if only some movies differ, re-extract them with the same model as the others",
        record=f"movie {movie}",
    )


def _check_width(path: Path, movie: str, shape: tuple[int, ...], expected: int | None) -> None:
    """Raise unless a movie's features are (T, ``expected``); nothing is checked when ``expected`` is None."""
    if expected is not None and (len(shape) != 2 or shape[1] != expected):
        raise _width_error(path, movie, shape, expected)


def _pick(path: Path, movie: str, window: np.ndarray, indices: np.ndarray, first: int) -> np.ndarray:
    """Rows ``indices`` of ``window`` (which starts at frame ``first``) as float32; raise on NaN or inf."""
    frames = window[indices - first].astype(np.float32)
    if not np.isfinite(frames).all():
        bad = int(indices[np.argwhere(~np.isfinite(frames))[0, 0]])
        raise DataFormatError(
            path,
            f"non-finite (NaN or inf) feature values at frame {bad}",
            "re-extract the features of this movie (`moviead extract-features`) or remove the movie from the split",
            record=f"movie {movie}",
        )
    return frames


class H5FeatureStore:
    """Features in one HDF5 file with one (T, D) dataset per movie id (MAD-v2's ``*_5fps.h5``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataFormatError(
                self.path,
                "feature file not found",
                "set data.<dataset>.features to the h5 file (relative to data.root)",
            )
        self._handle = None
        self._pid: int | None = None
        self._datasets: dict = {}
        self.expected_dim: int | None = None  # set by open_feature_store: every movie is checked on first use

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.update(_handle=None, _pid=None, _datasets={})
        return state

    def _file(self):
        import h5py

        if self._handle is None or self._pid != os.getpid():
            try:
                self._handle = h5py.File(self.path, "r")
            except OSError as err:
                raise DataFormatError(
                    self.path, f"not a readable HDF5 file ({err})", "check the file is complete"
                ) from err
            self._pid = os.getpid()
            self._datasets = {}
        return self._handle

    def close(self) -> None:
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle = None
        self._datasets = {}

    def movies(self) -> list[str]:
        return sorted(self._file().keys())

    def _dataset(self, movie: str):
        handle = self._file()
        if movie in self._datasets:
            return self._datasets[movie]
        if movie not in handle:
            raise DataFormatError(
                self.path,
                f"movie {movie!r} has no features in this file",
                "extract its features (`moviead extract-features`) or remove the movie from the annotations/split",
                record=f"movie {movie}",
            )
        dataset = handle[movie]
        _check_width(self.path, movie, tuple(dataset.shape), self.expected_dim)
        self._datasets[movie] = dataset
        return dataset

    def num_frames(self, movie: str) -> int:
        return int(self._dataset(movie).shape[0])

    def dim(self) -> int:
        handle = self._file()
        for key in handle:
            return int(handle[key].shape[-1])
        raise DataFormatError(self.path, "the feature file holds no movie", "write at least one (T, D) dataset")

    def read(self, movie: str, indices: np.ndarray) -> np.ndarray:
        dataset = self._dataset(movie)
        first, last = _check_range(self.path, movie, indices, dataset.shape[0])
        return _pick(self.path, movie, dataset[first : last + 1], indices, first)


class NpyFolderFeatureStore:
    """Features as a folder of ``{movie}.npy`` arrays of shape (T, D) (AutoAD's layout), memory-mapped."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataFormatError(
                self.path, "feature folder not found", "set data.<dataset>.features to the folder of {movie}.npy files"
            )
        self._arrays: dict[str, np.ndarray] = {}
        self.expected_dim: int | None = None  # set by open_feature_store: every movie is checked on first use

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_arrays"] = {}
        return state

    def movies(self) -> list[str]:
        return sorted(p.stem for p in self.path.glob("*.npy"))

    def _array(self, movie: str) -> np.ndarray:
        if movie not in self._arrays:
            file = self.path / f"{movie}.npy"
            if not file.is_file():
                raise DataFormatError(
                    file,
                    f"movie {movie!r} has no feature file",
                    "extract its features or remove the movie from the annotations/split",
                    record=f"movie {movie}",
                )
            array = np.load(file, mmap_mode="r")
            _check_width(file, movie, tuple(array.shape), self.expected_dim)
            self._arrays[movie] = array
        return self._arrays[movie]

    def num_frames(self, movie: str) -> int:
        return int(self._array(movie).shape[0])

    def dim(self) -> int:
        movies = self.movies()
        if not movies:
            raise DataFormatError(self.path, "the feature folder holds no .npy file", "extract features first")
        return int(self._array(movies[0]).shape[-1])

    def read(self, movie: str, indices: np.ndarray) -> np.ndarray:
        array = self._array(movie)
        file = self.path / f"{movie}.npy"
        first, last = _check_range(file, movie, indices, array.shape[0])
        return _pick(file, movie, array[first : last + 1], indices, first)

    def close(self) -> None:
        self._arrays = {}


def open_feature_store(path: str | Path, expected_dim: int | None = None) -> H5FeatureStore | NpyFolderFeatureStore:
    """Open ``path`` as an h5 file or an npy folder and check its feature dimension against the config.

    The first movie is checked here; every other movie when it is first used (``num_frames`` or ``read``), so
    a single movie extracted with another model is named in the error instead of failing deep inside a batch.

    Raises:
        DataFormatError: missing path, or a movie whose dimension differs from ``expected_dim`` (naming it).
    """
    path = Path(path)
    store: H5FeatureStore | NpyFolderFeatureStore
    store = NpyFolderFeatureStore(path) if path.is_dir() else H5FeatureStore(path)
    if expected_dim is not None:
        dim = store.dim()
        if dim != expected_dim:
            raise _width_error(path, store.movies()[0], (0, dim), expected_dim)
        store.expected_dim = expected_dim
    return store
