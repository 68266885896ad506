"""The bag-of-words text tower (``bow:<folder>``, :mod:`moviead.data.bow_text_tower`) and the toy data's tower."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from moviead.data.bow_text_tower import CONFIG_FILE, BowTextTower, fit_bow_text_tower, tower_words
from moviead.data.sentence_features import SentenceFeatureBank, parse_encoder_spec
from moviead.recipes.stored_paths import MissingStoredInputError, _resolve_encoder


def test_the_ridge_fit_matches_the_hand_computed_solution() -> None:
    # one word; targets (1, 0) and (3, 0) centre to (-1, 0), (1, 0); counts 1 and 2:
    # W = (A'A + ridge)^-1 A'Y = (1 * -1 + 2 * 1) / (1 + 4 + 1) = 1/6 on the first axis, 0 on the second
    tower = fit_bow_text_tower(["x", "x x"], np.array([[1.0, 0.0], [3.0, 0.0]]), ridge=1.0)
    assert tower.vocabulary == ["x"] and tower.fitted_on == 2
    torch.testing.assert_close(tower.weight, torch.tensor([[1 / 6, 0.0]]))
    torch.testing.assert_close(tower.encode(["X!", "y"]), torch.tensor([[1.0, 0.0], [0.0, 0.0]]))


def test_words_land_near_the_frames_they_come_with() -> None:
    rng = np.random.default_rng(0)
    kitchen, garden, common = (rng.standard_normal(16) for _ in range(3))
    texts, targets = [], []
    for i in range(40):
        place, vector = ("kitchen", kitchen) if i % 2 else ("garden", garden)
        texts.append(f"Ann {'opens' if i % 3 else 'holds'} the cup in the {place}.")
        targets.append(common + vector + 0.3 * rng.standard_normal(16))
    tower = fit_bow_text_tower(texts, np.stack(targets))
    query = tower.encode(["the kitchen", "the garden"])  # (2, 16)
    frames = torch.nn.functional.normalize(torch.tensor(np.stack([common + kitchen, common + garden])).float(), dim=-1)
    sims = query @ frames.T  # (text, frames)
    assert sims[0, 0] > sims[0, 1] + 0.3 and sims[1, 1] > sims[1, 0] + 0.3
    torch.testing.assert_close(tower.encode(["cup the kitchen"]), tower.encode(["kitchen cup the"]))
    assert tower_words("In the Kitchen, Ann-Marie opens it.") == ["in", "the", "kitchen", "ann", "marie", "opens", "it"]


def test_saved_towers_load_unchanged_and_bad_folders_say_what_is_wrong(tmp_path: Path) -> None:
    tower = fit_bow_text_tower(["a b", "b c", "c a"], np.eye(3))
    tower.save(tmp_path / "tower")
    loaded = BowTextTower.load(tmp_path / "tower")
    assert loaded.vocabulary == tower.vocabulary and torch.equal(loaded.weight, tower.weight)
    with pytest.raises(FileNotFoundError, match=r"lacks bow_text_tower.json, bow_text_tower.safetensors: .*make-toy-data"):
        BowTextTower.load(tmp_path / "nowhere")
    config = json.loads((tmp_path / "tower" / CONFIG_FILE).read_text())
    (tmp_path / "tower" / CONFIG_FILE).write_text(json.dumps({**config, "vocabulary": ["a", "b"]}))
    with pytest.raises(ValueError, match=r"does not match the vocabulary of 2 words"):
        BowTextTower.load(tmp_path / "tower")
    with pytest.raises(ValueError, match="ridge must be > 0"):
        fit_bow_text_tower(["a"], np.ones((1, 2)), ridge=0.0)


def test_the_sentence_bank_reads_a_tower_and_checkpoints_find_a_moved_one(tmp_path: Path) -> None:
    tower = fit_bow_text_tower(["a b", "b c", "c a"], np.eye(3)).save(tmp_path / "tower")
    assert parse_encoder_spec(f"bow:{tower}") == ("bow", str(tower), None)
    bank = SentenceFeatureBank(f"bow:{tower}")
    texts = ["a b", "c", ""]
    expected = BowTextTower.load(tower).encode(texts)
    expected[2] = 0.0  # empty texts are never encoded
    torch.testing.assert_close(bank(texts), expected)
    assert bank.dim == 3
    assert _resolve_encoder(f"bow:{tower}", tmp_path / "x.ckpt", None, None, False) == f"bow:{tower}"
    with pytest.raises(MissingStoredInputError, match=r"captioning.dsm.sentence_encoder=bow:PATH"):
        _resolve_encoder(f"bow:{tmp_path / 'gone'}", tmp_path / "x.ckpt", None, None, False)


def test_the_toy_tower_is_fitted_on_the_training_movies_only(toy_root: Path) -> None:
    manifest = json.loads((toy_root / "toy_manifest.json").read_text())
    folder = toy_root / manifest["encoders"]["toy-text-tower"]
    tower = BowTextTower.load(folder)
    assert tower.dim == manifest["feature_dim"]
    split = json.loads((toy_root / "mad" / "mad_split.json").read_text())
    movies = [line.split(",")[0] for line in (toy_root / "mad" / "mad-v2-ad-named.csv").read_text().splitlines()[1:]]
    assert tower.fitted_on == sum(movie in split["TRAIN"] for movie in movies) < len(movies)


def test_excluded_words_are_left_out_of_the_fit_and_add_nothing() -> None:
    # "ann" always comes with the kitchen: fitted, it would carry the kitchen; excluded, it is unknown
    texts, targets = ["Ann in the kitchen", "Bo in the garden", "the kitchen", "the garden"], np.eye(4)[[0, 1, 0, 1]]
    tower = fit_bow_text_tower(texts, targets, exclude=["ANN", "bo"])
    assert tower.vocabulary == ["garden", "in", "kitchen", "the"]
    torch.testing.assert_close(tower.encode(["Ann"]), torch.zeros(1, 4))
    torch.testing.assert_close(tower.encode(["Ann the kitchen"]), tower.encode(["the kitchen"]))
    torch.testing.assert_close(tower.weight, fit_bow_text_tower(["in the kitchen", "in the garden", "the kitchen",
                                                                 "the garden"], targets).weight)


def test_the_toy_tower_reads_no_character_name(toy_root: Path) -> None:
    manifest = json.loads((toy_root / "toy_manifest.json").read_text())
    tower = BowTextTower.load(toy_root / manifest["encoders"]["toy-text-tower"])
    names = {name.lower() for name in manifest["vocabulary"]["names"]}
    assert names and not names & set(tower.vocabulary)
    assert {"kitchen", "opens"} <= set(tower.vocabulary)
