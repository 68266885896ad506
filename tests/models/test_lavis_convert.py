"""LAVIS BLIP-2 -> PME converter and the PME file format, on a state dict with real LAVIS key names."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from moviead.models.lavis_convert import (
    convert_lavis_checkpoint,
    convert_lavis_state_dict,
    load_pme,
    run_convert_lavis,
    save_pme,
)
from moviead.models.qformer import PMEConfig, PretrainedMovieEncoder

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "lavis_blip2_qformer_keys.json"
IMAGE_TOWER_KEYS = {
    "visual_encoder.cls_token": (1, 1, 48),
    "visual_encoder.blocks.0.attn.qkv.weight": (144, 48),
    "ln_vision.weight": (48,),
    "ln_vision.bias": (48,),
}
CROSS_KV = {
    "qformer.encoder.layer.0.crossattention.attention.key.weight",
    "qformer.encoder.layer.0.crossattention.attention.value.weight",
}


class _Payload:
    """Not a tensor: a pickle holding one must be refused by the weights-only loader."""


def tiny_config(**overrides: object) -> PMEConfig:
    """The sizes of the fixture's tiny LAVIS Blip2Qformer (see its "about")."""
    sizes = dict(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        cross_attention_frequency=2,
        num_query_tokens=4,
        vision_width=48,
        embed_dim=32,
        vocab_size=112,
        max_position_embeddings=64,
        max_frames=16,
    )
    sizes.update(overrides)
    return PMEConfig(**sizes)  # type: ignore[arg-type]


def lavis_state_dict(with_image_tower: bool = True) -> dict[str, torch.Tensor]:
    """Seeded random tensors with the fixture's names and shapes, tied as LAVIS ties them."""
    shapes = json.loads(FIXTURE.read_text())["state_dict_shapes"]
    if with_image_tower:
        shapes = {**shapes, **IMAGE_TOWER_KEYS}
    gen = torch.Generator().manual_seed(0)
    state = {key: torch.randn(tuple(shape), generator=gen) for key, shape in shapes.items()}
    state["Qformer.bert.embeddings.position_ids"] = torch.arange(64).unsqueeze(0)
    state["temp"] = torch.tensor(0.05)
    state["Qformer.cls.predictions.decoder.weight"] = state["Qformer.bert.embeddings.word_embeddings.weight"]
    state["Qformer.cls.predictions.decoder.bias"] = state["Qformer.cls.predictions.bias"]
    return state


def sample_inputs() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    frame_mask = torch.ones(2, 5, dtype=torch.bool)
    frame_mask[1, 3:] = False
    text_mask = torch.ones(2, 6, dtype=torch.long)
    text_mask[0, 4:] = 0
    return {
        "frames": torch.randn(2, 5, 48, generator=gen),
        "frame_mask": frame_mask,
        "text_ids": torch.randint(1, 112, (2, 6), generator=gen),
        "text_mask": text_mask,
    }


@torch.no_grad()
def outputs(model: PretrainedMovieEncoder) -> list[torch.Tensor]:
    x = sample_inputs()
    return [
        model.query_features(x["frames"], x["frame_mask"]),
        model.text_features(x["text_ids"], x["text_mask"]),
        model.itm_logits(x["frames"], x["frame_mask"], x["text_ids"], x["text_mask"]),
        model.lm_logits(x["frames"], x["frame_mask"], x["text_ids"], x["text_mask"]),
    ]


def test_every_lavis_key_is_mapped_or_skipped_and_loads_strictly() -> None:
    lavis = lavis_state_dict()
    torch.manual_seed(1)
    model = PretrainedMovieEncoder(tiny_config())
    state, report = convert_lavis_state_dict(lavis, model)

    mapped_sources = {src for src, _ in report.mapped}
    skipped = {key for key, _ in report.skipped}
    assert mapped_sources | skipped == set(lavis)
    assert skipped == set(IMAGE_TOWER_KEYS) | {"Qformer.bert.embeddings.position_ids"}
    assert report.reinitialised == []
    assert report.kept_from_init == ["frame_norm.weight", "frame_norm.bias"]
    assert set(state) == set(model.state_dict())

    model.load_state_dict(state, strict=True)
    params = model.state_dict()
    for src, dst in report.mapped:
        assert torch.equal(params[dst], lavis[src]), (src, dst)
    assert torch.equal(params["qformer.encoder.layer.0.attention.attention.query.weight"],
                       lavis["Qformer.bert.encoder.layer.0.attention.self.query.weight"])
    assert torch.equal(params["qformer.layernorm.weight"], lavis["Qformer.bert.embeddings.LayerNorm.weight"])
    assert model.lm_head.decoder.weight is model.embeddings.word_embeddings.weight  # still tied
    assert "visual_encoder" in report.summary() and "frame_norm.weight" in report.summary()


