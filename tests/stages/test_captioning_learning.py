"""Stage-II learns on the toy data: fast, the loss on a fixed batch falls far below where it started; slow (make
test-all), CIDEr of the decoded validation ADs rises well above the untrained model's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from moviead.datamodules import build_datamodule
from moviead.metrics.captioning import caption_scores
from moviead.recipes import build_recipe
from moviead.recipes.base import caption_batch
from moviead.stages.train import train
from tests.stages._fixed_batch import fixed_batch_losses
from tests.stages._stage2 import stage2_cfg

VAL_BATCHES = 2


def _val_cider(parts, cfg) -> float:
    """CIDEr of greedy decoding on the first VAL_BATCHES validation batches (the subset validation decodes)."""
    dm = build_datamodule(cfg, parts.tokenizer, needs=parts.data, collate=parts.collator)
    dm.setup("validate")
    settings = parts.generation_settings(cfg.captioning.generation, num_beams=1)
    refs, preds = {}, {}
    parts.captioner.eval()
    for i, batch in zip(range(VAL_BATCHES), dm.val_dataloader()):
        ids, _ = parts.captioner.generate(caption_batch(batch, with_target=False), settings)
        for meta, tokens in zip(batch["meta"], ids):
            key = (meta["movie"], meta["index"])
            refs[key], preds[key] = [meta["text"]], parts.decode(tokens)
    return caption_scores(refs, preds, metrics=("cider",))["cider"]


def test_learning_loco_mad_fits_a_fixed_batch(toy_root: Path, stage1_export: Path, tmp_path: Path) -> None:
    """The fast suite's learning check: 15 AdamW steps on one batch of toy training ADs take the LoCo-MAD loss
    (½ (GEN + CCL)) far down. Measured: 4.53 -> 1.24 (seeds 1 and 2: 3.70 -> 1.02, 4.09 -> 1.31)."""
    cfg = stage2_cfg(toy_root, stage1_export, tmp_path)
    torch.manual_seed(cfg.seed)
    before, after = fixed_batch_losses(build_recipe(cfg, tmp_path), cfg, steps=15)
    assert after < 0.5 * before, (before, after)


@pytest.mark.slow  # 15-30 s on 2 cores (make test-all); the fast suite has the fixed-batch check above
def test_learning_cider_after_training_exceeds_untrained(toy12: Path, stage1_export: Path, tmp_path: Path) -> None:
    # measured: CIDEr 0.0015 untrained -> 0.323 after 2 epochs (3 epochs gave no wider margin: 0.324)
    cfg = stage2_cfg(toy12, stage1_export, tmp_path, "trainer.max_epochs=2", "trainer.num_sanity_val_steps=0",
                     "trainer.check_val_every_n_epoch=2",
                     # one sentence-feature cache: the training run reuses what the untrained decoding encoded
                     f"captioning.dsm.sentence_cache={tmp_path / 'sentence_features.safetensors'}",
                     f"captioning.val_generate_batches={VAL_BATCHES}", "captioning.val_num_beams=1")
    torch.manual_seed(cfg.seed)
    untrained = _val_cider(build_recipe(cfg, tmp_path / "untrained"), cfg)
    result = train(cfg)
    trained = result.metrics["val/cider"]
    assert trained > untrained + 0.2, (untrained, trained)


@pytest.mark.slow  # two 20-epoch toy trainings: about 2 minutes on 2 cores (make test-all)
def test_learning_oracle_context_names_the_character_far_more_often_than_local(
    toy12: Path, stage1_export: Path, tmp_path: Path
) -> None:
    """Names are only in the context (subtitles, earlier ADs), never in the frames: only context can supply them.

    The context is the last 3 items, without the DSM: in world v1 the relevant context is always the most recent,
    and the DSM (reading the toy text tower) selects by the clip's setting, which there is no guide to the name
    (with it, both modes' last-epoch val name accuracy was 0 after 20 epochs, measured on 2026-12-02)."""
    accuracy = {}
    for mode in ("oracle", "local"):
        cfg = stage2_cfg(toy12, stage1_export, tmp_path / mode, f"captioning.context_mode={mode}", f"name={mode}",
                         "trainer.num_sanity_val_steps=0", "captioning.dsm.enabled=false",
                         "captioning.context_size=3")
        accuracy[mode] = train(cfg).metrics["val/name_acc"]
    assert accuracy["oracle"] >= accuracy["local"] + 0.15 and accuracy["oracle"] >= 2 * accuracy["local"], accuracy
