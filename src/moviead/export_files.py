"""The file names of ``moviead train``'s ``export/`` folder, defined once for the writers and the readers.

Stage-I (PME): :data:`PME_WEIGHTS` + :data:`PME_CONFIG` (:meth:`PretrainedMovieEncoder.save_pretrained`).
Stage-I (DistinctAD CLIP adaptation): adapter mode :data:`CLIP_ADAPTER_WEIGHTS` + :data:`CLIP_ADAPTER_CONFIG`
(:meth:`CLIPVideoAdapter.save_pretrained`); tower mode the adapted CLIP in open_clip's ``local-dir:`` layout under
:data:`OPEN_CLIP_DIR`. Stage-II: :data:`CAPTIONER_WEIGHTS` (the trainable weights) + :data:`CAPTIONER_CONFIG`
(what rebuilds the recipe, and the hash of the Stage-I export it was trained on). Every export also holds the
run's resolved :data:`RUN_CONFIG`, for people: no loader reads it.

A leaf module (it imports nothing of moviead).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PME_WEIGHTS = "pme.safetensors"
PME_CONFIG = "pme_config.json"
CLIP_ADAPTER_WEIGHTS = "clip_adapter.safetensors"
CLIP_ADAPTER_CONFIG = "clip_adapter_config.json"
OPEN_CLIP_DIR = "open_clip"
CAPTIONER_WEIGHTS = "captioner.safetensors"
CAPTIONER_CONFIG = "captioner_config.json"
RUN_CONFIG = "config.yaml"


def export_sha256(weights: str | Path, *files: str | Path) -> str:
    """Content hash (SHA-256, hex) of an export: every tensor of the safetensors file ``weights`` (name, dtype,
    shape and bytes, in name order), then the bytes of each of ``files`` (e.g. its config JSON).

    The tensors are hashed rather than the file: safetensors writes its header (and the tied-weight names
    ``save_model`` keeps there) in an arbitrary order, so the same weights saved twice differ byte for byte.
    """
    import torch
    from safetensors import safe_open

    digest = hashlib.sha256()
    with safe_open(str(weights), framework="pt") as handle:
        for name in sorted(handle.keys()):
            tensor = handle.get_tensor(name).contiguous()
            digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    for path in files:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def is_captioner_export(path: str | Path) -> bool:
    """True for a folder holding a Stage-II export (:data:`CAPTIONER_CONFIG`)."""
    path = Path(path)
    return path.is_dir() and (path / CAPTIONER_CONFIG).is_file()
