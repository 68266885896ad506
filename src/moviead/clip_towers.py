"""Loading open_clip models offline: a released checkpoint by path, or a ``local-dir:`` folder.

A leaf module (it imports nothing of moviead): the data layer's sentence encoders, feature extraction and the
Stage-I CLIP adaptation all load their CLIP towers through it.

Nothing is downloaded. A real run names the architecture and the checkpoint file
(``ViT-L-14`` + ``/weights/ViT-L-14-openai.pt``); tests and exported adapted towers use open_clip's own
``local-dir:`` layout (``open_clip_config.json`` + ``open_clip_model.safetensors``), written by
:func:`save_open_clip_dir`. Random weights only when asked for explicitly (``random_init=True``: toy runs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import open_clip
import torch
from safetensors.torch import save_model
from torch import nn

LOCAL_DIR = "local-dir:"


def tiny_open_clip_config(
    embed_dim: int = 32, image_size: int = 32, patch_size: int = 8, width: int = 32, layers: int = 2,
    text_width: int = 32, text_layers: int = 2, heads: int = 2, context_length: int = 32,
) -> dict[str, Any]:
    """An open_clip ``model_cfg`` for a ViT/text-transformer CLIP small enough for CPU tests."""
    return {
        "embed_dim": embed_dim,
        "vision_cfg": {"image_size": image_size, "layers": layers, "width": width, "patch_size": patch_size,
                       "head_width": width // heads},
        "text_cfg": {"context_length": context_length, "vocab_size": 49408, "width": text_width, "heads": heads,
                     "layers": text_layers},
    }


def save_open_clip_dir(model: nn.Module, model_cfg: dict[str, Any], out_dir: str | Path,
                       preprocess_cfg: dict[str, Any] | None = None) -> Path:
    """Write ``model`` in open_clip's ``local-dir:`` layout; load it back with ``load_open_clip('local-dir:DIR')``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg or {}}
    (out / "open_clip_config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    save_model(model, str(out / "open_clip_model.safetensors"))
    return out


def load_open_clip(
    model_name: str, checkpoint: str | None = None, random_init: bool = False, model_config_file: str | None = None
) -> tuple[nn.Module, Callable, Callable]:
    """An open_clip CLIP model, its eval image transform and its tokenizer, without any download.

    Args:
        model_name: an open_clip architecture name (``ViT-L-14``, ``ViT-B-32``) or ``local-dir:PATH``.
        checkpoint: path of the weights for an architecture name (``.pt``/``.bin``/``.safetensors``).
        random_init: allow random weights (toy runs and tests only).
        model_config_file: an open_clip architecture JSON (``{"embed_dim", "vision_cfg", "text_cfg"}``),
            registered under its file stem before ``model_name`` is looked up.

    Raises:
        FileNotFoundError: a checkpoint or local dir that does not exist, or no weights given at all.
    """
    if model_config_file is not None:
        if not Path(model_config_file).is_file():
            raise FileNotFoundError(f"open_clip model config not found: {model_config_file}")
        open_clip.add_model_config(model_config_file)
    if model_name.startswith(LOCAL_DIR):
        folder = Path(model_name[len(LOCAL_DIR):])
        if not (folder / "open_clip_config.json").is_file():
            raise FileNotFoundError(f"{folder}: no open_clip_config.json; write one with save_open_clip_dir()")
        if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")) and not any(folder.glob("*.pth")):
            raise FileNotFoundError(f"{folder}: no weights file (open_clip_model.safetensors) beside the config")
        model, _, preprocess = open_clip.create_model_and_transforms(model_name)
    else:
        if checkpoint is None and not random_init:
            raise FileNotFoundError(
                f"no weights for open_clip model {model_name!r}: set the checkpoint to the weights file "
                "(e.g. the OpenAI ViT-L-14 .pt), point the model at a local-dir: folder, or set random_init=true "
                "for a toy run"
            )
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise FileNotFoundError(f"open_clip checkpoint not found: {checkpoint}")
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=checkpoint, load_weights=checkpoint is not None, pretrained_text=False
        )
    tokenizer = open_clip.get_tokenizer(model_name)
    model.eval()
    return model, preprocess, tokenizer


class OpenCLIPTokenizer:
    """open_clip's tokenizer behind the Hugging Face call signature the data layer uses.

    ``tokenizer(texts, padding=..., truncation=True, max_length=L, return_tensors="pt")`` returns
    ``input_ids`` (B, C) and ``attention_mask`` (B, C) with C the model's context length, whatever the padding
    asked for: open_clip's text tower adds a positional embedding of exactly C positions. Texts are cut to
    ``min(L, C)`` tokens keeping the end-of-text token (open_clip pools at it).
    """

    pad_token = "<pad>"

    def __init__(self, tokenizer: Callable, context_length: int) -> None:
        self.tokenizer = tokenizer
        self.context_length = context_length

    def __call__(self, texts, padding: str = "longest", truncation: bool = True, max_length: int | None = None,
                 return_tensors: str = "pt") -> dict[str, torch.Tensor]:
        length = min(max_length or self.context_length, self.context_length)
        ids = self.tokenizer(list(texts), context_length=length)  # (B, length), 0-padded, EOT kept
        full = torch.zeros(ids.shape[0], self.context_length, dtype=torch.long)
        full[:, :length] = ids
        return {"input_ids": full, "attention_mask": (full != 0).long()}
