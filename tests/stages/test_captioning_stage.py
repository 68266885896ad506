"""Stage-II LoCo-MAD on the toy data: the run, what its checkpoint holds, reloading it, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from moviead.recipes import build_recipe
from moviead.recipes.base import Stage1CheckpointError, caption_batch
from moviead.recipes.checkpoint import load_captioner_checkpoint
from moviead.stages.train import train
from tests.stages._stage2 import first_batch
from tests.stages._stage2 import stage2_cfg as _cfg


@pytest.fixture(scope="module")
def short_run(toy_root: Path, stage1_export: Path, tmp_path_factory: pytest.TempPathFactory):
    runs = tmp_path_factory.mktemp("runs")
    cfg = _cfg(
        toy_root,
        stage1_export,
        runs,
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=3",
        "trainer.limit_val_batches=1",
        "trainer.num_sanity_val_steps=0",
        "captioning.val_generate_batches=1",
        "loader.eval_batch_size=4",
    )
    return cfg, train(cfg)


def test_stage2_checkpoint_holds_config_stage1_path_and_only_trainable_weights(short_run, stage1_export: Path) -> None:
    cfg, result = short_run
    checkpoint = torch.load(result.run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    info = checkpoint["moviead"]
    assert info["stage1"] == str(stage1_export)
    assert info["config"]["captioning"]["decoder"]["lm"] == cfg.captioning.decoder.lm
    assert info["config"]["task"] == "captioning"
    keys = list(checkpoint["state_dict"])
    assert not [k for k in keys if k.startswith("captioner.pme.")]  # the frozen PME is not copied
    assert any(k.startswith("captioner.dsm.") for k in keys)
    assert "captioner.decoder.projector.weight" in keys
    assert (result.run_dir / "val_samples").is_dir()
    assert (result.export_dir / "captioner.safetensors").is_file()
    assert (result.run_dir / "sentence_features.safetensors").is_file()


def test_stage2_checkpoint_reloads_with_identical_generation(short_run, toy_root: Path) -> None:
    cfg, result = short_run
    parts, loaded_cfg = load_captioner_checkpoint(result.run_dir / "checkpoints" / "last.ckpt")
    assert loaded_cfg.captioning.stage1 == cfg.captioning.stage1
    checkpoint = torch.load(result.run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    for name, value in checkpoint["state_dict"].items():
        mine = parts.captioner.get_parameter(name.removeprefix("captioner."))
        assert torch.equal(mine, value), name
    batch = caption_batch(first_batch(parts, cfg), with_target=False)
    settings = parts.generation_settings(cfg.captioning.generation, num_beams=1)
    parts.captioner.eval()
    first, _ = parts.captioner.generate(batch, settings)
    again, _ = (
        load_captioner_checkpoint(result.run_dir / "checkpoints" / "last.ckpt")[0]
        .captioner.eval()
        .generate(batch, settings)
    )
    assert first == again and all(len(ids) > 0 for ids in first)


def test_missing_stage1_export_is_a_clear_error(toy_root: Path, tmp_path: Path) -> None:
    cfg = _cfg(toy_root, tmp_path / "nowhere", tmp_path)
    with pytest.raises(Stage1CheckpointError, match="does not exist"):
        build_recipe(cfg)
    cfg.captioning.stage1 = None
    with pytest.raises(Stage1CheckpointError, match="captioning.stage1 is not set"):
        build_recipe(cfg)
    (tmp_path / "empty").mkdir()
    cfg.captioning.stage1 = str(tmp_path / "empty")
    with pytest.raises(Stage1CheckpointError, match="not a PME export"):
        build_recipe(cfg)


def test_incompatible_stage1_export_is_a_clear_error(toy_root: Path, stage1_export: Path, tmp_path: Path) -> None:
    cfg = _cfg(toy_root, stage1_export, tmp_path, "data.feature_dim=512")
    with pytest.raises(Stage1CheckpointError, match="reads 768-d frames but data.feature_dim is 512"):
        build_recipe(cfg)


def test_frames_as_visual_source_needs_no_stage1(toy_root: Path, tmp_path: Path) -> None:
    cfg = _cfg(
        toy_root, tmp_path / "unused", tmp_path, "captioning.visual_source=frames", "captioning.dsm.enabled=false"
    )
    parts = build_recipe(cfg)
    assert parts.captioner.pme is None and parts.captioner.dsm is None
    assert parts.captioner.decoder.projector.in_features == 768


def test_not_a_stage2_checkpoint_is_refused(tmp_path: Path) -> None:
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="no moviead Stage-II entry"):
        load_captioner_checkpoint(tmp_path / "other.ckpt")
    with pytest.raises(FileNotFoundError):
        load_captioner_checkpoint(tmp_path / "absent.ckpt")


def test_batch_transfer_moves_the_tensors_and_leaves_the_meta_text_alone() -> None:
    """``ADDataModule.transfer_batch_to_device`` (Lightning calls the data module's hook for every stage): tensors go
    to the device, ``meta`` (per-sample dicts of text) is handed on as the same object, other entries go through
    Lightning's own transfer."""
    from moviead.data.collate import BatchKey
    from moviead.datamodules.base import ADDataModule

    meta = [{"movie": "m", "proposal": [{"ad": "Ann waves.", "subtitles": ["Hi."]}]}]
    batch = {BatchKey.FRAMES: torch.ones(1, 2, 3), BatchKey.META: meta, "extra": [torch.zeros(2)]}
    moved = ADDataModule.transfer_batch_to_device(object.__new__(ADDataModule), batch, torch.device("meta"), 0)
    assert moved[BatchKey.FRAMES].device.type == "meta" and moved[BatchKey.FRAMES].shape == (1, 2, 3)
    assert moved[BatchKey.META] is meta
    assert moved["extra"][0].device.type == "meta"
