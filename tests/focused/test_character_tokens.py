"""Character tokens: box pooling on a hand-made grid, temporal token merge, the encoder's shapes and masks."""

from __future__ import annotations

import torch

from moviead.focused.character_tokens import CharacterTokenEncoder, box_pool, merge_adjacent_tokens


def _grid() -> torch.Tensor:
    """(1, 1, 2, 2, 1): cells f00=1, f01=2, f10=3, f11=4 (row i, column j)."""
    return torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2, 1)


def test_box_pooling_weights_cells_by_shared_area() -> None:
    boxes = torch.tensor([[
        [0.0, 0.0, 0.5, 1.0],  # left column: (1 + 3) / 2
        [0.0, 0.0, 0.75, 0.5],  # top row, f00 whole (area .25) and half of f01 (.125): (2·1 + 2) / 3
        [0.0, 0.0, 1.0, 1.0],  # everything: 2.5
        [0.6, 0.7, 0.6, 0.9],  # zero width: the column it lies on (j = 1), rows by area: f11 = 4
        [0.1, 0.1, 0.2, 0.2],  # inside one cell: f00
    ]])
    pooled = box_pool(_grid(), boxes)  # (1, 5, 1, 1)
    torch.testing.assert_close(pooled.flatten(), torch.tensor([2.0, 4.0 / 3.0, 2.5, 4.0, 1.0]))


def test_box_pooling_keeps_every_frame() -> None:
    patches = torch.stack([_grid()[0, 0], 10 * _grid()[0, 0]])[None]  # (1, 2, 2, 2, 1)
    pooled = box_pool(patches, torch.tensor([[[0.5, 0.5, 1.0, 1.0]]]))
    torch.testing.assert_close(pooled.flatten(), torch.tensor([4.0, 40.0]))


def test_merging_identical_adjacent_tokens_keeps_their_mean() -> None:
    a, b, c = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([-1.0, 0.2])
    tokens = torch.stack([a, a, b, c])[None]  # (1, 4, 2)
    merged, mask = merge_adjacent_tokens(tokens, torch.ones(1, 4, dtype=torch.bool), keep=3)
    torch.testing.assert_close(merged[0], torch.stack([a, b, c]))
    assert mask.tolist() == [[True, True, True]]


def test_merge_unions_chains_of_similar_pairs_and_averages_them() -> None:
    tokens = torch.tensor([[[1.0, 0.0], [0.9, 0.1], [1.0, 0.05], [0.0, 1.0], [0.1, 1.0]]])
    merged, mask = merge_adjacent_tokens(tokens, torch.ones(1, 5, dtype=torch.bool), keep=2)  # r = 3 merges
    torch.testing.assert_close(merged[0], torch.tensor([[2.9 / 3, 0.15 / 3], [0.05, 1.0]]))
    assert mask.tolist() == [[True, True]]


def test_token_count_after_merging_follows_the_valid_frames() -> None:
    tokens = torch.randn(3, 6, 4)
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3, [True] + [False] * 5])
    merged, out = merge_adjacent_tokens(tokens, mask, keep=4)
    assert merged.shape == (3, 4, 4)
    assert out.sum(1).tolist() == [4, 3, 1]  # min(valid, keep)
    torch.testing.assert_close(merged[1, :3], tokens[1, :3])  # nothing to merge: the tokens themselves
    torch.testing.assert_close(merged[2, 0], tokens[2, 0])
    assert merged[1, 3].abs().sum() == 0
    short, short_mask = merge_adjacent_tokens(tokens[:, :2], mask[:, :2], keep=4)  # fewer frames than keep
    assert short.shape == (3, 4, 4) and short_mask.sum(1).tolist() == [2, 2, 1]


def test_encoder_gives_k_tokens_per_valid_region() -> None:
    torch.manual_seed(0)
    encoder = CharacterTokenEncoder(feature_dim=5, embed_dim=7, tokens_per_region=2)
    patches = torch.randn(2, 4, 3, 3, 5)
    frame_mask = torch.tensor([[True] * 4, [True, False, False, False]])
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.5], [0.2, 0.2, 1.0, 1.0]], [[0.0, 0.0, 1.0, 1.0], [0, 0, 0, 0]]])
    tokens, mask = encoder(patches, frame_mask, boxes, torch.tensor([[True, True], [True, False]]))
    assert tokens.shape == (2, 2, 2, 7)
    assert mask.tolist() == [[[True, True], [True, True]], [[True, False], [False, False]]]
    tokens.sum().backward()
    assert encoder.mlp[0].weight.grad is not None and encoder.mlp[0].weight.grad.abs().sum() > 0
