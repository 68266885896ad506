"""FocusedAD learns on the toy data: with the best-query bank naming the characters in the instruction, the decoded
held-out ADs name the right character more often than without the bank (FocusedAD Table 1, C2 vs B1)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from moviead.data.sources import load_split
from moviead.datamodules import build_datamodule
from moviead.metrics.toy import toy_slot_accuracy
from moviead.recipes.base import model_batch
from moviead.recipes.checkpoint import load_captioner_checkpoint
from moviead.stages.train import train
from tests.focused._focused_setup import focused_cfg


@pytest.fixture(scope="module")
def toy12(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default 12-movie toy data (`moviead make-toy-data`): 8 training, 2 validation and 2 test movies."""
    from moviead.toy.generator import write_toy_dataset

    root = tmp_path_factory.mktemp("toy12")
    write_toy_dataset(root, movies=12, seed=0)
    return root


def held_out_slot_accuracy(checkpoint: Path) -> tuple[dict[str, float], int]:
    """Greedy decoding of every held-out record with the checkpoint's model: toy slot accuracies and the count."""
    parts, cfg = load_captioner_checkpoint(checkpoint)
    dm = build_datamodule(cfg, parts.tokenizer, needs=parts.data, collate=parts.collator)
    dm.setup("validate")
    settings = parts.generation_settings(cfg.captioning.generation, num_beams=1)
    captioner = parts.captioner.eval()
    refs, preds = [], []
    with torch.inference_mode():
        for batch in dm.val_dataloader():
            ids, _ = captioner.generate(model_batch(captioner, batch, with_target=False), settings)
            refs += [meta["text"] for meta in batch["meta"]]
            preds += [parts.decode(tokens) for tokens in ids]
    return toy_slot_accuracy(refs, preds), len(refs)


@pytest.mark.slow  # two 60-epoch toy trainings: about 8 minutes on 2 cores (make test-all)
def test_learning_the_character_bank_names_characters_more_accurately(toy12: Path, tmp_path: Path) -> None:
    scores = {}
    for names in ("recognised", "none"):
        # as the ablation spec's Stage-II runs: the name swap and 60 epochs, in which the model learns to copy the
        # instruction's name (20 epochs with the swap: 0.168 with the bank, 0.042 without)
        cfg = focused_cfg(toy12, tmp_path, f"captioning.focused.names={names}", f"name={names}",
                          "captioning.name_swap.enabled=true", "captioning.name_swap.names_file=../toy_manifest.json",
                          "trainer.max_epochs=60", "trainer.check_val_every_n_epoch=60",
                          "trainer.num_sanity_val_steps=0", "trainer.limit_val_batches=1",
                          "captioning.val_generate_batches=1")
        result = train(cfg)
        scores[names], count = held_out_slot_accuracy(result.run_dir / "checkpoints" / "last.ckpt")
        assert count == len(load_split(cfg.data, "val").items)  # every record of the 2 validation movies
    print(scores)
    with_bank, without = scores["recognised"]["name_acc"], scores["none"]["name_acc"]
    assert with_bank >= without + 0.2 and with_bank >= 2 * without, scores
    # both read the frames: the action, one of 10, at five times chance. Since the toy Storyboard-v2 frames hide the
    # action (premise 4: it lies in the patches, read through the region tokens) the model with the bank reads
    # 0.74-0.77 of them, and above 0.8 in some runs (2-thread float sums differ run to run): this bound was 0.8, a
    # strict expected failure that then passed by chance (session 16)
    assert scores["recognised"]["action_acc"] > 0.5, scores
