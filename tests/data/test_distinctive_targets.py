"""Distinctive-word targets in the data layer: first sub-tokens (byte-level BPE and WordPiece) and the multi-hot
(B, V) batch entry built by the Stage-II collate function against the proposal's ADs."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from moviead.data.captioning_collate import CaptioningCollator
from moviead.data.collate import BatchKey, ClipExample
from moviead.data.context import ADContext, ContextItem, ProposalItem
from moviead.data.distinctive_targets import DistinctiveWordTargets, is_byte_level
from moviead.data.records import ADRecord
from moviead.toy.tokenizers import write_toy_bpe_tokenizer

CORPUS = ["Tamsin opens the map in the attic.", "In the garden, Arlo drops the clock.", "Tamsin, over here!",
          "Someone hides the letter.", "Arlo hides the map in the garden."]  # fmt: skip


@pytest.fixture(scope="module")
def bpe(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(write_toy_bpe_tokenizer(CORPUS, tmp_path_factory.mktemp("bpe")))


def _token(tokenizer, token: str) -> int:
    return tokenizer.convert_tokens_to_ids(token)


def test_byte_level_bpe_words_map_to_their_first_subtoken_after_a_space(bpe) -> None:
    assert is_byte_level(bpe)
    targets = DistinctiveWordTargets(bpe, vocab_size=len(bpe), context_ads=3)
    assert targets.prefix == " "
    assert targets.first_subtoken("Tamsin") == _token(bpe, "ĠTamsin")  # whole word, in the written case
    assert targets.first_subtoken("garden") == _token(bpe, "Ġgarden")
    # not a corpus word: the toy BPE has no "ĠQ" merge, so " Quokkas" starts with the bare space, which is skipped
    unseen = bpe(" Quokkas", add_special_tokens=False)["input_ids"]
    assert bpe.convert_ids_to_tokens(unseen[:2]) == ["Ġ", "Q"]
    assert targets.first_subtoken("Quokkas") == unseen[1]


def test_wordpiece_words_map_to_their_first_piece_without_a_space(bert_tokenizer) -> None:
    assert not is_byte_level(bert_tokenizer)
    targets = DistinctiveWordTargets(bert_tokenizer, vocab_size=len(bert_tokenizer), context_ads=1)
    assert targets.prefix == ""
    assert targets.first_subtoken("Garden") == _token(bert_tokenizer, "garden")  # uncased vocabulary
    pieces = bert_tokenizer.tokenize("Tamsin")
    assert len(pieces) > 1 and targets.first_subtoken("Tamsin") == _token(bert_tokenizer, pieces[0])


def test_token_ids_use_only_the_last_context_ads(bpe) -> None:
    contexts = ["Tamsin opens the map in the attic.", "Arlo drops the clock."]
    text = "Tamsin drops the letter in the garden."
    one = DistinctiveWordTargets(bpe, len(bpe), context_ads=1)  # only "Arlo drops the clock." counts
    assert one.token_ids(text, contexts) == sorted(_token(bpe, t) for t in ("ĠTamsin", "Ġletter", "Ġgarden"))
    two = DistinctiveWordTargets(bpe, len(bpe), context_ads=2)
    assert two.token_ids(text, contexts) == sorted(_token(bpe, t) for t in ("Ġletter", "Ġgarden"))
    none = DistinctiveWordTargets(bpe, len(bpe), context_ads=0)
    assert len(none.token_ids(text, contexts)) == 4
    with pytest.raises(ValueError, match="outside the LM head"):
        DistinctiveWordTargets(bpe, vocab_size=5, context_ads=1).first_subtoken("Tamsin")


def _ad(text: str, index: int) -> ContextItem:
    return ContextItem("ad", float(index), index + 1.0, text, index)


def test_collate_builds_the_multi_hot_target_against_the_proposal_ads(bpe) -> None:
    rng = np.random.default_rng(0)
    proposal = (ProposalItem(None, (), 0.0, 1.0), ProposalItem(_ad("Arlo drops the clock.", 0), (), 1.0, 2.0),
                ProposalItem(_ad("In the garden, Tamsin opens the map.", 1), (), 2.0, 3.0))  # fmt: skip
    examples = [
        ClipExample(ADRecord("m", 2, 4.0, 5.0, "Arlo hides the map in the garden."), rng.random((3, 4), np.float32),
                    ADContext(), proposal),
        ClipExample(ADRecord("m", 0, 0.0, 1.0, "Tamsin opens the map."), rng.random((3, 4), np.float32), ADContext()),
    ]  # fmt: skip
    collate = CaptioningCollator(bpe, distinctive=DistinctiveWordTargets(bpe, len(bpe) + 3, context_ads=3))
    batch = collate(examples)
    targets = batch[BatchKey.DISTINCT_TARGETS]
    assert targets.shape == (2, len(bpe) + 3) and targets.dtype == torch.float32
    assert targets[0].nonzero().squeeze(1).tolist() == [_token(bpe, "Ġhides")]  # Arlo, map, garden are in context
    expected = sorted(_token(bpe, t) for t in ("ĠTamsin", "Ġopens", "Ġmap"))  # no context: every content word
    assert targets[1].nonzero().squeeze(1).tolist() == expected
    assert float(targets.sum()) == 4.0
    assert BatchKey.NEIGHBOUR_FRAMES not in batch  # not asked for
    assert torch.equal(pickle.loads(pickle.dumps(collate))(examples)[BatchKey.DISTINCT_TARGETS], targets)
