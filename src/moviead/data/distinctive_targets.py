"""Distinctive-word targets of DistinctAD Stage-II (SPEC §5.3), built in the collate function.

Each distinctive word (:func:`moviead.losses.distinctive.distinctive_words`) stands for the first sub-token the
decoder's tokenizer gives it: for a byte-level BPE (GPT-2, OPT, Qwen2, the toy BPE) the word is encoded with a
leading space, as it appears inside a sentence (``" Tamsin"`` -> ``"ĠTamsin"`` or its first piece); other
tokenizers (WordPiece, SentencePiece, which marks word starts itself) encode the bare word. A leading token that is
only the space (a BPE without the merge of the space and the word's first letter, SentencePiece's lone ``"▁"``)
is skipped: the first sub-token is the first one holding part of the word. The target of a batch is multi-hot
(B, V), V the width of the LM head.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import torch

from moviead.wordlists import distinctive_words


def is_byte_level(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` is a byte-level BPE (its pre-tokenizer contains a ``ByteLevel`` step)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return '"ByteLevel"' in json.dumps(json.loads(backend.to_str()).get("pre_tokenizer"))
    return hasattr(tokenizer, "byte_encoder")  # a slow GPT-2-style tokenizer


class DistinctiveWordTargets:
    """Texts -> the multi-hot (B, V) distinctive-word target.

    Args:
        tokenizer: the decoder's Hugging Face tokenizer.
        vocab_size: V, the LM head's output width (ids of the first sub-tokens must be below it).
        context_ads: how many of the most recent context ADs D is computed against (DistinctAD's context clips).

    Picklable when the tokenizer is (DataLoader workers); word -> id lookups are cached per process.
    """

    def __init__(self, tokenizer: Any, vocab_size: int, context_ads: int) -> None:
        if vocab_size < 1 or context_ads < 0:
            raise ValueError(f"vocab_size must be >= 1 and context_ads >= 0, got {vocab_size}, {context_ads}")
        self.tokenizer = tokenizer
        self.vocab_size = int(vocab_size)
        self.context_ads = int(context_ads)
        self.prefix = " " if is_byte_level(tokenizer) else ""
        self._cache: dict[str, int] = {}

    def first_subtoken(self, word: str) -> int:
        """The id of the first sub-token of ``word`` (with the leading space of a byte-level BPE) that is not only
        whitespace."""
        if word not in self._cache:
            ids = self.tokenizer(self.prefix + word, add_special_tokens=False)["input_ids"]
            pieces = [i for i in ids if self.tokenizer.decode([i]).strip()]
            if not pieces:
                raise ValueError(f"the tokenizer encodes {self.prefix + word!r} to no token holding the word")
            if not 0 <= pieces[0] < self.vocab_size:
                raise ValueError(f"{word!r} maps to token {pieces[0]}, outside the LM head's {self.vocab_size} rows")
            self._cache[word] = int(pieces[0])
        return self._cache[word]

    def token_ids(self, text: str, context_texts: Sequence[str]) -> list[int]:
        """Sorted unique first sub-tokens of the distinctive words of ``text`` against its last ``context_ads``
        context texts (oldest first)."""
        recent = list(context_texts)[-self.context_ads :] if self.context_ads else []
        return sorted({self.first_subtoken(word) for word in distinctive_words(text, recent)})

    def __call__(self, texts: Sequence[str], contexts: Sequence[Sequence[str]]) -> torch.Tensor:
        """(B, V) float32 multi-hot: texts[b] against contexts[b] (its context AD texts, oldest first)."""
        if len(texts) != len(contexts):
            raise ValueError(f"{len(texts)} texts but {len(contexts)} contexts")
        targets = torch.zeros(len(texts), self.vocab_size, dtype=torch.float32)
        for row, (text, context) in enumerate(zip(texts, contexts)):
            targets[row, self.token_ids(text, context)] = 1.0
        return targets
