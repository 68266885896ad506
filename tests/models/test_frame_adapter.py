"""The DistinctAD Stage-I adapter export, reloaded as Stage-II's frozen front end: same output as the trained
adapter, frozen, and clear errors for what does not fit."""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import pytest
import torch

from moviead.clip_towers import tiny_open_clip_config
from moviead.export_files import CLIP_ADAPTER_CONFIG, CLIP_ADAPTER_WEIGHTS
from moviead.models.clip_adapter import CLIPAdaptationConfig, CLIPVideoAdapter
from moviead.models.frame_adapter import load_frame_adapter

E = 32


def write_export(out: Path, **clip_overrides) -> CLIPVideoAdapter:
    """What `moviead train` (task clip_adaptation, adapter mode) exports: clip_adapter.safetensors and the adapter's
    own clip_adapter_config.json (``clip_overrides`` edit that JSON); no config.yaml."""
    torch.manual_seed(0)
    config = CLIPAdaptationConfig(feature_dim=E, adapter_heads=4, adapter_layers=1, max_frames=16,
                                  adapter_dropout=0.0)  # fmt: skip
    model = CLIPVideoAdapter(open_clip.CLIP(**tiny_open_clip_config(embed_dim=E)), config)
    with torch.no_grad():  # as if trained: the output projection starts at zero (identity) otherwise
        model.adapter.out_proj.weight.normal_(std=0.1)
    model.save_pretrained(out)
    if clip_overrides:
        path = out / CLIP_ADAPTER_CONFIG
        path.write_text(json.dumps({**json.loads(path.read_text()), **clip_overrides}))
    return model


def test_reloaded_adapter_gives_the_trained_adapters_features_and_stays_frozen(tmp_path: Path) -> None:
    model = write_export(tmp_path / "export")
    frames = torch.randn(2, 5, E)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    for path in (tmp_path / "export", tmp_path / "export" / "clip_adapter.safetensors"):
        adapter = load_frame_adapter(path, feature_dim=E).train()
        assert not adapter.training and not any(p.requires_grad for p in adapter.parameters())
        out = adapter(frames, mask)
        assert torch.allclose(out, model.adapted_frame_features(frames, mask), atol=1e-6)
        assert not torch.allclose(out[0], frames[0], atol=1e-3)  # it does change the features
        assert torch.equal(out[1, 2:], torch.zeros(3, E))


def test_missing_or_unfit_exports_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_frame_adapter(tmp_path / "nowhere", feature_dim=E)
    write_export(tmp_path / "tower", mode="tower")
    with pytest.raises(ValueError, match="not a clip adaptation run in adapter mode"):
        load_frame_adapter(tmp_path / "tower", feature_dim=E)
    write_export(tmp_path / "ok")
    with pytest.raises(ValueError, match="reads 32-d features but data.feature_dim is 768"):
        load_frame_adapter(tmp_path / "ok", feature_dim=768)
    (tmp_path / "ok" / CLIP_ADAPTER_CONFIG).unlink()
    with pytest.raises(FileNotFoundError, match="clip_adapter_config.json is missing"):
        load_frame_adapter(tmp_path / "ok", feature_dim=E)


def test_adapter_loads_without_any_config_yaml(tmp_path: Path) -> None:
    model = write_export(tmp_path / "export")
    assert {p.name for p in (tmp_path / "export").iterdir()} == {CLIP_ADAPTER_CONFIG, CLIP_ADAPTER_WEIGHTS}
    frames, mask = torch.randn(1, 4, E), torch.ones(1, 4, dtype=torch.bool)
    out = load_frame_adapter(tmp_path / "export", feature_dim=E)(frames, mask)
    assert torch.allclose(out, model.adapted_frame_features(frames, mask), atol=1e-6)