def test_vision_width_mismatch_reinitialises_cross_attention_kv() -> None:
    lavis = lavis_state_dict()
    torch.manual_seed(1)
    model = PretrainedMovieEncoder(tiny_config(vision_width=32))
    before = {key: value.clone() for key, value in model.state_dict().items()}
    state, report = convert_lavis_state_dict(lavis, model)

    assert {item.pme_key for item in report.reinitialised} == CROSS_KV
    for item in report.reinitialised:
        assert item.lavis_shape == (64, 48) and item.pme_shape == (64, 32)
        assert item.pme_key in report.summary()
    model.load_state_dict(state, strict=True)
    for key in CROSS_KV:
        assert torch.equal(model.state_dict()[key], before[key])  # the model's own initial values
    bias = "qformer.encoder.layer.0.crossattention.attention.key.bias"
    assert torch.equal(model.state_dict()[bias], lavis["Qformer.bert.encoder.layer.0.crossattention.self.key.bias"])


def test_reinitialised_tensors_follow_the_generator() -> None:
    lavis = lavis_state_dict()
    model = PretrainedMovieEncoder(tiny_config(vision_width=32))
    first, _ = convert_lavis_state_dict(lavis, model, torch.Generator().manual_seed(7))
    second, _ = convert_lavis_state_dict(lavis, PretrainedMovieEncoder(tiny_config(vision_width=32)),
                                         torch.Generator().manual_seed(7))
    for key in CROSS_KV:
        assert torch.equal(first[key], second[key])
        assert 0.01 < first[key].std().item() < 0.03  # N(0, initializer_range=0.02)


def test_convert_checkpoint_round_trip(tmp_path: Path) -> None:
    lavis = lavis_state_dict()
    torch.save({"model": lavis}, tmp_path / "blip2.pth")  # LAVIS's layout
    config = tiny_config()
    report = convert_lavis_checkpoint(tmp_path / "blip2.pth", tmp_path / "out" / "pme.safetensors", config)
    assert report.reinitialised == []
    assert (tmp_path / "out" / "pme_config.json").exists()

    reference = PretrainedMovieEncoder(config)
    state, _ = convert_lavis_state_dict(lavis, reference)
    reference.load_state_dict(state, strict=True)
    reference.eval()
    loaded = load_pme(tmp_path / "out" / "pme.safetensors")
    assert loaded.config == config
    assert loaded.lm_head.decoder.weight is loaded.embeddings.word_embeddings.weight
    for got, want in zip(outputs(loaded), outputs(reference), strict=True):
        assert torch.equal(got, want)


def test_save_pme_round_trip(tmp_path: Path) -> None:
    config = tiny_config(attn_implementation="eager")
    torch.manual_seed(2)
    model = PretrainedMovieEncoder(config)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.01 * torch.randn_like(param))  # "trained": every tensor away from its init
    model.eval()
    save_pme(model, config, tmp_path / "export")
    loaded = load_pme(tmp_path / "export")
    for got, want in zip(outputs(loaded), outputs(model), strict=True):
        assert torch.equal(got, want)


def test_unknown_lavis_key_fails_naming_it() -> None:
    lavis = lavis_state_dict()
    lavis["opt_proj.weight"] = torch.zeros(4, 64)
    with pytest.raises(ValueError, match="opt_proj.weight"):
        convert_lavis_state_dict(lavis, PretrainedMovieEncoder(tiny_config()))


def test_lavis_layers_beyond_the_config_fail() -> None:
    with pytest.raises(ValueError, match="no counterpart.*layer.1"):
        convert_lavis_state_dict(lavis_state_dict(), PretrainedMovieEncoder(tiny_config(num_hidden_layers=1)))


def test_untied_lavis_decoder_is_refused() -> None:
    lavis = lavis_state_dict()
    lavis["Qformer.cls.predictions.decoder.weight"] = lavis["Qformer.cls.predictions.decoder.weight"] + 1.0
    with pytest.raises(ValueError, match="tied"):
        convert_lavis_state_dict(lavis, PretrainedMovieEncoder(tiny_config()))


def test_pickle_with_non_tensor_object_is_refused(tmp_path: Path) -> None:
    lavis = lavis_state_dict(with_image_tower=False)
    path = tmp_path / "tampered.pth"
    torch.save({"model": {**lavis, "payload": _Payload()}}, path)
    with pytest.raises(pickle.UnpicklingError, match=r"tampered\.pth.*only plain state dicts"):
        convert_lavis_checkpoint(path, tmp_path / "out.safetensors", tiny_config())
    assert not (tmp_path / "out.safetensors").exists()


def test_run_convert_lavis_rejects_unknown_override(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="hidden_sise"):
        run_convert_lavis(str(tmp_path / "in.pth"), str(tmp_path / "out.safetensors"), {"hidden_sise": 64})
