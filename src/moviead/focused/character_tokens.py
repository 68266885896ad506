"""Character tokens (FocusedAD §3.3): region pooling of patch features per frame, an MLP, then the temporal token
merge (eq. 8).

- **Region pooling** (our stand-in for the paper's SAM2 mask pooling). Storyboard-v2 records carry **no masks**
  (``detect characters`` holds one box ``[x1, y1, x2, y2, conf, dist]`` per detection, see
  :mod:`moviead.data.formats.storyboard`), so regions are boxes and we pool by box. A box is given either once per
  clip, (B, C, 4), and then used on every sampled frame (broadcast; this is what the Storyboard-v2 records give),
  or per frame, (B, C, T, 4), when a source tracks the character across the clip (the paper's propagated
  masklets; a record's optional ``frame boxes``, which the toy data writes, served at the sampled frames by
  :class:`~moviead.focused.data.FocusedCollator`). Pooling is **area-weighted, RoIAlign-like**: cell (i, j) of an H'×W' grid covers
  [j/W', (j+1)/W'] × [i/H', (i+1)/H'] of the frame; it is weighted by the area it shares with the box (boxes as
  fractions of the frame), and the weighted mean of the cells is the region's feature on that frame. So a cell
  half inside the box counts half, a box inside one cell takes that cell, and a box of zero width or height takes
  the cell(s) it lies on. (This is exact average pooling of the piecewise-constant feature map over the box, i.e.
  RoIAlign with infinitely many sampling points and nearest-cell rather than bilinear interpolation.)
- **MLP** (Linear, GELU, Linear): each pooled per-frame region feature becomes a spatial token in the LM's
  embedding width ("we employ a MLP layer to adapt and produce the character-level token for each character
  region").
- **Temporal token merge** (eq. 8, VideoRefer's TTM) on those tokens: the cosine similarity of each pair of
  adjacent tokens; the r most similar pairs are merged, the chains they form become unions, each union is
  averaged. r = n − K for n valid frames, so K tokens per region remain (fewer when the clip has fewer frames).
  The paper's "then processed through MLP layers" after the merge is read as the same MLP (the merge averages
  MLP outputs): one MLP, as SPEC §5.4 has it.

With ``character_tokens=frame`` (data without patch features) the "grid" is each frame's feature as a 1x1 cell:
every box covers that one cell, so every region of a clip gets the same tokens (only the names in the instruction
differ); region pooling needs patch features (``character_tokens=box``).
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


def frame_boxes(boxes: torch.Tensor, frames: int) -> torch.Tensor:
    """(B, C, T, 4) boxes per frame: per-frame boxes (B, C, T, 4) as they are, a static box (B, C, 4) repeated on
    each of the ``frames`` frames.

    Raises:
        ValueError: another shape, or per-frame boxes for a different number of frames.
    """
    if boxes.dim() == 3 and boxes.shape[-1] == 4:
        return boxes[:, :, None, :].expand(-1, -1, frames, -1)
    if boxes.dim() == 4 and boxes.shape[-1] == 4:
        if boxes.shape[2] != frames:
            raise ValueError(f"per-frame boxes for {boxes.shape[2]} frames but the patches have {frames}")
        return boxes
    raise ValueError(f"boxes must be (B, C, 4) per clip or (B, C, T, 4) per frame, got {tuple(boxes.shape)}")


def box_pool(patches: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Area-weighted mean of the patch features inside each region's box, on every frame.

    Args:
        patches: (B, T, H', W', D) patch features.
        boxes: [x1, y1, x2, y2] as fractions of the frame's width and height (clipped to [0, 1]): (B, C, 4), one
            box per clip used on every frame, or (B, C, T, 4), one per frame.

    Returns:
        (B, C, T, D) pooled features.
    """
    _, frames, height, width, _ = patches.shape
    boxes = frame_boxes(boxes.to(patches.dtype).clamp(0, 1), frames)
    wx = _axis_weights(boxes[..., 0], boxes[..., 2], width)  # (B, C, T, W')
    wy = _axis_weights(boxes[..., 1], boxes[..., 3], height)  # (B, C, T, H')
    weights = wy[..., :, None] * wx[..., None, :]  # (B, C, T, H', W')
    weights = weights / weights.sum((-2, -1), keepdim=True).clamp(min=_DEGENERATE)
    return torch.einsum("bcthw,bthwd->bctd", weights, patches)


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
    """Patch features + character boxes → K tokens per character in the LM's embedding space: region pooling per
    frame (:func:`box_pool`), the MLP on each frame's region feature, then the temporal token merge
    (:func:`merge_adjacent_tokens`, on the MLP's outputs as eq. 8 has it, in float32).

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
            patches: (B, T, H', W', D); frame_mask: (B, T) bool; boxes: fractions of the frame, (B, C, 4) per clip
                or (B, C, T, 4) per frame; region_valid: (B, C).

        Returns:
            tokens (B, C, K, E) and mask (B, C, K) (False for padded regions and merged-away slots).
        """
        batch, regions = boxes.shape[:2]
        pooled = box_pool(patches.float(), boxes)  # (B, C, T, D)
        spatial = self.mlp(pooled.to(self.mlp[0].weight.dtype))  # (B, C, T, E): one token per frame and region
        rows_mask = frame_mask.bool()[:, None, :].expand(batch, regions, -1).reshape(batch * regions, -1)
        merged, mask = merge_adjacent_tokens(spatial.flatten(0, 1).float(), rows_mask, self.tokens_per_region)
        tokens = merged.to(spatial.dtype).view(batch, regions, self.tokens_per_region, -1)
        return tokens, mask.view(batch, regions, -1) & region_valid.bool()[..., None]
