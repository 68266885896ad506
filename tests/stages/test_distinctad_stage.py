"""Stage-II DistinctAD on the toy data: a short run, its checkpoint reloading, the adapter front end, the no-EM
ablation and clear errors."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from moviead.losses import CaptioningLoss
from moviead.recipes import build_recipe
from moviead.recipes.base import caption_batch
from moviead.recipes.checkpoint import load_captioner_checkpoint
from moviead.stages.train import train
from tests.stages._distinctad import distinctad_cfg
from tests.stages._stage2 import first_batch


@pytest.fixture(scope="module")
def short_run(toy_root: Path, tmp_path_factory: pytest.TempPathFactory):
    cfg = distinctad_cfg(
        toy_root, tmp_path_factory.mktemp("runs"), "trainer.max_epochs=1", "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1", "trainer.num_sanity_val_steps=0", "captioning.val_generate_batches=1",
        "loader.eval_batch_size=4", "trainer.log_every_n_steps=1",
    )
    return cfg, train(cfg)


def test_distinctad_run_logs_the_distinctive_word_loss_and_saves_the_em_state(short_run) -> None:
    cfg, result = short_run
    with (result.run_dir / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    train_dw = [float(r["train/dw"]) for r in rows if r.get("train/dw")]
    assert len(train_dw) == 2 and all(math.isfinite(v) and v > 0 for v in train_dw)
    assert any(r.get("val/dw") for r in rows)
    checkpoint = torch.load(result.run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    state = checkpoint["state_dict"]
    assert "captioner.em_attention.initial_bases" in state  # a buffer (gradient through the last iteration only)
    assert state["captioner.em_attention.initial_bases"].shape == (cfg.captioning.distinct.num_bases, 768)
    assert "captioner.decoder.projector.weight" in state
    assert not [k for k in state if k.startswith("captioner.dsm.")]  # DistinctAD has no DSM


def test_distinctad_checkpoint_reloads_with_identical_generation(short_run) -> None:
    cfg, result = short_run
    path = result.run_dir / "checkpoints" / "last.ckpt"
    parts, loaded = load_captioner_checkpoint(path)
    assert loaded.captioning.method == "distinctad" and parts.data.neighbour_clips == 3
    assert parts.collator.distinctive is not None
    assert parts.captioner.em_attention is not None and parts.captioner.frame_adapter is None
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    assert torch.equal(parts.captioner.em_attention.initial_bases, state["captioner.em_attention.initial_bases"])
    batch = caption_batch(first_batch(parts, loaded), with_target=False)
    assert batch.neighbour_frames is not None and batch.neighbour_frames.shape[1] == 3
    settings = parts.generation_settings(loaded.captioning.generation, num_beams=1)
    first, _ = parts.captioner.eval().generate(batch, settings)
    again, _ = load_captioner_checkpoint(path)[0].captioner.eval().generate(batch, settings)
    assert first == again and all(len(ids) > 0 for ids in first)


def _adapter_export(out: Path, dim: int = 768) -> Path:
    """A DistinctAD Stage-I export in adapter mode (its adapter.* weights and config), random weights."""
    import json

    from moviead.models.clip_adapter import TemporalAdapter

    torch.manual_seed(0)
    adapter = TemporalAdapter(dim, layers=1, heads=4, dropout=0.0, max_frames=16)
    with torch.no_grad():
        adapter.out_proj.weight.normal_(std=0.02)
    out.mkdir(parents=True)
    save_file({f"adapter.{k}": v.contiguous() for k, v in adapter.state_dict().items()},
              str(out / "clip_adapter.safetensors"))  # fmt: skip
    clip = {"mode": "adapter", "feature_dim": dim, "adapter_layers": 1, "adapter_heads": 4, "adapter_dropout": 0.0,
            "max_frames": 16}
    (out / "clip_adapter_config.json").write_text(json.dumps(clip))  # the adapter's own config, not config.yaml
    return out


def test_adapter_front_end_feeds_the_em_attention_and_stays_frozen(toy_root: Path, tmp_path: Path) -> None:
    cfg = distinctad_cfg(toy_root, tmp_path, f"captioning.distinct.adapter={_adapter_export(tmp_path / 'export')}")
    torch.manual_seed(0)
    parts = build_recipe(cfg)
    captioner = parts.captioner.train()
    assert captioner.frame_adapter is not None and not captioner.frame_adapter.training
    batch = caption_batch(first_batch(parts, cfg, "fit"))
    seen: list[tuple[torch.Tensor, ...]] = []
    hook = captioner.em_attention.register_forward_hook(lambda module, args, output: seen.append(args))
    out = CaptioningLoss(captioner.lambda_dw)(captioner, batch)
    hook.remove()
    # the EM attention reads the adapted frames of the clip and of every neighbour, not the raw features
    adapter = captioner.frame_adapter
    with torch.no_grad():
        clip = adapter(batch.frames, batch.frame_mask)
        b, c, t, d = batch.neighbour_frames.shape
        neighbours = adapter(batch.neighbour_frames.reshape(b * c, t, d), batch.neighbour_mask.reshape(b * c, t))
    assert len(seen) == 1
    assert (clip - batch.frames).abs().max() > 1e-3  # the adapter changes the frames, so the checks below can fail
    torch.testing.assert_close(seen[0][0], clip)
    torch.testing.assert_close(seen[0][2], neighbours.reshape(b, c * t, -1))
    assert torch.allclose(out.loss, out.gen + 0.5 * out.dw)  # L = L_GEN + λ_dw L_DW, no CCL
    out.loss.backward()
    assert all(p.grad is None for p in captioner.frame_adapter.parameters())
    assert captioner.decoder.projector.weight.grad.abs().sum() > 0


def test_no_em_ablation_reads_no_neighbours_and_keeps_the_word_loss(toy_root: Path, tmp_path: Path) -> None:
    cfg = distinctad_cfg(toy_root, tmp_path, "captioning.distinct.em_attention=false")
    parts = build_recipe(cfg)
    assert parts.captioner.em_attention is None and parts.data.neighbour_clips == 0
    batch = first_batch(parts, cfg)
    assert "neighbour_frames" not in batch and "distinct_targets" in batch
    out = CaptioningLoss(parts.captioner.lambda_dw)(parts.captioner, caption_batch(batch))
    assert out.dw is not None and torch.allclose(out.loss, out.gen + 0.5 * out.dw)


def test_distinctad_reads_frame_features_and_needs_an_existing_adapter(toy_root: Path, tmp_path: Path) -> None:
    recipe = build_recipe(distinctad_cfg(toy_root, tmp_path, "captioning.visual_source=pme"))  # not read
    assert recipe.captioner.pme is None and recipe.captioner.em_attention is not None
    with pytest.raises(FileNotFoundError, match="captioning.distinct.adapter"):
        build_recipe(distinctad_cfg(toy_root, tmp_path, f"captioning.distinct.adapter={tmp_path / 'none'}"))
