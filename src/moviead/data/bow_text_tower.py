"""A linear bag-of-words text tower fitted into a visual feature space: the sentence encoder ``bow:<folder>``.

LoCo-MAD's DSM compares the context proposal's sentence features ``T_c`` with the clip's visual features: in the
paper both come from CLIP (ViT-L/14's text and image towers), whose spaces are aligned by CLIP's own pre-training,
so ``cos(T_i, v)`` ranks the items by visual relevance from the first step and the contextual contrastive loss
builds on it. A data set whose frame features come from no such pair of towers (the toy worlds: their frames are
synthetic "CLIP features") needs a text tower aligned with its frames to meet that premise. This is the smallest
one that is learned from data rather than written by hand:

    encode(text) = normalise( sum_{w in words(text)} W[w] )          W: (V, D), words lower-cased

fitted by ridge regression of the clips' mean frame features, centred, on the ADs' word counts:
``W = argmin ||A W - (Y - mean(Y))||^2 + ridge ||W||^2`` (A: (N, V) counts, Y: (N, D) mean frames). Words the
tower has not seen add nothing; a text with none of its words encodes to the zero vector.

On disk (``save`` / ``load``): ``bow_text_tower.json`` (format, vocabulary in row order, dim, ridge, the number of
texts it was fitted on) and ``bow_text_tower.safetensors`` (``weight``: float32 (V, D)).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from moviead.atomic_files import write_text_atomically

TOWER_FORMAT = "moviead.bow_text_tower/1"
CONFIG_FILE = "bow_text_tower.json"
WEIGHTS_FILE = "bow_text_tower.safetensors"
_WORD = re.compile(r"[^\W\d_]+")


def tower_words(text: str) -> list[str]:
    """The lower-cased words of ``text`` (runs of letters), in order."""
    return _WORD.findall(text.lower())


def word_counts(texts: Sequence[str], index: dict[str, int]) -> torch.Tensor:
    """(n, V) float32 counts of each text's words over ``index`` (word -> column; unknown words dropped)."""
    out = torch.zeros(len(texts), len(index))
    for row, text in enumerate(texts):
        for word in tower_words(text):
            column = index.get(word)
            if column is not None:
                out[row, column] += 1.0
    return out


class BowTextTower:
    """A fitted (or loaded) bag-of-words text tower; see the module docstring.

    Args:
        vocabulary: the words, in the order of ``weight``'s rows.
        weight: (V, D) float32, one row per word.
        ridge: the ridge the weights were fitted with (recorded, not used).
        fitted_on: how many texts they were fitted on (recorded).
    """

    def __init__(self, vocabulary: Sequence[str], weight: torch.Tensor, ridge: float = 0.0, fitted_on: int = 0) -> None:
        if weight.ndim != 2 or weight.shape[0] != len(vocabulary):
            raise ValueError(f"weight must be (V={len(vocabulary)}, D), got {tuple(weight.shape)}")
        if len(set(vocabulary)) != len(vocabulary):
            raise ValueError("the vocabulary holds a word twice")
        self.vocabulary = list(vocabulary)
        self.index = {word: i for i, word in enumerate(self.vocabulary)}
        self.weight = weight.float()
        self.ridge, self.fitted_on = float(ridge), int(fitted_on)

    @property
    def dim(self) -> int:
        """D, the width of the features."""
        return int(self.weight.shape[1])

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """texts -> (n, D) float32, unit norm (the zero vector for a text without a known word)."""
        return F.normalize(word_counts(texts, self.index) @ self.weight, dim=-1)

    def save(self, folder: str | Path) -> Path:
        """Write the tower's two files into ``folder`` (created); returns the folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"weight": self.weight.contiguous()}, str(folder / WEIGHTS_FILE))
        config = {"format": TOWER_FORMAT, "vocabulary": self.vocabulary, "dim": self.dim, "ridge": self.ridge,
                  "fitted_on": self.fitted_on}
        write_text_atomically(folder / CONFIG_FILE, json.dumps(config, indent=1) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> BowTextTower:
        """Read a tower written by :meth:`save`.

        Raises:
            FileNotFoundError: ``folder`` lacks one of the two files (the message says how to make them).
            ValueError: the files do not match (format, vocabulary size, width).
        """
        folder = Path(folder)
        missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"bag-of-words text tower {str(folder)!r} lacks {', '.join(missing)}: `moviead make-toy-data` writes "
                "one for the toy data (<root>/encoders/toy-text-tower); fit one with moviead.data.bow_text_tower."
                "fit_bow_text_tower and save it there, or name another sentence encoder (captioning.dsm.sentence_encoder)"
            )
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        if config.get("format") != TOWER_FORMAT:
            raise ValueError(f"{folder / CONFIG_FILE}: format {config.get('format')!r}, expected {TOWER_FORMAT!r}")
        weight = load_file(str(folder / WEIGHTS_FILE))["weight"]
        if weight.shape != (len(config["vocabulary"]), config["dim"]):
            raise ValueError(f"{folder}: weight {tuple(weight.shape)} does not match the vocabulary of "
                             f"{len(config['vocabulary'])} words and dim {config['dim']}")
        return cls(config["vocabulary"], weight, config.get("ridge", 0.0), config.get("fitted_on", 0))


def fit_bow_text_tower(texts: Sequence[str], targets: np.ndarray, ridge: float = 1.0,
                       exclude: Iterable[str] = ()) -> BowTextTower:
    """Fit a tower that maps each text's words to its target (the module docstring's ridge regression).

    Args:
        texts: N texts (e.g. the training ADs).
        targets: (N, D) what each text should land near (e.g. the mean frame feature of its clip); centred here.
        ridge: the ridge penalty (> 0).
        exclude: words (any case) left out of the vocabulary, so that they add nothing, in fitting or encoding:
            e.g. character names, which a text tower pre-trained elsewhere (CLIP's) cannot tie to one movie's
            frames, whereas a tower fitted on a few movies would learn each name's storyline from them.

    Returns:
        The fitted :class:`BowTextTower`; its vocabulary is every word of ``texts`` but ``exclude``, sorted.
    """
    targets = np.asarray(targets, dtype=np.float64)
    if targets.ndim != 2 or targets.shape[0] != len(texts) or not texts:
        raise ValueError(f"need N >= 1 texts and (N, D) targets; got {len(texts)} texts, targets {targets.shape}")
    if ridge <= 0:
        raise ValueError(f"ridge must be > 0, got {ridge}")
    left_out = {word.lower() for word in exclude}
    vocabulary = sorted({word for text in texts for word in tower_words(text)} - left_out)
    if not vocabulary:
        raise ValueError("the texts hold no words")
    counts = word_counts(texts, {word: i for i, word in enumerate(vocabulary)}).double().numpy()  # (N, V)
    centred = targets - targets.mean(axis=0, keepdims=True)
    gram = counts.T @ counts + ridge * np.eye(len(vocabulary))
    weight = np.linalg.solve(gram, counts.T @ centred)  # (V, D)
    return BowTextTower(vocabulary, torch.from_numpy(weight).float(), ridge, len(texts))
