"""The Stage-II export contract: ``captioner.safetensors`` + ``captioner_config.json`` written by ``moviead train``,
reloaded by ``load_captioner_export`` like the ``.ckpt``, tied to its Stage-I export by a content hash, and accepted
by ``moviead evaluate``."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from moviead.cli import main
from moviead.evaluation.commands import resolve_checkpoint
from moviead.export_files import CAPTIONER_CONFIG, CAPTIONER_WEIGHTS, PME_WEIGHTS
from moviead.models.qformer import PretrainedMovieEncoder, load_pme_config, pme_export_sha256
from moviead.recipes.base import caption_batch
from moviead.recipes.checkpoint import Stage1MismatchError, load_captioner_checkpoint, load_captioner_export
from moviead.stages.train import train
from tests.stages._stage2 import STAGE2, first_batch, stage2_cfg


@pytest.fixture(scope="module")
def short_run(toy_root: Path, stage1_export: Path, tmp_path_factory: pytest.TempPathFactory):
    """Three training steps of the toy LoCo-MAD run, greedy decoding: its config and result."""
    cfg = stage2_cfg(toy_root, stage1_export, tmp_path_factory.mktemp("runs"), "trainer.max_epochs=1",
                     "trainer.limit_train_batches=3", "trainer.limit_val_batches=1", "trainer.num_sanity_val_steps=0",
                     "captioning.val_generate_batches=1", "loader.eval_batch_size=4",
                     "captioning.generation.num_beams=1", "captioning.generation.max_new_tokens=8")
    return cfg, train(cfg)


@pytest.fixture(scope="module")
def other_stage1(stage1_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Stage-I export of the same sizes as ``stage1_export`` but other weights."""
    torch.manual_seed(1)
    out = tmp_path_factory.mktemp("other-stage1") / "export"
    PretrainedMovieEncoder(load_pme_config(stage1_export / "pme_config.json")).save_pretrained(out)
    return out


def _val_batch(cfg, recipe):
    return caption_batch(first_batch(recipe, cfg), with_target=False)


def test_export_holds_weights_and_what_rebuilds_the_recipe(short_run, stage1_export: Path) -> None:
    cfg, result = short_run
    stored = json.loads((result.export_dir / CAPTIONER_CONFIG).read_text())
    sha = pme_export_sha256(stage1_export)
    assert stored["stage1_sha256"] == sha and stored["stage1"] == str(stage1_export)
    assert stored["config"]["captioning"]["decoder"]["lm"] == cfg.captioning.decoder.lm
    assert stored["config"]["data"] == {"dataset": "toy", "feature_dim": int(cfg.data.feature_dim)}
    checkpoint = torch.load(result.run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["moviead"]["stage1_sha256"] == sha  # the .ckpt records the same hash
    # both record where the run was, so that inputs moved with it are found (moviead.recipes.stored_paths)
    assert checkpoint["moviead"]["run_dir"] == stored["run_dir"] == os.path.abspath(result.run_dir)
    assert (result.export_dir / CAPTIONER_WEIGHTS).is_file()


def test_export_reloads_with_the_checkpoints_greedy_generation(short_run) -> None:
    cfg, result = short_run
    from_export, export_cfg = load_captioner_export(result.export_dir)
    from_ckpt, _ = load_captioner_checkpoint(result.run_dir / "checkpoints" / "last.ckpt")
    assert export_cfg.captioning.stage1 == cfg.captioning.stage1 and export_cfg.task == "captioning"
    trained = dict(from_ckpt.captioner.named_parameters())
    for name, param in from_export.captioner.named_parameters():
        if param.requires_grad:
            assert torch.equal(param, trained[name]), name
    batch = _val_batch(cfg, from_ckpt)
    settings = from_ckpt.generation_settings(cfg.captioning.generation, num_beams=1)
    first, _ = from_ckpt.captioner.eval().generate(batch, settings)
    again, _ = from_export.captioner.eval().generate(batch, settings)
    assert first == again and all(len(ids) > 0 for ids in first)


def test_another_stage1_export_is_refused_by_export_and_checkpoint(short_run, stage1_export: Path,
                                                                   other_stage1: Path, tmp_path: Path) -> None:
    _, result = short_run
    recorded, changed = pme_export_sha256(stage1_export), pme_export_sha256(other_stage1)
    assert recorded != changed
    override = [f"captioning.stage1={other_stage1}"]
    for load, source in ((load_captioner_export, result.export_dir),
                         (load_captioner_checkpoint, result.run_dir / "checkpoints" / "last.ckpt")):
        with pytest.raises(Stage1MismatchError) as err:
            load(source, override)
        message = str(err.value)
        assert recorded in message and changed in message, message
        assert str(stage1_export) in message and str(other_stage1) in message
        assert "Point captioning.stage1 at the Stage-I export this model was trained on" in message
    copy = shutil.copytree(stage1_export, tmp_path / "moved-stage1")  # same files elsewhere: accepted
    _, cfg = load_captioner_export(result.export_dir, [f"captioning.stage1={copy}"])
    assert cfg.captioning.stage1 == str(copy)
    assert (copy / PME_WEIGHTS).is_file()


def test_checkpoint_without_a_recorded_hash_warns(short_run, tmp_path: Path) -> None:
    _, result = short_run
    checkpoint = torch.load(result.run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    del checkpoint["moviead"]["stage1_sha256"]  # as written before the hash was recorded
    old = tmp_path / "run" / "checkpoints" / "old.ckpt"
    old.parent.mkdir(parents=True)
    torch.save(checkpoint, old)
    with pytest.warns(UserWarning, match="does not record the hash of its Stage-I export"):
        load_captioner_checkpoint(old)


def test_resolve_checkpoint_accepts_export_run_folder_and_ckpt(short_run, tmp_path: Path) -> None:
    _, result = short_run
    assert resolve_checkpoint(result.export_dir) == result.export_dir
    assert resolve_checkpoint(result.run_dir).parent == result.run_dir / "checkpoints"
    ckpt = result.run_dir / "checkpoints" / "last.ckpt"
    assert resolve_checkpoint(ckpt) == ckpt
    with pytest.raises(FileNotFoundError, match="captioner_config.json"):
        resolve_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="captioner_config.json"):
        load_captioner_export(tmp_path)


def test_evaluate_accepts_the_export_folder(short_run, toy_root: Path, capsys) -> None:
    _, result = short_run
    code = main(["evaluate", "--checkpoint", str(result.export_dir), "--mode", "local", "--split", "train",
                 "--limit-movies", "1", "--bertscore-model", "none", "--caption-metrics", "cider", "--no-progress",
                 "--data", str(STAGE2[-1]), f"data.root={toy_root / 'mad'}"])  # the toy data config
    assert code == 0
    folder = result.run_dir / "eval" / "train-local"  # the export's run folder, as for a .ckpt
    rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["checkpoint"] == str(result.export_dir) and metrics["num_ads"] == len(rows) > 0
    assert "cider" in capsys.readouterr().out
