"""Shared building blocks: fixed temporal encodings, a BERT LM head, attention-mask helpers."""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers.activations import ACT2FN


def sinusoidal_encoding(length: int, dim: int) -> torch.Tensor:
    """Fixed sinusoidal position encoding of Vaswani et al. (2017).

    ``pe[p, 2i] = sin(p / 10000^(2i/dim))`` and ``pe[p, 2i+1] = cos(p / 10000^(2i/dim))``.

    Returns:
        (length, dim) float32 tensor.
    """
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)  # (length, 1)
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))  # (ceil(dim/2),)
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(position * div)
    pe[:, 1::2] = torch.cos(position * div[: dim // 2])
    return pe


class SinusoidalTemporalEncoding(nn.Module):
    """Adds a fixed (non-learned) sinusoidal encoding of the frame index to frame features.

    The table is a non-persistent buffer: it is not part of the state dict and is rebuilt from the config.
    """

    def __init__(self, max_frames: int, dim: int) -> None:
        super().__init__()
        self.max_frames = max_frames
        self.register_buffer("encoding", sinusoidal_encoding(max_frames, dim), persistent=False)  # (T_max, D)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, T, D) -> (B, T, D), frame t gets encoding[t]; requires T <= max_frames."""
        num_frames = frames.shape[1]
        if num_frames > self.max_frames:
            raise ValueError(f"got {num_frames} frames, more than max_frames={self.max_frames}")
        return frames + self.encoding[:num_frames].to(frames.dtype)


class BertLMHead(nn.Module):
    """BERT's LM prediction head: dense + activation + LayerNorm, then a vocabulary decoder with its own bias.

    Parameter names follow BERT/LAVIS (``transform.dense``, ``transform.LayerNorm``, ``decoder``, ``bias``);
    ``decoder.bias`` is the same Parameter as ``bias`` (both keys appear in the state dict, as in LAVIS).
    Tie ``decoder.weight`` to the word embeddings with :meth:`tie_to`.
    """

    def __init__(self, hidden_size: int, vocab_size: int, hidden_act: str = "gelu", layer_norm_eps: float = 1e-12):
        super().__init__()
        self.transform = nn.Module()
        self.transform.dense = nn.Linear(hidden_size, hidden_size)
        self.transform.LayerNorm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.act = ACT2FN[hidden_act]
        self.decoder = nn.Linear(hidden_size, vocab_size)
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        self.decoder.bias = self.bias

    def tie_to(self, embedding: nn.Embedding) -> None:
        """Share ``decoder.weight`` with ``embedding.weight`` (the same Parameter object)."""
        self.decoder.weight = embedding.weight

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """hidden_states (B, L, H) -> logits (B, L, V)."""
        hidden_states = self.transform.LayerNorm(self.act(self.transform.dense(hidden_states)))
        return self.decoder(hidden_states)


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Turn a boolean "may attend" mask into an additive attention bias.

    Works with both the eager and the SDPA attention of transformers (both add a float mask to the scores).
    Disallowed positions get ``finfo(dtype).min`` (not ``-inf``), so a row with no allowed key gives a
    uniform average rather than NaN.

    Args:
        allowed: (B, Q, K) or (B, K) bool, True = the query position may attend to the key position.
        dtype: dtype of the attention scores.

    Returns:
        (B, 1, Q, K), or (B, 1, 1, K) for a 2-D input, of ``dtype``: 0 where allowed, min where not.
    """
    if allowed.dim() == 2:
        allowed = allowed[:, None, :]  # (B, 1, K)
    bias = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    bias = bias.masked_fill(~allowed.bool(), torch.finfo(dtype).min)
    return bias[:, None]  # (B, 1, Q, K)
