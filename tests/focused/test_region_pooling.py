"""FocusedAD region pooling per frame (static or per-frame boxes), the character-token order (pool, MLP, merge), the
MLP visual connector and its ``linear`` ablation, and the A2/C2 premise: two regions of one clip with different boxes
get different character tokens."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from moviead.config import ConfigError
from moviead.focused.captioner import FocusedCaptionBatch, visual_connector
from moviead.focused.character_tokens import CharacterTokenEncoder, box_pool, frame_boxes, merge_adjacent_tokens
from moviead.recipes import build_recipe
from tests.focused._focused_setup import focused_cfg


def _grid(frames: int = 2) -> torch.Tensor:
    """(1, frames, 2, 4, 2): cell (i, j) holds [10 i + j, -(10 i + j)] on every frame (rows i, columns j)."""
    values = torch.tensor([[0.0, 1.0, 2.0, 3.0], [10.0, 11.0, 12.0, 13.0]])
    cell = torch.stack([values, -values], dim=-1)  # (2, 4, 2)
    return cell.expand(frames, -1, -1, -1)[None].clone()


def test_per_frame_boxes_pool_their_own_cells_on_each_frame() -> None:
    boxes = torch.tensor([[[[0.0, 0.0, 0.5, 1.0],  # frame 0: columns 0-1, both rows: (0 + 1 + 10 + 11) / 4
                            [0.5, 0.5, 1.0, 1.0]]]])  # frame 1: row 1, columns 2-3: (12 + 13) / 2
    pooled = box_pool(_grid(), boxes)  # (1, 1, 2, 2)
    torch.testing.assert_close(pooled[0, 0], torch.tensor([[5.5, -5.5], [12.5, -12.5]]))


def test_partly_covered_cells_count_by_the_area_they_share_with_the_box() -> None:
    # x in [0.125, 0.5]: column 0 ([0, .25]) shares .125, column 1 ([.25, .5]) shares .25; y in [0, .5]: row 0 only.
    boxes = torch.tensor([[[0.125, 0.0, 0.5, 0.5]]])
    pooled = box_pool(_grid(1), boxes)
    torch.testing.assert_close(pooled[0, 0, 0], torch.tensor([2.0 / 3.0, -2.0 / 3.0]))  # (0 · .125 + 1 · .25) / .375
    # a box across the row boundary: y in [.25, .75] takes half of each row; x in [.75, 1]: column 3
    pooled = box_pool(_grid(1), torch.tensor([[[0.75, 0.25, 1.0, 0.75]]]))
    torch.testing.assert_close(pooled[0, 0, 0], torch.tensor([8.0, -8.0]))  # (3 + 13) / 2


def test_a_static_box_is_used_on_every_frame() -> None:
    patches = torch.cat([_grid(1), 3 * _grid(1)], dim=1)  # frame 1 is three times frame 0
    static = torch.tensor([[[0.0, 0.0, 0.5, 1.0]]])  # (B, C, 4)
    pooled = box_pool(patches, static)
    torch.testing.assert_close(pooled[0, 0], torch.tensor([[5.5, -5.5], [16.5, -16.5]]))
    torch.testing.assert_close(pooled, box_pool(patches, static[:, :, None].expand(-1, -1, 2, -1)))
    assert frame_boxes(static, 5).shape == (1, 1, 5, 4)
    with pytest.raises(ValueError, match="per-frame boxes for 3 frames but the patches have 2"):
        box_pool(patches, torch.zeros(1, 1, 3, 4))
    with pytest.raises(ValueError, match=r"\(B, C, 4\) per clip or \(B, C, T, 4\) per frame"):
        frame_boxes(torch.zeros(1, 4), 2)


def test_two_frames_with_different_boxes_give_different_tokens() -> None:
    torch.manual_seed(0)
    encoder = CharacterTokenEncoder(feature_dim=2, embed_dim=6, tokens_per_region=2)
    boxes = torch.tensor([[[[0.0, 0.0, 0.5, 1.0], [0.5, 0.5, 1.0, 1.0]]]])  # (1, 1, T=2, 4)
    tokens, mask = encoder(_grid(), torch.ones(1, 2, dtype=torch.bool), boxes, torch.ones(1, 1, dtype=torch.bool))
    assert mask.tolist() == [[[True, True]]]
    assert not torch.allclose(tokens[0, 0, 0], tokens[0, 0, 1])
    # the frame-0 box on both frames: both frames give the frame-0 token
    same = boxes[:, :, :1].expand(-1, -1, 2, -1)
    still, _ = encoder(_grid(), torch.ones(1, 2, dtype=torch.bool), same, torch.ones(1, 1, dtype=torch.bool))
    torch.testing.assert_close(still[0, 0, 0], tokens[0, 0, 0])
    torch.testing.assert_close(still[0, 0, 1], tokens[0, 0, 0])


def test_the_encoder_pools_then_applies_the_mlp_then_merges() -> None:
    torch.manual_seed(0)
    encoder = CharacterTokenEncoder(feature_dim=3, embed_dim=5, tokens_per_region=2)
    patches, boxes = torch.randn(2, 4, 3, 3, 3), torch.rand(2, 2, 4, 4).sort(-1).values  # x1 <= y1 <= x2 <= y2
    frame_mask = torch.tensor([[True] * 4, [True, True, True, False]])
    tokens, mask = encoder(patches, frame_mask, boxes, torch.ones(2, 2, dtype=torch.bool))
    spatial = encoder.mlp(box_pool(patches, boxes))  # (B, C, T, E): one token per frame, then eq. 8's merge
    rows = frame_mask[:, None].expand(-1, 2, -1).reshape(4, 4)
    merged, merged_mask = merge_adjacent_tokens(spatial.flatten(0, 1), rows, keep=2)
    torch.testing.assert_close(tokens, merged.view(2, 2, 2, 5))
    assert mask.equal(merged_mask.view(2, 2, 2))
    # nothing to merge (K >= T): the MLP of each frame's pooled feature, in time order
    wide = CharacterTokenEncoder(feature_dim=3, embed_dim=5, tokens_per_region=4)
    wide.load_state_dict(encoder.state_dict())
    all_tokens, _ = wide(patches, torch.ones(2, 4, dtype=torch.bool), boxes, torch.ones(2, 2, dtype=torch.bool))
    torch.testing.assert_close(all_tokens, spatial)


def test_two_regions_of_one_clip_with_different_boxes_get_different_tokens() -> None:
    """The A2 vs C2 premise: with patch features each named region brings its own tokens."""
    torch.manual_seed(0)
    encoder = CharacterTokenEncoder(feature_dim=4, embed_dim=6, tokens_per_region=2)
    patches = torch.randn(1, 3, 4, 4, 4)
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0.0, 0.0, 0.5, 0.5]]])
    tokens, mask = encoder(patches, torch.ones(1, 3, dtype=torch.bool), boxes, torch.ones(1, 3, dtype=torch.bool))
    assert mask.all()
    assert (tokens[0, 0] - tokens[0, 1]).abs().max() > 1e-3  # different boxes, different tokens
    torch.testing.assert_close(tokens[0, 0], tokens[0, 2])  # the same box, the same tokens
    # frame mode (a 1x1 grid per frame, no patch features): every box covers the one cell, so the regions coincide
    frames = patches.mean((2, 3))[:, :, None, None, :]
    flat, _ = encoder(frames, torch.ones(1, 3, dtype=torch.bool), boxes, torch.ones(1, 3, dtype=torch.bool))
    torch.testing.assert_close(flat[0, 0], flat[0, 1])


def test_the_mlp_connector_is_linear_gelu_linear_with_the_configured_widths() -> None:
    mlp = visual_connector("mlp", 5, 7, hidden_dim=11)
    assert isinstance(mlp, nn.Sequential) and [type(m) for m in mlp] == [nn.Linear, nn.GELU, nn.Linear]
    assert (mlp[0].in_features, mlp[0].out_features, mlp[2].in_features, mlp[2].out_features) == (5, 11, 11, 7)
    assert mlp(torch.randn(2, 3, 5)).shape == (2, 3, 7)
    default = visual_connector("mlp", 5, 7)  # hidden width: the LM's (LLaVA-1.5)
    assert default[0].out_features == 7 and default[2].in_features == 7
    linear = visual_connector("linear", 5, 7)
    assert isinstance(linear, nn.Linear) and (linear.in_features, linear.out_features) == (5, 7)
    with pytest.raises(ValueError, match="connector must be one of"):
        visual_connector("conv", 5, 7)


def _spatial_patches(storyboard_root: Path, name: str) -> Path:
    """Random patch features (T, 2, 2, 3) per global id: the cells differ, so boxes pool different features."""
    path = storyboard_root / name
    rng = np.random.default_rng(0)
    with h5py.File(storyboard_root / "storyboard_clip_features.h5", "r") as frames, h5py.File(path, "w") as out:
        for key in frames:
            out.create_dataset(key, data=rng.standard_normal((len(frames[key]), 2, 2, 3)).astype(np.float32))
    return path


def test_the_recipe_builds_the_mlp_connector_and_region_tokens_from_patches(toy_root: Path, tmp_path: Path) -> None:
    patches = _spatial_patches(toy_root / "storyboard", "patches_region_test.h5")
    cfg = focused_cfg(toy_root, tmp_path, "captioning.focused.character_tokens=box",
                      f"captioning.focused.patch_features={patches.name}", "captioning.focused.connector_hidden_dim=24")
    captioner = build_recipe(cfg).captioner
    projector, embed = captioner.decoder.projector, captioner.decoder.embed_dim
    assert isinstance(projector, nn.Sequential) and [type(m) for m in projector] == [nn.Linear, nn.GELU, nn.Linear]
    assert (projector[0].in_features, projector[0].out_features, projector[2].out_features) == (768, 24, embed)
    with h5py.File(patches, "r") as store:
        clip = torch.from_numpy(store[min(store)][:4])[None]  # (1, 4, 2, 2, 3)
    batch = FocusedCaptionBatch(
        frames=torch.randn(1, 4, 768), frame_mask=torch.ones(1, 4, dtype=torch.bool),
        proposal_ad_ids=torch.zeros(1, 1, 1, dtype=torch.long), proposal_ad_mask=torch.zeros(1, 1, 1, dtype=torch.bool),
        proposal_sub_ids=torch.zeros(1, 1, 1, dtype=torch.long),
        proposal_sub_mask=torch.zeros(1, 1, 1, dtype=torch.bool), proposal_valid=torch.zeros(1, 1, dtype=torch.bool),
        target_ids=torch.zeros(1, 1, dtype=torch.long), target_mask=torch.ones(1, 1, dtype=torch.bool),
        instruction_ids=torch.zeros(1, 2, dtype=torch.long), instruction_mask=torch.ones(1, 2, dtype=torch.bool),
        instruction_region=torch.tensor([[0, 1]]),
        region_boxes=torch.tensor([[[0.0, 0.0, 0.5, 1.0], [0.5, 0.0, 1.0, 1.0]]]),
        region_valid=torch.ones(1, 2, dtype=torch.bool), patches=clip,
    )
    with torch.no_grad():
        tokens, mask = captioner.character_tokens(batch)
    assert tokens.shape[:2] == (1, 2) and mask.all()
    assert (tokens[0, 0] - tokens[0, 1]).abs().max() > 1e-4  # left and right halves: different tokens


def test_the_linear_connector_ablation_and_bad_values(toy_root: Path, tmp_path: Path) -> None:
    captioner = build_recipe(focused_cfg(toy_root, tmp_path, "captioning.focused.connector=linear")).captioner
    assert isinstance(captioner.decoder.projector, nn.Linear)
    assert captioner.decoder.projector.out_features == captioner.decoder.embed_dim
    with pytest.raises(ValueError, match="captioning.focused.connector must be one of"):
        build_recipe(focused_cfg(toy_root, tmp_path, "captioning.focused.connector=conv"))
    with pytest.raises(ConfigError, match="connector_hidden_dim"):
        focused_cfg(toy_root, tmp_path, "captioning.focused.connector_hidden_dim=0")


def test_weights_with_a_linear_connector_load_into_an_mlp_config(toy_root: Path, tmp_path: Path) -> None:
    """Checkpoints written before the connector option (a Linear projector) still load, as a Linear."""
    old = build_recipe(focused_cfg(toy_root, tmp_path, "captioning.focused.connector=linear")).captioner
    new = build_recipe(focused_cfg(toy_root, tmp_path)).captioner
    assert isinstance(new.decoder.projector, nn.Sequential)
    with pytest.warns(UserWarning, match="Linear visual connector"):
        missing, unexpected = new.load_state_dict(old.state_dict(), strict=False)
    assert not missing and not unexpected and isinstance(new.decoder.projector, nn.Linear)
    torch.testing.assert_close(new.decoder.projector.weight, old.decoder.projector.weight)
