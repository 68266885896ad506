"""Stage-II batches: target ids, the tokenised proposal, sentence features, masks and padding."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from moviead.data.captioning_collate import CaptioningCollator
from moviead.data.collate import BatchKey, ClipExample
from moviead.data.context import ADContext, ContextItem, ProposalItem
from moviead.data.records import ADRecord
from moviead.toy.tokenizers import write_toy_bpe_tokenizer

CORPUS = ["Tamsin opens the map in the attic.", "In the garden, Arlo drops the clock.", "Tamsin, over here!",
          "Did you hear that?", "Not now, please.", "Someone hides the letter."]  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(write_toy_bpe_tokenizer(CORPUS, tmp_path_factory.mktemp("bpe")))


def features_of(texts: Sequence[str]) -> torch.Tensor:
    """(n, 3) features: characters, words and the code of the first character of each text."""
    return torch.tensor([[len(t), len(t.split()), ord(t[0])] for t in texts], dtype=torch.float64).reshape(-1, 3)


def _sub(start: float, text: str) -> ContextItem:
    return ContextItem("subtitle", start, start + 1.0, text)


def _examples() -> list[ClipExample]:
    rng = np.random.default_rng(0)
    first = ProposalItem(None, (_sub(1.0, "Tamsin, over here!"),), 1.0, 5.0)
    second = ProposalItem(ContextItem("ad", 5.0, 7.0, "Tamsin opens the map in the attic.", 0),
                          (_sub(8.0, "Did you hear that?"), _sub(9.0, "Not now, please.")), 5.0, 12.0)  # fmt: skip
    only_ad = ProposalItem(ContextItem("ad", 0.0, 2.0, "Someone hides the letter.", 3), (), 0.0, 20.0)
    return [
        ClipExample(ADRecord("m", 1, 10.0, 12.0, "In the garden, Arlo drops the clock."),
                    rng.standard_normal((3, 4)).astype(np.float32), ADContext(), (first, second)),
        ClipExample(ADRecord("m", 0, 3.0, 5.0, "Tamsin opens the map in the attic."),
                    rng.standard_normal((5, 4)).astype(np.float32), ADContext()),
        ClipExample(ADRecord("n", 4, 20.0, 22.0, "Someone hides the letter."),
                    rng.standard_normal((5, 4)).astype(np.float32), ADContext(), (only_ad,)),
    ]  # fmt: skip


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_targets_end_with_the_newline_token_without_bos(tokenizer) -> None:
    batch = CaptioningCollator(tokenizer)(_examples())
    ids, mask = batch[BatchKey.TEXT_IDS], batch[BatchKey.TEXT_MASK]
    assert ids.dtype == torch.int64 and mask.dtype == torch.bool
    newline = _ids(tokenizer, "attic\n")[-1]  # a newline after a word (no prefix space)
    for row, ex in enumerate(_examples()):
        expected = _ids(tokenizer, ex.record.text) + [newline]
        assert ids[row, mask[row]].tolist() == expected
        assert mask[row].tolist() == [True] * len(expected) + [False] * (ids.shape[1] - len(expected))
    assert ids.shape[1] == len(_ids(tokenizer, "In the garden, Arlo drops the clock.")) + 1
    assert ids[1, ~mask[1]].tolist() == [tokenizer.pad_token_id] * int((~mask[1]).sum())
    assert tokenizer.bos_token_id not in ids[mask].tolist()


def test_targets_are_truncated_to_max_text_tokens(tokenizer) -> None:
    batch = CaptioningCollator(tokenizer, max_text_tokens=3)(_examples())
    assert batch[BatchKey.TEXT_IDS].shape == (3, 3) and bool(batch[BatchKey.TEXT_MASK].all())
    assert batch[BatchKey.TEXT_IDS][1].tolist() == _ids(tokenizer, "Tamsin opens the map in the attic.")[:3]


def test_proposal_tokens_masks_and_validity(tokenizer) -> None:
    batch = CaptioningCollator(tokenizer)(_examples())
    valid = batch[BatchKey.PROPOSAL_VALID]
    assert valid.dtype == torch.bool and valid.tolist() == [[True, True], [False, False], [True, False]]
    ad_ids, ad_mask = batch[BatchKey.PROPOSAL_AD_IDS], batch[BatchKey.PROPOSAL_AD_MASK]
    sub_ids, sub_mask = batch[BatchKey.PROPOSAL_SUB_IDS], batch[BatchKey.PROPOSAL_SUB_MASK]
    map_ad, letter_ad = (
        _ids(tokenizer, "Tamsin opens the map in the attic."),
        _ids(tokenizer, "Someone hides the letter."),
    )
    two_subs = _ids(tokenizer, "Did you hear that? Not now, please.")
    assert ad_ids.shape == (3, 2, max(len(map_ad), len(letter_ad))) and ad_ids.dtype == torch.int64
    assert sub_ids.shape == (3, 2, len(two_subs)) and sub_mask.dtype == torch.bool
    assert ad_ids[0, 1, ad_mask[0, 1]].tolist() == map_ad and ad_ids[2, 0, ad_mask[2, 0]].tolist() == letter_ad
    assert not ad_mask[0, 0].any()  # the leading item has no AD
    assert sub_ids[0, 0, sub_mask[0, 0]].tolist() == _ids(tokenizer, "Tamsin, over here!")
    assert sub_ids[0, 1].tolist() == two_subs and bool(sub_mask[0, 1].all())
    assert not sub_mask[2, 0].any()  # an AD without subtitles
    assert not ad_mask[1].any() and not sub_mask[1].any() and not ad_mask[2, 1].any()  # padded items
    assert set(ad_ids[~ad_mask].tolist()) == {tokenizer.pad_token_id}


def test_item_truncation_keeps_the_first_ad_and_the_last_subtitle_tokens(tokenizer) -> None:
    batch = CaptioningCollator(tokenizer, max_item_tokens=2)(_examples())
    assert batch[BatchKey.PROPOSAL_AD_IDS].shape == (3, 2, 2) and batch[BatchKey.PROPOSAL_SUB_IDS].shape == (3, 2, 2)
    assert batch[BatchKey.PROPOSAL_AD_IDS][0, 1].tolist() == _ids(tokenizer, "Tamsin opens the map in the attic.")[:2]
    assert (
        batch[BatchKey.PROPOSAL_SUB_IDS][0, 1].tolist() == _ids(tokenizer, "Did you hear that? Not now, please.")[-2:]
    )


def test_sentence_features_on_valid_items_zeros_on_padding(tokenizer) -> None:
    batch = CaptioningCollator(tokenizer, sentence_features=features_of)(_examples())
    features = batch[BatchKey.PROPOSAL_FEATURES]
    assert features.shape == (3, 2, 3) and features.dtype == torch.float32
    expected = features_of(["Tamsin, over here!", "Tamsin opens the map in the attic.", "Someone hides the letter."])
    assert torch.equal(features[batch[BatchKey.PROPOSAL_VALID]], expected.float())
    assert features[1].abs().sum() == 0 and features[2, 1].abs().sum() == 0
    assert features[0, 0].tolist() == [18.0, 3.0, float(ord("T"))]
    assert BatchKey.PROPOSAL_FEATURES not in CaptioningCollator(tokenizer)(_examples())


def test_batch_without_any_context_keeps_one_invalid_item(tokenizer) -> None:
    batch = CaptioningCollator(tokenizer, sentence_features=features_of)([_examples()[1]])
    assert batch[BatchKey.PROPOSAL_VALID].tolist() == [[False]]
    assert batch[BatchKey.PROPOSAL_AD_IDS].shape == (1, 1, 1) and batch[BatchKey.PROPOSAL_SUB_MASK].shape == (1, 1, 1)
    assert not batch[BatchKey.PROPOSAL_AD_MASK].any() and not batch[BatchKey.PROPOSAL_SUB_MASK].any()
    assert batch[BatchKey.PROPOSAL_FEATURES].tolist() == [[[0.0, 0.0, 0.0]]]


def test_frames_and_meta_with_the_proposal(tokenizer) -> None:
    examples = _examples()
    batch = CaptioningCollator(tokenizer)(examples)
    assert batch[BatchKey.FRAMES].shape == (3, 5, 4) and batch[BatchKey.FRAMES].dtype == torch.float32
    assert batch[BatchKey.FRAME_MASK].tolist()[0] == [True, True, True, False, False]
    assert torch.equal(batch[BatchKey.FRAMES][2], torch.from_numpy(examples[2].frames))
    meta = batch[BatchKey.META]
    assert meta[0]["movie"] == "m" and meta[0]["index"] == 1 and meta[0]["text"] == examples[0].record.text
    assert meta[0]["proposal"] == [
        {"ad": None, "subtitles": ["Tamsin, over here!"], "start": 1.0, "end": 5.0},
        {"ad": "Tamsin opens the map in the attic.", "subtitles": ["Did you hear that?", "Not now, please."],
         "start": 5.0, "end": 12.0},
    ]  # fmt: skip
    assert meta[1]["proposal"] == [] and meta[1]["context"] == []


def test_collator_pickles_for_dataloader_workers(tokenizer, tmp_path: Path) -> None:
    collator = CaptioningCollator(tokenizer, max_text_tokens=8, sentence_features=features_of)
    copy = pickle.loads(pickle.dumps(collator))
    first, second = collator(_examples()), copy(_examples())
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first if isinstance(first[k], torch.Tensor))


def test_token_ids_come_from_the_memo_the_second_time_and_equal_the_tokenizers(tokenizer) -> None:
    """A text is tokenised once per collator (context ADs recur in up to L_c proposals an epoch); the batch of a
    second call, served from the memo, equals the first, and a memo started afresh when full changes nothing."""

    class Counting:
        def __init__(self, inner) -> None:
            self.inner, self.texts = inner, []
            self.pad_token_id, self.eos_token_id = inner.pad_token_id, inner.eos_token_id

        def __call__(self, texts, **kwargs):
            self.texts.extend(texts)
            return self.inner(texts, **kwargs)

    counting = Counting(tokenizer)
    collate = CaptioningCollator(counting)
    first = collate(_examples())
    asked = len(counting.texts)
    assert asked == len(set(counting.texts))  # each distinct text once, even within a batch
    second = collate(_examples())
    assert len(counting.texts) == asked  # nothing tokenised again
    small = CaptioningCollator(tokenizer)
    small.memo_size = 2  # full at once: cleared before each new set of texts
    third = small(_examples())
    for batch in (second, third):
        for key, value in first.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(batch[key], value), key
