"""Redundancy R of FocusedAD (eqs. 9-10): the share of a prediction's content words that the ground truth
does not support.

A content word w of the prediction is redundant when its word vector's largest cosine similarity to the vectors
of the ground-truth content words is below θ (0.5): max_g cos(v_w, v_g) < θ. R = #redundant / #content words,
lower is better. Choices this module makes where the paper is silent:

- content words: lower-cased runs of letters/digits (``[a-z0-9]+``; "Margo's" -> "margo", "s") minus
  :data:`moviead.wordlists.STOPWORDS`; every occurrence counts;
- a prediction word spelled like a ground-truth word has similarity 1, so words without a vector (names, typos)
  still match themselves; otherwise a missing vector is all zeros, similarity 0;
- an empty ground truth makes every prediction word redundant; a prediction without content words has no ratio;
- the corpus value is ``average="macro"`` (default): the mean over predictions of their own R (predictions
  without content words left out), or ``"micro"``: all redundant words over all content words.

Word vectors come from any :class:`WordEncoder`: a static table (:class:`WordVectors`, e.g. GloVe text files) or
a transformer run on each word alone (:class:`TransformerWordEncoder`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import torch
import torch.nn.functional as F

from moviead.wordlists import content_words


class WordEncoder(Protocol):
    """Maps W words to (W, D) vectors (any float dtype; normalised here)."""

    def __call__(self, words: Sequence[str]) -> torch.Tensor: ...


class WordVectors:
    """A static word -> vector table; unknown words get a zero vector.

    Args:
        vectors: word -> (D,) vector. With ``lowercase``, words are matched lower-cased (the first of a clash wins).
    """

    def __init__(self, vectors: Mapping[str, Sequence[float] | torch.Tensor], lowercase: bool = True) -> None:
        if not vectors:
            raise ValueError("empty word-vector table")
        self.lowercase = lowercase
        self.index: dict[str, int] = {}
        for i, word in enumerate(vectors):  # the first of words equal once lower-cased wins
            self.index.setdefault(word.lower() if lowercase else word, i)
        self.table = torch.stack([torch.as_tensor(v, dtype=torch.float32) for v in vectors.values()])  # (V, D)

    @classmethod
    def from_text(cls, path: str | Path, limit: int | None = None, lowercase: bool = True) -> WordVectors:
        """Read GloVe / word2vec text files: ``word v1 v2 ...`` per line (a word2vec ``count dim`` header is
        skipped), the first ``limit`` lines only if given. The first vector of a word wins."""
        vectors: dict[str, list[float]] = {}
        with open(path, encoding="utf-8") as handle:
            for n, line in enumerate(handle):
                parts = line.rstrip().split(" ")
                if n == 0 and len(parts) == 2 and all(p.isdigit() for p in parts):
                    continue
                if limit is not None and len(vectors) >= limit:
                    break
                if len(parts) > 1:
                    vectors.setdefault(parts[0], [float(x) for x in parts[1:]])
        return cls(vectors, lowercase=lowercase)

    def __contains__(self, word: str) -> bool:
        return (word.lower() if self.lowercase else word) in self.index

    def __call__(self, words: Sequence[str]) -> torch.Tensor:
        """(W, D) float32; zeros for unknown words."""
        out = torch.zeros(len(words), self.table.shape[1])
        for row, word in enumerate(words):
            i = self.index.get(word.lower() if self.lowercase else word)
            if i is not None:
                out[row] = self.table[i]
        return out


class TransformerWordEncoder:
    """Word vectors from a Hugging Face encoder: each word alone (``[CLS] word [SEP]``), the mean of its
    sub-token states at ``layer`` (an index into ``hidden_states``: 0 = embeddings, -1 = last layer).

    Args:
        model_path: a local folder (or cached name) with the model and its tokenizer.
    """

    def __init__(
        self, model_path: str | Path, layer: int = -1, device: str | torch.device = "cpu", batch_size: int = 256
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        self.model = AutoModel.from_pretrained(str(model_path)).to(device).eval()
        self.layer, self.device, self.batch_size = layer, torch.device(device), batch_size

    @torch.no_grad()
    def __call__(self, words: Sequence[str]) -> torch.Tensor:
        """(W, D) float32 on the CPU."""
        out = []
        for start in range(0, len(words), self.batch_size):
            batch = self.tokenizer(
                list(words[start : start + self.batch_size]), padding=True, return_tensors="pt",
                return_special_tokens_mask=True,
            )
            special = batch.pop("special_tokens_mask").bool()
            batch = {k: v.to(self.device) for k, v in batch.items()}
            states = self.model(**batch, output_hidden_states=True).hidden_states[self.layer]  # (B, L, D)
            keep = (batch["attention_mask"].bool() & ~special.to(self.device)).unsqueeze(-1)  # (B, L, 1)
            out.append(((states * keep).sum(1) / keep.sum(1).clamp(min=1)).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.model.config.hidden_size)


@dataclass(frozen=True)
class RedundancyResult:
    """Per-prediction counts and both corpus averages (NaN when no prediction has a content word)."""

    redundant: tuple[int, ...]
    content: tuple[int, ...]
    macro: float
    micro: float


def redundancy_details(
    prediction_words: Sequence[Sequence[str]],
    reference_words: Sequence[Sequence[str]],
    encoder: WordEncoder,
    theta: float = 0.5,
) -> RedundancyResult:
    """Count redundant words per prediction (see the module doc); each distinct word is encoded once.

    Args:
        prediction_words: per prediction, its content words.
        reference_words: per prediction, the content words of its ground truth (all references pooled).
        encoder: words -> (W, D) vectors.
        theta: the similarity a prediction word needs to some ground-truth word not to be redundant.
    """
    if len(prediction_words) != len(reference_words):
        raise ValueError(f"{len(prediction_words)} predictions for {len(reference_words)} references")
    vocab = sorted({w for words in (*prediction_words, *reference_words) for w in words})
    index = {w: i for i, w in enumerate(vocab)}
    vectors = F.normalize(encoder(vocab).float(), dim=-1) if vocab else torch.zeros(0, 1)  # (U, D), zero rows stay 0
    if vectors.shape[0] != len(vocab):
        raise ValueError(f"the encoder returned {vectors.shape[0]} vectors for {len(vocab)} words")
    redundant, content = [], []
    for pred, ref in zip(prediction_words, reference_words):
        if not pred:
            redundant.append(0)
            content.append(0)
            continue
        if not ref:
            redundant.append(len(pred))
            content.append(len(pred))
            continue
        sim = vectors[[index[w] for w in pred]] @ vectors[[index[w] for w in ref]].T  # (P, G)
        same = torch.tensor([[p == g for g in ref] for p in pred])
        best = sim.masked_fill(same, 1.0).max(dim=1).values  # (P,)
        redundant.append(int((best < theta).sum()))
        content.append(len(pred))
    ratios = [r / c for r, c in zip(redundant, content) if c > 0]
    macro = sum(ratios) / len(ratios) if ratios else math.nan
    micro = sum(redundant) / sum(content) if sum(content) else math.nan
    return RedundancyResult(tuple(redundant), tuple(content), macro, micro)


def redundancy(
    prediction_words: Sequence[Sequence[str]],
    reference_words: Sequence[Sequence[str]],
    encoder: WordEncoder,
    theta: float = 0.5,
    average: Literal["macro", "micro"] = "macro",
) -> float:
    """Corpus redundancy R in [0, 1] (lower is better) from content words; see :func:`redundancy_details`."""
    if average not in ("macro", "micro"):
        raise ValueError(f"average must be 'macro' or 'micro', got {average!r}")
    details = redundancy_details(prediction_words, reference_words, encoder, theta)
    return details.macro if average == "macro" else details.micro


def text_redundancy(
    predictions: Sequence[str],
    references: Sequence[str | Iterable[str]],
    encoder: WordEncoder,
    theta: float = 0.5,
    average: Literal["macro", "micro"] = "macro",
) -> float:
    """:func:`redundancy` on texts: content words of each prediction against those of its reference(s)."""
    refs = [content_words(r) if isinstance(r, str) else [w for t in r for w in content_words(t)] for r in references]
    return redundancy([content_words(p) for p in predictions], refs, encoder, theta, average)
