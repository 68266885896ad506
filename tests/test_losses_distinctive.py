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
    """z = 0, y = 1: ln 2; z = ln 3, y = 0: ln(1 + 3) = 2 ln 2; z = -ln 3, y = 1: ln(1 + 3) = 2 ln 2;
    z = 0, y = 0: ln 2. Mean over the (2, 2) grid: 6 ln 2 / 4 = 1.5 ln 2."""
    logits = torch.tensor([[0.0, math.log(3.0)], [-math.log(3.0), 0.0]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    loss = distinctive_word_loss(logits, targets)
    assert loss.item() == pytest.approx(1.5 * math.log(2.0), rel=1e-6)
    loss.backward()  # d/dz = (σ(z) - y) / 4
    expected = torch.tensor([[0.5 - 1.0, 0.75], [0.25 - 1.0, 0.5]]) / 4
    assert torch.allclose(logits.grad, expected, atol=1e-6)
    assert distinctive_word_loss(logits.detach(), targets.bool()).item() == pytest.approx(loss.item())


def test_distinctive_word_loss_refuses_targets_of_another_vocabulary() -> None:
    with pytest.raises(ValueError, match="vocabulary size must be the LM head's output width"):
        distinctive_word_loss(torch.zeros(2, 5), torch.zeros(2, 4))
