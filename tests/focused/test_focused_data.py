"""The Storyboard-v2 DataModule serving FocusedAD batches: all three record types, the dynamic instruction with its
region positions, names from the bank or not at all, and patch features read at the clip's frames."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from moviead.data.collate import BatchKey
from moviead.data.name_swap import read_name_pool
from moviead.datamodules import StoryboardDataModule, build_datamodule
from moviead.focused.data import FocusedBatchKey as K
from moviead.focused.templates import REGION, dynamic_instruction
from moviead.recipes import build_recipe
from tests.focused._focused_setup import focused_cfg, write_patch_features


def _datamodule(toy_root: Path, tmp_path: Path, *overrides: str):
    cfg = focused_cfg(toy_root, tmp_path, *overrides)
    parts = build_recipe(cfg)
    dm = build_datamodule(cfg, parts.tokenizer, needs=parts.data, collate=parts.collator)
    dm.setup("fit")
    return cfg, parts, dm


def test_batches_hold_all_three_record_types_with_their_instructions(toy_root: Path, tmp_path: Path) -> None:
    _, parts, dm = _datamodule(toy_root, tmp_path, "captioning.name_swap.enabled=true",  # the ablation spec's setting
                               "captioning.name_swap.names_file=../toy_manifest.json")
    assert isinstance(dm, StoryboardDataModule)
    types: Counter[int] = Counter()
    names_by_type: dict[int, set[int]] = {1: set(), 2: set(), 3: set()}
    pad = parts.tokenizer.pad_token_id
    cfg_names = {r.movie_id: r.main_characters for r in dm.records().values()}
    named: Counter[bool] = Counter()
    pool, renamed = set(read_name_pool(parts.data.name_swap)), 0
    for batch in dm.train_dataloader():
        ids, mask, region = batch[K.INSTRUCTION_IDS], batch[K.INSTRUCTION_MASK], batch[K.INSTRUCTION_REGION]
        assert batch[BatchKey.FRAMES].shape[1] == 8 and batch[K.PATCHES].shape[:2] == batch[BatchKey.FRAMES].shape[:2]
        for b, meta in enumerate(batch[BatchKey.META]):
            types[meta["clip_type"]] += 1
            names_by_type[meta["clip_type"]].add(len(meta["names"]))
            assert meta["instruction"] == dynamic_instruction(meta["names"])
            regions = region[b][mask[b]]
            count = max(1, len(meta["names"]))
            assert sorted(regions[regions >= 0].tolist()) == list(range(count))  # one position per region
            assert int(batch[K.REGION_VALID][b].sum()) == count
            assert (ids[b][mask[b]][regions >= 0] == pad).all()
            text = parts.tokenizer.decode(ids[b][mask[b]][regions < 0].tolist())  # pieces between the regions
            assert text.replace(" ", "") == meta["instruction"].replace(REGION, "").replace(" ", "")
            # training examples' names are swapped (name_swap): recognised from the movie's bank,
            # then renamed like the AD, so they are the pool's names and still the AD's character
            assert set(meta["names"]) <= pool
            renamed += not set(meta["names"]) <= set(cfg_names[meta["movie"]])
            if meta["clip_type"] != 3 and not meta["text"].startswith("In the "):
                named[meta["text"].split()[0] in meta["names"]] += 1
    assert renamed > 10
    for batch in dm.val_dataloader():  # validation: the movie's own bank characters, as recognised
        assert all(set(m["names"]) <= set(cfg_names[m["movie"]]) for m in batch[BatchKey.META])
    assert set(types) == {1, 2, 3}, types
    assert names_by_type[3] == {0}  # type 3: no main character (only strangers), the whole-frame instruction
    assert 2 in names_by_type[1]
    # names are recognised from the faces' embeddings with the bank, not copied from the AD: the AD's character is
    # among them for most clips (toy best-query recognition ~95% per face), not all
    assert 0.8 <= named[True] / (named[True] + named[False]) < 1.0, named


def test_without_the_bank_every_clip_gets_the_no_character_instruction(toy_root: Path, tmp_path: Path) -> None:
    _, _, dm = _datamodule(toy_root, tmp_path, "captioning.focused.names=none")
    batch = next(iter(dm.val_dataloader()))
    assert {m["instruction"] for m in batch[BatchKey.META]} == {dynamic_instruction([])}
    assert batch[K.REGION_BOXES][:, 0].tolist() == [[0.0, 0.0, 1.0, 1.0]] * len(batch[BatchKey.META])


def test_character_tokens_off_leaves_the_placeholder_as_text(toy_root: Path, tmp_path: Path) -> None:
    _, parts, dm = _datamodule(toy_root, tmp_path, "captioning.focused.character_tokens=none")
    batch = next(iter(dm.val_dataloader()))
    assert (batch[K.INSTRUCTION_REGION] == -1).all()
    first = batch[K.INSTRUCTION_IDS][0][batch[K.INSTRUCTION_MASK][0]].tolist()
    assert parts.tokenizer.decode(first).strip() == batch[BatchKey.META][0]["instruction"]  # toy BPE: prefix space


def test_patch_features_are_read_at_the_frames_indices(toy_root: Path, tmp_path: Path) -> None:
    patches = write_patch_features(toy_root / "storyboard", "patches_data_test.h5")
    _, _, dm = _datamodule(toy_root, tmp_path, "captioning.focused.character_tokens=box",
                           f"captioning.focused.patch_features={patches.name}")
    batch = next(iter(dm.train_dataloader()))  # training: a random shift, the same for frames and patches
    assert batch[K.PATCHES].shape[:2] == batch[BatchKey.FRAMES].shape[:2] and batch[K.PATCHES].shape[2:] == (2, 2, 3)
    np.testing.assert_allclose(batch[K.PATCHES][:, :, 1, 0].numpy(), batch[BatchKey.FRAMES][:, :, :3].numpy())


def test_box_mode_without_patch_features_is_a_clear_error(toy_root: Path, tmp_path: Path) -> None:
    cfg = focused_cfg(toy_root, tmp_path, "captioning.focused.character_tokens=box",
                      "captioning.focused.patch_features=null")
    with pytest.raises(ValueError, match="method=focusedad: character_tokens=box needs captioning.focused.patch_feat"):
        build_recipe(cfg)


def test_the_method_key_is_the_switch_other_recipes_sections_are_not_read(toy_root: Path, tmp_path: Path) -> None:
    cfg = focused_cfg(toy_root, tmp_path, "captioning.dsm.enabled=true", "captioning.decoder.instruction=AD",
                      "captioning.distinct.lambda_dw=1.0")
    recipe = build_recipe(cfg)
    assert recipe.method == "focusedad" and recipe.captioner.dsm is None and recipe.captioner.lambda_dw == 0.0
    assert len(recipe.captioner.decoder.instruction_ids) == 0  # FocusedAD's instruction is built per clip
