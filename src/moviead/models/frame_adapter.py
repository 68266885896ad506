"""The DistinctAD Stage-I adapter (SPEC §4.2, adapter mode) as a frozen Stage-II front end on CLIP frame features.

``moviead train`` with ``task=clip_adaptation`` and ``clip.mode=adapter`` exports, through
:meth:`~moviead.models.clip_adapter.CLIPVideoAdapter.save_pretrained`, ``clip_adapter.safetensors`` (the whole
adapter state: ``adapter.*``, temperatures, the frozen text tower) and ``clip_adapter_config.json`` (its
:class:`~moviead.models.configs.CLIPAdaptationConfig`) into ``<run>/export``. Stage-II only needs the temporal
adapter: :func:`load_frame_adapter` rebuilds it from that JSON (never from the run's ``config.yaml``) and loads its
``adapter.*`` weights, strictly. The adapted features are what ``CLIPVideoAdapter.adapted_frame_features`` gives:
eval mode, no gradient, zero on padded frames.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from moviead.models.clip_adapter import CLIPVideoAdapter, TemporalAdapter

PREFIX = "adapter."


class FrozenFrameAdapter(nn.Module):
    """A trained :class:`TemporalAdapter`, frozen and always in eval mode."""

    def __init__(self, adapter: TemporalAdapter) -> None:
        super().__init__()
        self.adapter = adapter
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FrozenFrameAdapter:
        """Stay in eval mode whatever is asked (frozen: no dropout)."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, frames: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """(B, T, D) CLIP frame features, (B, T) bool mask -> (B, T, D) adapted features, 0 on padded frames."""
        mask = frame_mask.bool()
        out = self.adapter(frames.to(self.adapter.out_proj.weight.dtype), mask)
        return out * mask.unsqueeze(-1).to(out.dtype)


def load_frame_adapter(path: str | Path, feature_dim: int) -> FrozenFrameAdapter:
    """The adapter of a DistinctAD Stage-I export: its folder, or ``clip_adapter.safetensors`` beside
    ``clip_adapter_config.json`` (the adapter's own config; the run's ``config.yaml`` is not read).

    Raises:
        FileNotFoundError: the export, its weights or its ``clip_adapter_config.json`` is missing.
        ValueError: the export is not adapter mode, or reads features of another width than ``feature_dim``.
    """
    path = Path(path)
    how = ("set captioning.distinct.adapter to the export folder of a DistinctAD Stage-I run in adapter mode "
           "(runs/<name>/export from `make stage1 CONFIG=configs/stage1/clip_adapt.yaml`), or to null to feed the "
           "CLIP features as they are")
    if not path.exists():
        raise FileNotFoundError(f"captioning.distinct.adapter: {path} does not exist; {how}")
    try:
        weights, config_file = CLIPVideoAdapter.pretrained_files(path)
        clip = CLIPVideoAdapter.load_pretrained_config(weights)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"captioning.distinct.adapter: {err}; {how}") from None
    if clip.mode != "adapter":
        raise ValueError(f"captioning.distinct.adapter: {config_file} is not a clip adaptation run in adapter mode "
                         "(a tower-mode export is an adapted CLIP: re-extract the features with it instead)")
    if int(clip.feature_dim) != feature_dim:
        raise ValueError(f"captioning.distinct.adapter: the adapter reads {clip.feature_dim}-d features but "
                         f"data.feature_dim is {feature_dim}")
    adapter = TemporalAdapter(int(clip.feature_dim), int(clip.adapter_layers), int(clip.adapter_heads),
                              float(clip.adapter_dropout), int(clip.max_frames))
    state = {k[len(PREFIX):]: v for k, v in load_file(str(weights)).items() if k.startswith(PREFIX)}
    if not state:
        raise ValueError(f"captioning.distinct.adapter: {weights} holds no adapter.* weights; {how}")
    adapter.load_state_dict(state, strict=True)
    return FrozenFrameAdapter(adapter)
