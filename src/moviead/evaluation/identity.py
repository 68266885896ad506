"""Content hashes that tie a predictions file to what produced it (``run.json``'s ``*_sha256`` entries).

:func:`content_identity` hashes

* ``checkpoint_sha256``: the Stage-II checkpoint file, or an export folder's ``captioner.safetensors`` and
  ``captioner_config.json``;
* ``config_sha256``: the resolved config the model was rebuilt from (with ``--data`` / ``--set`` applied);
* ``data_sha256``: ``evaluate``: the split's annotations as read (every AD's movie, index, times and text, every
  subtitle) plus the features file; ``describe``: the features file and the movie;
* ``subtitles_sha256``: ``describe``'s subtitles file (None without one).

Files up to :data:`FULL_HASH_BYTES` are hashed whole (SHA-256 of their bytes). Larger ones (a 60 GB MAD features
file) get a cheap fingerprint: their size, modification time and the SHA-256 of their first and last MiB. A
folder (features as ``{movie}.npy``) is fingerprinted by the names, sizes and modification times of its files.
So a rerun notices a retrained checkpoint, edited annotations or subtitles, another config, and a replaced
features file, without reading terabytes. A leaf of the evaluation layer (it imports no torch).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from moviead.export_files import CAPTIONER_CONFIG, CAPTIONER_WEIGHTS, export_sha256

FULL_HASH_BYTES = 512 << 20
EDGE_BYTES = 1 << 20

WHAT = {  # run.json key -> what changed, for people
    "checkpoint_sha256": "the checkpoint's content changed (retrained or replaced at the same path)",
    "config_sha256": "the resolved config changed",
    "data_sha256": "the input data changed (annotations, subtitles or features)",
    "subtitles_sha256": "the subtitles file changed",
}


def file_fingerprint(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes; above :data:`FULL_HASH_BYTES`: of its size, mtime, first and last MiB."""
    path = Path(path)
    digest = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as handle:
        if size <= FULL_HASH_BYTES:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        else:
            digest.update(f"sampled|{size}|{path.stat().st_mtime_ns}|".encode())
            digest.update(handle.read(EDGE_BYTES))
            handle.seek(size - EDGE_BYTES)
            digest.update(handle.read(EDGE_BYTES))
    return digest.hexdigest()


def path_fingerprint(path: str | Path) -> str:
    """:func:`file_fingerprint` of a file; of a folder, the SHA-256 of its files' relative names, sizes, mtimes.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    if path.is_file():
        return file_fingerprint(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no such file or folder: {path}")
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        stat = item.stat()
        digest.update(f"{item.relative_to(path)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def checkpoint_sha256(checkpoint: str | Path) -> str:
    """Content hash of a Stage-II checkpoint file, or of an export folder's weights and config
    (:func:`moviead.export_files.export_sha256`: the same weights saved twice hash the same)."""
    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        return export_sha256(checkpoint / CAPTIONER_WEIGHTS, checkpoint / CAPTIONER_CONFIG)
    return file_fingerprint(checkpoint)


def config_sha256(cfg: Any) -> str:
    """SHA-256 of a resolved config (an OmegaConf ``DictConfig`` or a plain mapping) as sorted JSON."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()


def annotations_sha256(movies: Mapping[str, Any]) -> str:
    """SHA-256 of a split's annotations: each movie's ADs (index, start, end, text) and subtitles, in order."""
    digest = hashlib.sha256()
    for name in sorted(movies):
        movie = movies[name]
        digest.update(f"movie|{name}\n".encode())
        for ad in movie.ads:
            digest.update(json.dumps(["ad", ad.index, ad.start, ad.end, ad.text]).encode())
        for sub in movie.subtitles:
            digest.update(json.dumps(["sub", sub.start, sub.end, sub.text]).encode())
    return digest.hexdigest()


def content_identity(checkpoint: str | Path, cfg: Any, *, movies: Mapping[str, Any] | None = None,
                     features: str | Path | None = None, movie: str | None = None,
                     subtitles: str | Path | None = None) -> dict[str, str | None]:
    """The ``*_sha256`` entries of ``run.json`` (see the module docstring).

    Args:
        checkpoint: the resolved checkpoint file or export folder.
        cfg: the resolved config the model was rebuilt from.
        movies: ``evaluate``: the split's annotations (movie → ``MovieAnnotations``), before ``--limit-movies``.
        features: the features file or folder read.
        movie: ``describe``: the film's key in ``features``.
        subtitles: ``describe``: its subtitles file.
    """
    parts = [annotations_sha256(movies)] if movies is not None else []
    if features is not None:
        parts.append(path_fingerprint(features))
    if movie is not None:
        parts.append(hashlib.sha256(movie.encode()).hexdigest())
    return {
        "checkpoint_sha256": checkpoint_sha256(checkpoint),
        "config_sha256": config_sha256(cfg),
        "data_sha256": _join(parts) if parts else None,
        "subtitles_sha256": file_fingerprint(subtitles) if subtitles else None,
    }


def describe_change(stored: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    """What differs between a stored ``run.json`` and this run's, in words: hashes by what they cover, settings with
    both values."""
    changed = sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))
    said = []
    for key in changed:
        if key in WHAT and key in stored:
            said.append(f"{WHAT[key]} ({key} {str(stored[key])[:12]} -> {str(current.get(key))[:12]})")
        elif key in WHAT:
            said.append(f"{key} was not recorded (written by an older moviead)")
        else:
            said.append(f"{key} was {stored.get(key)!r}, now {current.get(key)!r}")
    return "; ".join(said)


def _join(parts: Iterable[str]) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()
