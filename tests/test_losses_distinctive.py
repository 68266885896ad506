"""The distinctive words D of an AD and the distinctive-word loss (DistinctAD, SPEC §5.3), on fixed inputs."""

from __future__ import annotations

import math

import pytest
import torch

from moviead.losses import distinctive_word_loss
from moviead.wordlists import distinctive_words


def test_distinctive_words_drop_stopwords_and_words_of_any_context_ad_whatever_their_case() -> None:
    text = "Tamsin opens the map in the attic."
    # "the", "in" are stopwords; "Tamsin" and "attic" occur (lower-cased, in another case) in a context AD
    assert distinctive_words(text, ["In the ATTIC, tamsin drops the clock."]) == ["opens", "map"]
    assert distinctive_words(text, ["Arlo waits.", "The map is old."]) == ["Tamsin", "opens", "attic"]
    assert distinctive_words(text, []) == ["Tamsin", "opens", "map", "attic"]
    assert distinctive_words(text, [text]) == []


def test_distinctive_words_are_unique_in_first_written_form_and_split_at_punctuation() -> None:
    # "tamsin" repeats "Tamsin" and "map" repeats "MAP" (first form kept); "'s" leaves the stopword "s"
    assert distinctive_words("Tamsin sees tamsin's MAP and the map, twice.", []) == ["Tamsin", "sees", "MAP", "twice"]
    assert distinctive_words("He is here, and she was there.", []) == []  # only stopwords


def test_distinctive_word_loss_by_hand() -> None:
    """Positives (y = 1): z = 0: ln 2; z = -ln 3: ln(1 + 3) = 2 ln 2; z = ln 3: ln(4/3). Negatives (y = 0): z = ln 3:
    ln 4 = 2 ln 2; z = 0 twice: ln 2. L_DW = (3 ln 2 + ln(4/3)) / 3 + 4 ln 2 / 3 = (7 ln 2 + ln(4/3)) / 3."""
    ln3 = math.log(3.0)
    logits = torch.tensor([[0.0, ln3, 0.0], [-ln3, 0.0, ln3]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 1.0]])
    loss = distinctive_word_loss(logits, targets)
    assert loss.item() == pytest.approx((7 * math.log(2.0) + math.log(4.0 / 3.0)) / 3, rel=1e-6)
    loss.backward()  # d/dz = (σ(z) - y) / 3 on both sides (3 positives, 3 negatives)
    expected = torch.tensor([[0.5 - 1.0, 0.75, 0.5], [0.25 - 1.0, 0.5, 0.75 - 1.0]]) / 3
    assert torch.allclose(logits.grad, expected, atol=1e-6)
    assert distinctive_word_loss(logits.detach(), targets.bool()).item() == pytest.approx(loss.item(), rel=1e-6)


def test_distinctive_word_loss_positive_weight_does_not_depend_on_the_vocabulary_size() -> None:
    """Padding the vocabulary with extra negatives leaves the positives' gradient unchanged (a plain (B, V) mean
    would divide it by V), and leaves the loss unchanged when the extra negatives score like the others."""
    ln3 = math.log(3.0)
    logits = torch.tensor([[0.0, ln3, ln3], [-ln3, ln3, ln3]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    base_logits = logits.clone().requires_grad_(True)
    base = distinctive_word_loss(base_logits, targets)
    base.backward()
    for extra in (1, 10, 1000):
        padded_logits = torch.cat([logits, torch.full((2, extra), ln3)], dim=1).requires_grad_(True)
        padded = distinctive_word_loss(padded_logits, torch.cat([targets, torch.zeros(2, extra)], dim=1))
        assert padded.item() == pytest.approx(base.item(), rel=1e-6)
        assert padded.item() == pytest.approx(1.5 * math.log(2.0) + 2 * math.log(2.0), rel=1e-6)
        padded.backward()
        assert torch.allclose(padded_logits.grad[:, 0], base_logits.grad[:, 0], rtol=1e-6, atol=0.0)
        assert torch.allclose(padded_logits.grad[:, 0], torch.tensor([-0.25, -0.375]), rtol=1e-6, atol=0.0)


def test_distinctive_word_loss_without_positives_is_the_negatives_mean() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)]])
    assert distinctive_word_loss(logits, torch.zeros(1, 2)).item() == pytest.approx(1.5 * math.log(2.0), rel=1e-6)


def test_distinctive_word_loss_refuses_targets_of_another_vocabulary() -> None:
    with pytest.raises(ValueError, match="vocabulary size must be the LM head's output width"):
        distinctive_word_loss(torch.zeros(2, 5), torch.zeros(2, 4))
