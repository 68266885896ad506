"""Training-time name swapping: a consistent random renaming of an example's texts (target, context, proposal),
the DSM's features kept on the data's own text, only in training, and the pool read from the toy manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from moviead.data.collate import ClipExample
from moviead.data.context import ADContext, ContextItem, ProposalItem
from moviead.data.name_swap import NameSwap, read_name_pool
from moviead.data.records import ADRecord

SWAP = ("captioning.name_swap.enabled=true", "captioning.name_swap.names_file=../toy_manifest.json")  # the spec's
POOL = ("Arlo", "Bexley", "Corin", "Dalia", "Ann", "Ann Lee")


def _example() -> ClipExample:
    ad = ContextItem("ad", 1.0, 3.0, "Bexley opens the door in the kitchen.", 0)
    sub = ContextItem("subtitle", 4.0, 5.0, "Arlo, is that Bexley?")
    proposal = (ProposalItem(ad, (sub,), 1.0, 8.0), ProposalItem(None, (sub,), 0.0, 1.0))
    return ClipExample(ADRecord("m", 1, 8.0, 10.0, "Arlo hands Bexley the kettle."),
                       np.zeros((2, 3), dtype=np.float32), ADContext(ads=(ad,), subtitles=(sub,)), proposal)


def test_a_renaming_is_a_bijection_of_the_pool_drawn_from_torch_rng() -> None:
    swap = NameSwap(POOL)
    renaming = swap.draw(torch.Generator().manual_seed(0))
    assert sorted(renaming) == sorted(POOL) and sorted(renaming.values()) == sorted(POOL)
    draws = {tuple(swap.draw(torch.Generator().manual_seed(s)).values()) for s in range(20)}
    assert len(draws) > 10  # a fresh assignment per draw, not one fixed permutation
    assert swap.draw(torch.Generator().manual_seed(3)) == swap.draw(torch.Generator().manual_seed(3))


def test_names_are_replaced_as_whole_words_all_at_once_longest_first() -> None:
    swap = NameSwap(POOL)
    renaming = {"Arlo": "Bexley", "Bexley": "Arlo", "Ann Lee": "Corin", "Ann": "Dalia"}
    assert swap.apply("Arlo hands Bexley the kettle.", renaming) == "Bexley hands Arlo the kettle."
    assert swap.apply("Ann Lee waves to Ann.", renaming) == "Corin waves to Dalia."
    assert swap.apply("Arlond and Bexleys stay; Annex too.", renaming) == "Arlond and Bexleys stay; Annex too."


def test_a_text_met_again_is_renamed_from_its_memo_as_a_fresh_search_would() -> None:
    """Each text is searched once; later renamings of it (other draws) equal a fresh regular-expression pass."""
    swap = NameSwap(POOL)
    texts = ["Arlo hands Bexley the kettle.", "Ann Lee waves to Ann.", "No one here.", "Bexley, Bexley!", ""]
    for seed in range(3):
        renaming = swap.draw(torch.Generator().manual_seed(seed))
        fresh = [swap._pattern.sub(lambda m: renaming[m.group(1)], t) for t in texts]
        assert [swap.apply(t, renaming) for t in texts] == fresh
    assert set(swap._pieces) == set(texts)


def test_an_example_is_renamed_everywhere_and_the_dsm_reads_the_data_text() -> None:
    swap = NameSwap(POOL)
    renaming = {"Arlo": "Corin", "Bexley": "Dalia", "Corin": "Arlo", "Dalia": "Bexley", "Ann": "Ann",
                "Ann Lee": "Ann Lee"}  # fmt: skip
    out = swap.swap_example(_example(), renaming)
    assert out.record.text == "Corin hands Dalia the kettle."
    assert [a.text for a in out.context.ads] == ["Dalia opens the door in the kitchen."]
    assert [s.text for s in out.context.subtitles] == ["Corin, is that Dalia?"]
    first, lead = out.proposal
    assert first.ad is not None and first.ad.text == "Dalia opens the door in the kitchen."
    assert first.subtitle_text == "Corin, is that Dalia?" and lead.subtitle_text == "Corin, is that Dalia?"
    # the DSM's sentence features stay those of the data (the bank holds them): item AD text, or subtitles
    assert first.feature_text == "Bexley opens the door in the kitchen."
    assert lead.feature_text == "Arlo, is that Bexley?"
    assert dict(out.renamed) == renaming
    assert (out.record.movie, out.record.index, out.record.start) == ("m", 1, 8.0)


def test_the_pool_is_read_from_a_text_file_a_json_list_or_the_toy_manifest(tmp_path: Path) -> None:
    (tmp_path / "names.txt").write_text("# cast\nArlo\n\nBexley\n", encoding="utf-8")
    (tmp_path / "names.json").write_text(json.dumps(["Arlo", "Corin"]), encoding="utf-8")
    (tmp_path / "toy_manifest.json").write_text(json.dumps({"vocabulary": {"names": ["Dalia", "Emrys"]}}),
                                                encoding="utf-8")
    assert read_name_pool(tmp_path / "names.txt") == ("Arlo", "Bexley")
    assert read_name_pool(tmp_path / "names.json") == ("Arlo", "Corin")
    assert read_name_pool(tmp_path / "toy_manifest.json") == ("Dalia", "Emrys")
    with pytest.raises(FileNotFoundError, match="one character name per line"):
        read_name_pool(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="at least 2 distinct names"):
        NameSwap(["Arlo", "Arlo "])


def test_the_toy_recipes_swap_training_examples_only(toy_root: Path) -> None:
    """The ablation spec's setting (``stage2_common``) on the toy data: training examples get a consistent renaming
    from the toy world's pool; validation examples are the data as it is."""
    from moviead.config import load_config
    from moviead.data.sources import load_split, make_dataset
    from moviead.recipes.base import context_requirements
    from tests.conftest import CONFIGS

    cfg = load_config([CONFIGS / "stage2" / "loco_mad.yaml", CONFIGS / "stage2" / "loco_mad_tiny.yaml",
                       CONFIGS / "data" / "toy.yaml"], [f"data.root={toy_root / 'mad'}", *SWAP])  # fmt: skip
    needs = context_requirements(cfg)
    assert cfg.captioning.name_swap.enabled and needs.name_swap == toy_root / "mad" / "../toy_manifest.json"
    pool = set(json.loads((toy_root / "toy_manifest.json").read_text())["vocabulary"]["names"])
    train = make_dataset(load_split(cfg.data, "train"), cfg.data, cfg.loader.frames, needs, training=True)
    val = make_dataset(load_split(cfg.data, "val"), cfg.data, cfg.loader.frames, needs, training=False)
    swap = train.name_swap
    assert isinstance(swap, NameSwap) and set(swap.names) == pool and val.name_swap is None
    torch.manual_seed(0)
    changed = 0
    for i in range(0, len(train), max(1, len(train) // 40)):
        example, item = train[i], train.items[i]
        renaming = dict(example.renamed)
        assert sorted(renaming.values()) == sorted(pool)
        assert example.record.text == swap.apply(item.record.text, renaming)
        assert [p.feature_text for p in example.proposal] == [p.feature_text for p in train.context.build_proposal(
            item.record)]  # fmt: skip
        changed += example.record.text != item.record.text
    assert changed > 20
    assert all(val[i].renamed == () and val[i].record.text == val.items[i].record.text for i in range(len(val)))


def test_names_file_is_required_and_checked(toy_root: Path, tmp_path: Path) -> None:
    from moviead.config import load_config
    from moviead.data.sources import load_split, make_dataset
    from moviead.recipes.base import context_requirements, name_swap_of
    from tests.conftest import CONFIGS

    files = [CONFIGS / "stage2" / "loco_mad.yaml", CONFIGS / "stage2" / "loco_mad_tiny.yaml",
             CONFIGS / "data" / "toy.yaml"]  # fmt: skip
    cfg = load_config(files, [f"data.root={toy_root / 'mad'}", *SWAP, "captioning.name_swap.names_file=null"])
    with pytest.raises(ValueError, match="needs captioning.name_swap.names_file"):
        name_swap_of(cfg)
    cfg = load_config(files, [f"data.root={toy_root / 'mad'}", *SWAP, "captioning.name_swap.names_file=cast.txt"])
    needs = context_requirements(cfg)  # a model rebuilt for evaluation does not read the pool
    assert needs.name_swap == toy_root / "mad" / "cast.txt"
    assert make_dataset(load_split(cfg.data, "val"), cfg.data, cfg.loader.frames, needs, training=False).name_swap is None
    with pytest.raises(FileNotFoundError, match="cast.txt"):  # a training split does
        make_dataset(load_split(cfg.data, "train"), cfg.data, cfg.loader.frames, needs, training=True)
    cfg = load_config(files, [f"data.root={toy_root / 'mad'}"])  # the tiny recipes (make demo): off
    assert name_swap_of(cfg) is None


def test_a_name_swap_on_a_dataset_that_does_not_train_is_refused(toy_root: Path) -> None:
    from moviead.config import load_config
    from moviead.data.sources import load_split, make_dataset
    from moviead.recipes.base import context_requirements
    from tests.conftest import CONFIGS

    cfg = load_config([CONFIGS / "stage2" / "loco_mad.yaml", CONFIGS / "stage2" / "loco_mad_tiny.yaml",
                       CONFIGS / "data" / "toy.yaml"], [f"data.root={toy_root / 'mad'}"])  # fmt: skip
    val = make_dataset(load_split(cfg.data, "val"), cfg.data, cfg.loader.frames, context_requirements(cfg), False)
    with pytest.raises(ValueError, match="training-time transform"):
        type(val)(val.items, val.features, val.sampler, val.context, training=False, name_swap=NameSwap(POOL))
