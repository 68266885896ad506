"""Character tokens (FocusedAD §3.3): box pooling of patch features, temporal token merge, then an MLP.

- **Box pooling** (our stand-in for the paper's SAM2 mask pooling: Storyboard-v2 gives one box per character
  for the clip, which we use on every sampled frame). Cell (i, j) of an H'×W' grid covers
  [j/W', (j+1)/W'] × [i/H', (i+1)/H'] of the frame; it is weighted by the area it shares with the box
  (boxes as fractions of the frame), and the weighted mean of the cells is the region's feature. A box of zero
  width or height takes the cell(s) it lies on.
- **Temporal token merge** (VideoRefer's TTM): the cosine similarity of each pair of adjacent tokens; the r most
  similar pairs are merged, the chains they form become unions, each union is averaged. r = n − K for n valid
  frames, so K tokens per region remain (fewer when the clip has fewer frames). The similarity is measured on
  the pooled features, so which frames merge does not depend on training.
- **MLP** (Linear, GELU, Linear) maps each merged token to the LM's embedding width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_DEGENERATE = 1e-9


def _axis_weights(low: torch.Tensor, high: torch.Tensor, cells: int) -> torch.Tensor:
    """(..., cells) overlap of [low, high] (both (...)) with each cell [j/cells, (j+1)/cells]."""
    edges = torch.arange(cells + 1, dtype=low.dtype, device=low.device) / cells
    overlap = (torch.minimum(high[..., None], edges[1:]) - torch.maximum(low[..., None], edges[:-1])).clamp(min=0)
    flat = (high - low) <= _DEGENERATE
    if bool(flat.any()):  # a zero-width box: the cell it lies on
        index = (low * cells).floor().long().clamp(0, cells - 1)
        onehot = F.one_hot(index, cells).to(overlap.dtype)
        overlap = torch.where(flat[..., None], onehot, overlap)
    return overlap


def box_pool(patches: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Area-weighted mean of the patch features inside each box, on every frame.

    Args:
        patches: (B, T, H', W', D) patch features.
        boxes: (B, C, 4) boxes [x1, y1, x2, y2] as fractions of the frame's width and height (in [0, 1]).

    Returns:
        (B, C, T, D) pooled features.
    """
    _, _, height, width, _ = patches.shape
    boxes = boxes.to(patches.dtype).clamp(0, 1)
    wx = _axis_weights(boxes[..., 0], boxes[..., 2], width)  # (B, C, W')
    wy = _axis_weights(boxes[..., 1], boxes[..., 3], height)  # (B, C, H')
    weights = wy[..., :, None] * wx[..., None, :]  # (B, C, H', W')
    weights = weights / weights.sum((-2, -1), keepdim=True).clamp(min=_DEGENERATE)
    return torch.einsum("bchw,bthwd->bctd", weights, patches)


def merge_adjacent_tokens(tokens: torch.Tensor, mask: torch.Tensor, keep: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Temporal token merge of N sequences down to ``keep`` tokens each.

    Args:
        tokens: (N, T, D); mask: (N, T) bool, True on valid tokens (the valid ones lead each row).
        keep: K, the tokens left per row when it has more than K valid ones.

    Returns:
        (N, K, D) merged tokens in time order (zeros where masked) and their (N, K) mask.
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    n_rows, length, dim = tokens.shape
    mask = mask.bool()
    valid = mask.sum(1)  # (N,)
    merges = (valid - keep).clamp(min=0)  # r per row
    if length > 1:
        similarity = F.cosine_similarity(tokens[:, :-1], tokens[:, 1:], dim=-1)  # (N, T-1)
        similarity = similarity.masked_fill(~mask[:, 1:], float("-inf"))
        order = torch.argsort(-similarity, dim=1, stable=True)
        rank = torch.argsort(order, dim=1)
        merged_pair = rank < merges[:, None]  # (N, T-1): pair (t, t+1) is merged
        starts = torch.cat([torch.zeros(n_rows, 1, dtype=torch.long, device=tokens.device),
                            (~merged_pair).long()], dim=1)
        group = starts.cumsum(1)  # (N, T): union index of each token
    else:
        group = torch.zeros(n_rows, length, dtype=torch.long, device=tokens.device)
    weights = mask.to(tokens.dtype)
    sums = torch.zeros_like(tokens).scatter_add(1, group[..., None].expand(-1, -1, dim), tokens * weights[..., None])
    counts = torch.zeros(n_rows, length, dtype=tokens.dtype, device=tokens.device).scatter_add(1, group, weights)
    merged = sums / counts.clamp(min=1)[..., None]
    out_mask = counts > 0
    if length < keep:
        merged = F.pad(merged, (0, 0, 0, keep - length))
        out_mask = F.pad(out_mask, (0, keep - length))
    return merged[:, :keep], out_mask[:, :keep]


class CharacterTokenEncoder(nn.Module):
    """Patch features + character boxes → K tokens per character in the LM's embedding space.

    Args:
        feature_dim: D of the patch features; embed_dim: E of the LM; tokens_per_region: K.
    """

    def __init__(self, feature_dim: int, embed_dim: int, tokens_per_region: int = 4) -> None:
        super().__init__()
        if tokens_per_region < 1:
            raise ValueError(f"tokens_per_region must be >= 1, got {tokens_per_region}")
        self.tokens_per_region = tokens_per_region
        self.mlp = nn.Sequential(nn.Linear(feature_dim, embed_dim), nn.GELU(), nn.Linear(embed_dim, embed_dim))

    def forward(
        self, patches: torch.Tensor, frame_mask: torch.Tensor, boxes: torch.Tensor, region_valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Character tokens.

        Args:
            patches: (B, T, H', W', D); frame_mask: (B, T) bool; boxes: (B, C, 4) fractions; region_valid: (B, C).

        Returns:
            tokens (B, C, K, E) and mask (B, C, K) (False for padded regions and merged-away slots).
        """
        batch, regions = boxes.shape[:2]
        pooled = box_pool(patches.float(), boxes)  # (B, C, T, D)
        rows_mask = frame_mask.bool()[:, None, :].expand(batch, regions, -1).reshape(batch * regions, -1)
        merged, mask = merge_adjacent_tokens(pooled.flatten(0, 1), rows_mask, self.tokens_per_region)
        tokens = self.mlp(merged.to(self.mlp[0].weight.dtype)).view(batch, regions, self.tokens_per_region, -1)
        return tokens, mask.view(batch, regions, -1) & region_valid.bool()[..., None]
