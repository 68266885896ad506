"""``save_pretrained`` → ``from_pretrained`` of the PME and the CLIP adapter: safetensors weights plus the model's own
config JSON, the file names of :mod:`moviead.export_files`, identical outputs after the round trip."""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import pytest
import torch

from moviead.clip_towers import tiny_open_clip_config
from moviead.export_files import (
    CLIP_ADAPTER_CONFIG,
    CLIP_ADAPTER_WEIGHTS,
    PME_CONFIG,
    PME_WEIGHTS,
    export_sha256,
)
from moviead.models.clip_adapter import CLIPAdaptationConfig, CLIPVideoAdapter
from moviead.models.qformer import PretrainedMovieEncoder, pme_export_sha256
from tests.models.test_lavis_convert import tiny_config

E = 32


def _perturbed(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every tensor moved away from its init ("trained"), in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=gen))
    return model.eval()


def test_pme_round_trip_gives_identical_outputs_and_keeps_its_config(tmp_path: Path) -> None:
    config = tiny_config(attn_implementation="eager")
    torch.manual_seed(0)
    model = _perturbed(PretrainedMovieEncoder(config), seed=1)
    weights = model.save_pretrained(tmp_path / "export")
    assert weights == tmp_path / "export" / PME_WEIGHTS
    assert {p.name for p in (tmp_path / "export").iterdir()} == {PME_WEIGHTS, PME_CONFIG}
    assert json.loads((tmp_path / "export" / PME_CONFIG).read_text())["vision_width"] == 48
    torch.manual_seed(99)  # a different init: everything must come from the files
    loaded = PretrainedMovieEncoder.from_pretrained(tmp_path / "export")
    assert loaded.config == config and not loaded.training
    assert loaded.lm_head.decoder.weight is loaded.embeddings.word_embeddings.weight  # still tied
    frames, mask = torch.randn(2, 5, 48), torch.tensor([[True] * 5, [True, True, True, False, False]])
    ids, text_mask = torch.randint(1, 112, (2, 6)), torch.ones(2, 6, dtype=torch.long)
    assert torch.equal(loaded.query_features(frames, mask), model.query_features(frames, mask))
    assert torch.equal(loaded.text_features(ids, text_mask), model.text_features(ids, text_mask))
    assert not torch.equal(PretrainedMovieEncoder(config).eval().query_features(frames, mask),
                           model.query_features(frames, mask))  # the comparison can fail


def test_pme_export_hash_covers_weights_and_config(tmp_path: Path) -> None:
    config = tiny_config()
    torch.manual_seed(0)
    model = PretrainedMovieEncoder(config)
    model.save_pretrained(tmp_path / "a")
    model.save_pretrained(tmp_path / "b")
    digest = pme_export_sha256(tmp_path / "a")
    assert digest == pme_export_sha256(tmp_path / "b") == pme_export_sha256(tmp_path / "a" / PME_WEIGHTS)
    assert digest == export_sha256(tmp_path / "a" / PME_WEIGHTS, tmp_path / "a" / PME_CONFIG)
    _perturbed(model, seed=3).save_pretrained(tmp_path / "b")
    assert pme_export_sha256(tmp_path / "b") != digest
    model.save_pretrained(tmp_path / "c", tiny_config(hidden_dropout_prob=0.5))  # same weights, other config
    assert pme_export_sha256(tmp_path / "c") != digest


def _adapter(seed: int = 0) -> CLIPVideoAdapter:
    torch.manual_seed(seed)
    config = CLIPAdaptationConfig(feature_dim=E, adapter_heads=4, adapter_layers=1, max_frames=16, adapter_dropout=0.0)
    return CLIPVideoAdapter(open_clip.CLIP(**tiny_open_clip_config(embed_dim=E)), config)


def test_clip_adapter_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    model = _perturbed(_adapter(), seed=2)
    weights = model.save_pretrained(tmp_path / "export")
    assert weights.name == CLIP_ADAPTER_WEIGHTS
    assert {p.name for p in (tmp_path / "export").iterdir()} == {CLIP_ADAPTER_WEIGHTS, CLIP_ADAPTER_CONFIG}
    stored = json.loads((tmp_path / "export" / CLIP_ADAPTER_CONFIG).read_text())
    assert stored["mode"] == "adapter" and stored["feature_dim"] == E and stored["adapter_layers"] == 1
    fresh_clip = open_clip.CLIP(**tiny_open_clip_config(embed_dim=E))  # other (random) text weights
    loaded = CLIPVideoAdapter.from_pretrained(tmp_path / "export", clip_model=fresh_clip)
    assert loaded.config == model.config and not loaded.training
    frames, mask = torch.randn(2, 5, E), torch.tensor([[True] * 5, [True, True, False, False, False]])
    ids = torch.randint(1, 400, (2, 7))
    assert torch.equal(loaded.adapted_frame_features(frames, mask), model.adapted_frame_features(frames, mask))
    assert torch.equal(loaded.encode_text(ids), model.encode_text(ids))  # the text tower comes from the file
    assert torch.equal(loaded.temp, model.temp) and torch.equal(loaded.temp_fw, model.temp_fw)


def test_clip_adapter_export_errors_say_what_is_missing(tmp_path: Path) -> None:
    model = _adapter()
    model.save_pretrained(tmp_path / "export")
    (tmp_path / "export" / CLIP_ADAPTER_CONFIG).unlink()
    with pytest.raises(FileNotFoundError, match="clip_adapter_config.json is missing.*save_pretrained"):
        CLIPVideoAdapter.from_pretrained(tmp_path / "export", clip_model=open_clip.CLIP(**tiny_open_clip_config(E)))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        CLIPVideoAdapter.pretrained_files(tmp_path / "nowhere")
    model.save_pretrained(tmp_path / "extra")
    path = tmp_path / "extra" / CLIP_ADAPTER_CONFIG
    path.write_text(json.dumps({**json.loads(path.read_text()), "bogus": 1}))
    with pytest.raises(ValueError, match="unknown CLIPAdaptationConfig fields"):
        CLIPVideoAdapter.load_pretrained_config(tmp_path / "extra")
