"""Checkpoint files: written atomically, read only as plain weights, and the RNG states an exact resume needs.

A ``.ckpt`` / ``.pth`` is a pickle, and unpickling can run code (an object whose ``__reduce__`` returns a call).
:func:`load_checkpoint_safely` reads with ``torch.load(weights_only=True)``, which accepts tensors, numbers,
strings and plain containers only, and refuses anything else with a message that names the file.
:func:`save_checkpoint_atomically` writes to a temporary file in the same folder, fsyncs it, renames it over
the target and fsyncs the folder, so a process killed mid-write leaves the previous file intact.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.distributed as dist

from moviead.atomic_files import fsync_folder
from moviead.user_errors import UserError


class UnsafeCheckpointError(UserError, pickle.UnpicklingError):
    """A checkpoint holding objects other than tensors and plain containers (it could run code when loaded)."""


def _unpickler_reason(err: Exception) -> str:
    """The informative part of torch's weights-only error (e.g. ``Unsupported global: GLOBAL os.system``)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines:
        if line.startswith("WeightsUnpickler error:"):
            return line.removeprefix("WeightsUnpickler error:").strip().split(". ")[0]
        if "GLOBAL" in line:  # "Trying to load unsupported GLOBAL posix.system whose module posix is blocked."
            return line.rstrip(".")
    return lines[-1] if lines else type(err).__name__


def load_checkpoint_safely(path: str | Path, map_location: Any = "cpu", mmap: bool = False) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``.

    Args:
        path: a file written by ``torch.save`` (a Lightning ``.ckpt``, a ``.pth`` state dict).
        map_location: where tensors go (default the CPU).
        mmap: map the file instead of reading it (cheap when only a few entries are needed).

    Returns:
        The checkpoint's top-level dict.

    Raises:
        FileNotFoundError: no file at ``path``.
        UnsafeCheckpointError: the file holds other objects than tensors and plain containers (it is not a
            plain-weights checkpoint); the message names the file and the first offending object.
        ValueError: the file is not a complete ``torch.save`` archive, or its top level is not a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f"refusing to load {path}: it is not a plain-weights checkpoint (only tensors, numbers, strings and "
            f"dicts/lists of them are accepted; torch.load(weights_only=True) says: {_unpickler_reason(err)}). "
            "Objects in a checkpoint run code when unpickled: load only files you trust, and re-save them as a "
            "state dict or safetensors."
        ) from err
    except RuntimeError as err:
        raise ValueError(f"{path} is not a complete torch.save checkpoint (truncated or corrupt?): {err}") from err
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a checkpoint dict")
    return obj


def save_checkpoint_atomically(checkpoint: Mapping[str, Any], path: str | Path) -> Path:
    """``torch.save(checkpoint, path)`` through a temporary file + fsync + rename: ``path`` is old or new, never torn.

    The temporary file (``.<name>.<random>.tmp`` beside ``path``) is removed if writing fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(dict(checkpoint), handle)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the mode torch.save would have
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)
    return path


# ------------------------------------------------------------------------------------------------ RNG states


def capture_rng_states() -> dict[str, Any]:
    """This process's torch (CPU and CUDA), NumPy and Python RNG states, as tensors and plain containers only
    (so a checkpoint holding them still loads with ``weights_only=True``)."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "python": {"version": int(py_version), "state": [int(v) for v in py_state], "gauss": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = [state.cpu() for state in torch.cuda.get_rng_state_all()]
    return states


def restore_rng_states(states: Mapping[str, Any]) -> None:
    """Set the RNGs to what :func:`capture_rng_states` returned (CUDA only when present in both)."""
    torch.set_rng_state(states["torch"].cpu())
    np_state = states["numpy"]
    np.random.set_state(
        (
            np_state["name"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    py_state = states["python"]
    random.setstate((py_state["version"], tuple(py_state["state"]), py_state["gauss"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(states["cuda"]))


def gather_from_ranks(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Every rank's ``state`` in rank order (a collective: all ranks call it); ``[state]`` in a single process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [state]
    states: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(states, state)
    return states
