"""CLIP adaptation (DistinctAD Stage-I): adapter/tower modes, frozen text tower, word masks, a learning check.

The tiny open_clip model is saved with ``save_open_clip_dir`` and loaded back through ``load_open_clip``
(``local-dir:``), so the real offline loading path is what the adapter is built on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import open_clip
import pytest
import torch
import torch.nn.functional as F

from moviead.clip_towers import load_open_clip, save_open_clip_dir, tiny_open_clip_config
from moviead.data.collate import BatchKey
from moviead.losses import CLIPAdaptationLoss, clip_global_loss
from moviead.models.clip_adapter import CLIPAdaptationConfig, CLIPVideoAdapter

E, VISION_LAYERS, B, T = 32, 3, 3, 5


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    cfg = tiny_open_clip_config(embed_dim=E, layers=VISION_LAYERS)
    return save_open_clip_dir(open_clip.CLIP(**cfg), cfg, tmp_path_factory.mktemp("tiny_clip"))


def load(clip_dir: Path) -> tuple[torch.nn.Module, Callable]:
    """A fresh copy of the tiny CLIP (tests that train must not share weights) and its tokenizer."""
    model, _, tokenizer = load_open_clip(f"local-dir:{clip_dir}")
    return model, tokenizer


def adapter_config(**overrides: Any) -> CLIPAdaptationConfig:
    sizes: dict[str, Any] = dict(feature_dim=E, adapter_heads=4, adapter_layers=2, max_frames=16)
    sizes.update(overrides)
    return CLIPAdaptationConfig(**sizes)


def adaptation_loss(
    model: CLIPVideoAdapter, frames: torch.Tensor, mask: torch.Tensor, ids: torch.Tensor, gather: bool = True
) -> dict[str, torch.Tensor]:
    """The Stage-I losses as the stage computes them (``CLIPAdaptationLoss`` with the config's lambda_fw)."""
    batch = {BatchKey.FRAMES: frames, BatchKey.FRAME_MASK: mask, BatchKey.TEXT_IDS: ids}
    return CLIPAdaptationLoss(model.config.lambda_fw, gather=gather)(model, batch)


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """Tiny ops on 2 shared cores run ~10x faster single-threaded (no thread hand-off per op)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


FRAME_MASK = torch.tensor([[True] * 5, [True, True, True, False, False], [True, False, False, False, False]])


def test_adapter_mode_starts_as_identity_and_shapes(clip_dir: Path) -> None:
    clip, tokenizer = load(clip_dir)
    model = CLIPVideoAdapter(clip, adapter_config(), tokenizer).train()
    feats = torch.randn(B, T, E)
    out = model(feats, FRAME_MASK)
    assert out.shape == (B, T, E) and torch.isfinite(out).all()
    assert torch.equal(out, feats)  # zero-initialised output projection: adapted = original CLIP features
    adapted = model.adapted_frame_features(feats, FRAME_MASK)
    assert torch.equal(adapted, feats * FRAME_MASK.unsqueeze(-1)) and model.training  # padding zeroed, mode kept
    video = model.video_embedding(out, FRAME_MASK)
    assert video.shape == (B, E) and torch.allclose(video.norm(dim=-1), torch.ones(B))
    assert torch.allclose(video[2], F.normalize(feats[2, 0], dim=0), atol=1e-6)  # one real frame
    ids = tokenizer(["a man opens the door", "she runs", "a red car"])
    assert model.encode_text(ids).shape == (B, E) and model.encode_words(ids).shape == (B, ids.shape[1], E)
    assert torch.allclose(model.encode_text(ids), clip.encode_text(ids), atol=1e-6)  # = open_clip's embedding
    losses = adaptation_loss(model, feats, FRAME_MASK, ids, gather=False)
    assert set(losses) == {"global", "fw", "loss"} and all(torch.isfinite(v) for v in losses.values())
    batch = {BatchKey.FRAMES: feats, BatchKey.FRAME_MASK: FRAME_MASK, BatchKey.TEXT_IDS: ids}
    global_only = CLIPAdaptationLoss(lambda_fw=0.0)(model, batch)
    assert "fw" not in global_only and torch.equal(global_only["loss"], losses["global"])
    assert torch.equal(global_only["global"], clip_global_loss(video, model.encode_text(ids), model.temp))


def test_one_step_changes_adapter_not_text_tower(clip_dir: Path) -> None:
    clip, tokenizer = load(clip_dir)
    model = CLIPVideoAdapter(clip, adapter_config(), tokenizer).train()
    text_before = {n: p.detach().clone() for n, p in model.text.named_parameters()}
    adapter_before = {n: p.detach().clone() for n, p in model.adapter.named_parameters()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)  # all parameters: freezing must do the work
    ids = tokenizer(["a man opens the door", "she runs", "a red car"])
    adaptation_loss(model, torch.randn(B, T, E), FRAME_MASK, ids)["loss"].backward()
    assert all(p.grad is None for p in model.text.parameters())
    optimizer.step()
    for name, param in model.text.named_parameters():
        assert torch.equal(param, text_before[name]), name
    assert not torch.equal(model.adapter.out_proj.weight, adapter_before["out_proj.weight"])
    assert not torch.equal(model(torch.ones(1, 2, E)), torch.ones(1, 2, E))  # no longer the identity
    assert model.temp.item() != pytest.approx(0.07) and model.temp_fw.item() != pytest.approx(0.07)


def test_text_tower_stays_frozen_in_eval_mode(clip_dir: Path) -> None:
    clip, tokenizer = load(clip_dir)
    model = CLIPVideoAdapter(clip, adapter_config(), tokenizer)
    model.train()
    assert model.training and model.adapter.training
    assert not any(m.training for m in model.text.modules())
    assert not any(p.requires_grad for p in model.text.parameters())
    assert model.visual is None  # adapter mode keeps no vision tower
    assert not any(k.startswith("visual.") for k in model.state_dict())
    assert "stop_tokens" not in model.state_dict()  # rebuilt from the tokenizer, not saved


def test_tower_mode_trains_only_last_blocks(clip_dir: Path) -> None:
    clip, tokenizer = load(clip_dir)
    model = CLIPVideoAdapter(clip, adapter_config(mode="tower", n_trainable_blocks=2), tokenizer).train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    expected_prefixes = ("visual.transformer.resblocks.1.", "visual.transformer.resblocks.2.", "visual.ln_post.")
    assert trainable == {"temp", "temp_fw", "visual.proj"} | {
        n for n, _ in model.named_parameters() if n.startswith(expected_prefixes)
    }
    assert any(n.startswith("visual.transformer.resblocks.2.") for n in trainable)
    assert not any(n.startswith(("visual.transformer.resblocks.0.", "visual.conv1", "text.")) for n in trainable)
    assert not any(m.training for m in model.text.modules())
    assert model.visual is clip.visual  # shared: saving clip_model exports the adapted tower
    frames = torch.randn(B, T, 3, 32, 32)
    out = model(frames, FRAME_MASK)
    assert out.shape == (B, T, E) and torch.isfinite(out).all()
    assert out[~FRAME_MASK].abs().sum() == 0
    assert torch.allclose(out[0], clip.encode_image(frames[0]), atol=1e-5)
    ids = tokenizer(["a man opens the door", "she runs", "a red car"])
    adaptation_loss(model, frames, FRAME_MASK, ids)["loss"].backward()
    assert clip.visual.transformer.resblocks[0].mlp.c_fc.weight.grad is None
    assert clip.visual.transformer.resblocks[-1].mlp.c_fc.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="n_trainable_blocks"):
        CLIPVideoAdapter(load(clip_dir)[0], adapter_config(mode="tower", n_trainable_blocks=VISION_LAYERS + 1))


def test_config_errors(clip_dir: Path) -> None:
    clip, tokenizer = load(clip_dir)
    with pytest.raises(ValueError, match="mode"):
        CLIPVideoAdapter(clip, adapter_config(mode="frames"), tokenizer)
    with pytest.raises(ValueError, match="feature_dim"):
        CLIPVideoAdapter(clip, adapter_config(feature_dim=768), tokenizer)


def test_word_mask_keeps_content_words(clip_dir: Path) -> None:
    clip, tokenizer = load(clip_dir)
    model = CLIPVideoAdapter(clip, adapter_config(), tokenizer)
    ids = tokenizer(["The man opens a door.", "the a"])
    mask = model.word_mask(ids)
    assert mask.shape == ids.shape and mask.dtype == torch.bool
    words = {tokenizer.decoder[int(i)]: bool(m) for i, m in zip(ids[0], mask[0]) if int(i) != 0}
    assert words == {"<start_of_text>": False, "the</w>": False, "man</w>": True, "opens</w>": True,
                     "a</w>": False, "door</w>": True, ".</w>": False, "<end_of_text>": False}
    assert not mask[0, 8:].any() and (ids[0, 8:] == 0).all()  # padding
    assert not mask[1].any()  # only stopwords


def test_adapter_learns_synthetic_pairs(clip_dir: Path, one_thread: None) -> None:
    """100 adapter steps on frames = fixed linear map of the sentence embedding + noise: t->v R@1 >> chance."""
    clip, tokenizer = load(clip_dir)
    torch.manual_seed(0)
    model = CLIPVideoAdapter(clip, adapter_config(adapter_dropout=0.0), tokenizer)
    gen = torch.Generator().manual_seed(1)
    n_train, n_test, frames, context = 256, 64, 4, 32
    n = n_train + n_test
    ids = torch.zeros(n, context, dtype=torch.long)  # random "sentences" of 3-9 tokens, SOT ... EOT, 0-padded
    for row, length in enumerate(torch.randint(3, 10, (n,), generator=gen).tolist()):
        ids[row, 0], ids[row, length + 1] = model.sot_id, model.eot_id
        ids[row, 1 : length + 1] = torch.randint(1000, 40000, (length,), generator=gen)
    sentences = model.encode_text(ids)  # (n, E) from the frozen text tower
    mixing = torch.randn(E, E, generator=gen) / E**0.5
    noise = 0.3 * sentences.norm(dim=-1).mean() / E**0.5
    feats = (sentences @ mixing)[:, None, :] + noise * torch.randn(n, frames, E, generator=gen)
    mask = torch.ones(n, frames, dtype=torch.bool)
    test = slice(n_train, n)

    def recall_at_1() -> float:
        video = model.video_embedding(model.adapted_frame_features(feats[test], mask[test]), mask[test])
        sim = F.normalize(sentences[test], dim=-1) @ video.t()  # (n_test texts, n_test videos)
        return (sim.argmax(dim=1) == torch.arange(n_test)).float().mean().item()

    before = recall_at_1()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.0)
    model.train()
    for _ in range(100):
        batch = torch.randint(0, n_train, (32,), generator=gen)
        loss = adaptation_loss(model, feats[batch], mask[batch], ids[batch])["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.clamp_temp_()
    after = recall_at_1()
    chance = 1 / n_test
    assert after >= 10 * chance and after > before + 0.2, (before, after)
