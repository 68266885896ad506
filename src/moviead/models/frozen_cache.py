"""Outputs of a frozen encoder, kept per input so that Stage-II computes Stage-I outputs once, not every epoch.

Stage-II's visual tokens come from a frozen Stage-I model (LoCo-MAD's PME, DistinctAD's CLIP adapter) in eval mode,
so a clip's tokens depend only on its frames. :class:`FrozenEncoderCache` keys each sample by a digest of its real
(unmasked) frames and keeps the encoder's output for it on the CPU, up to a memory budget; a later batch encodes only
the samples it has not seen. Frames that change from epoch to epoch (the random training shift of
``data.frames.train_shift``) are different inputs: the cache then helps only when a shift repeats, so set the shift
to 0 (or use ``data.frames.mode=all``, LoCo-MAD's setting) to encode each clip exactly once.

A cached output is the one computed the first time, in whatever batch that was; batch composition can change an
encoder's output in the last float bits, so cached and fresh outputs agree to float rounding, not bit for bit.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Callable

import torch

log = logging.getLogger(__name__)

Encoder = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(B, T, D) frames and (B, T) bool mask → (B, Q, E) outputs (the same Q for every sample)."""


class FrozenEncoderCache:
    """Per-sample outputs of a frozen encoder, keyed by the bytes of the sample's real frames.

    Args:
        max_bytes: stop adding entries once they take this much CPU memory (entries are never evicted).

    Attributes:
        hits, misses: samples served from the cache, samples encoded.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._store: dict[bytes, torch.Tensor] = {}
        self._full_logged = False

    def __len__(self) -> int:
        return len(self._store)

    @staticmethod
    def key(frames: torch.Tensor, mask: torch.Tensor) -> bytes:
        """Digest of one sample's real frames: (T, D) CPU frames, (T,) mask."""
        real = frames[mask.bool()].to(torch.float32).contiguous()
        return hashlib.blake2b(real.numpy().tobytes() + str(tuple(real.shape)).encode(), digest_size=16).digest()

    @torch.no_grad()
    def __call__(self, encode: Encoder, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``encode(frames, mask)`` (B, Q, E), computed only for the samples not cached yet."""
        cpu_frames, cpu_mask = frames.detach().cpu(), mask.cpu()  # one device-to-host copy per batch
        keys = [self.key(cpu_frames[i], cpu_mask[i]) for i in range(frames.shape[0])]
        todo = [i for i, k in enumerate(keys) if k not in self._store]
        fresh: dict[int, torch.Tensor] = {}
        if todo:
            index = torch.tensor(todo, device=frames.device)
            out = encode(frames.index_select(0, index), mask.index_select(0, index))
            for row, i in enumerate(todo):
                fresh[i] = out[row]
                self._add(keys[i], out[row])
        self.misses += len(todo)
        self.hits += len(keys) - len(todo)
        rows = [fresh[i] if i in fresh else self._store[k].to(frames.device) for i, k in enumerate(keys)]
        return torch.stack(rows)

    def _add(self, key: bytes, value: torch.Tensor) -> None:
        if key in self._store:
            return
        size = value.numel() * value.element_size()
        if self.bytes + size > self.max_bytes:
            if not self._full_logged:
                log.info("frozen-encoder cache full (%d entries, %.2f GB): later clips are encoded every time",
                         len(self._store), self.bytes / 1e9)
                self._full_logged = True
            return
        self._store[key] = value.detach().to("cpu").clone()
        self.bytes += size
