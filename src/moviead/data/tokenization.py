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
