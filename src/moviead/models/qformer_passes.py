"""The PME's own forward through the layers of transformers' ``Blip2QFormerModel``: same weights, less work.

:class:`~moviead.models.qformer.PretrainedMovieEncoder` keeps transformers' Q-Former as the holder of its weights
(so checkpoints keep their names and the LAVIS converter is a renaming) but runs the layers here, with the
arithmetic of ``Blip2QFormerModel.forward`` (pre-embedding LayerNorm + dropout; per layer: self-attention, output
projection + residual LayerNorm; cross-attention to the frames at the query positions of every
``cross_attention_frequency``-th layer; separate feed-forwards for query and text positions) and without the work
that the outputs do not depend on:

- **No padding in the dense layers.** Text positions are packed: the projections and feed-forwards run on the
  real tokens only (M rows instead of B x L); only the attention itself is computed on the padded layout.
- **Cached query keys/values** (what LAVIS's VTG does with ``past_key_values``): in VTG's causal mask the queries
  see only queries and frames, so their states are those of the query-only pass. A run with ``prefix`` computes
  the text positions alone, attending to the keys/values the query pass recorded (:class:`QueryCache`), instead
  of a second joint pass that recomputes every query position and its cross-attention.
- **Frames projected once** (:class:`FrameKeys`): the cross-attention keys/values of a step's videos are computed
  on their real frames once, by the query pass, and VTM's 3B pairs select them instead of projecting
  ``[videos; videos; negatives]`` again.
- **Only the outputs used, at the last layer** (``last``): VTM reads the query outputs, VTC the ``[CLS]`` output.

Padded text positions come back as zeros. Shapes: B batch, Nq queries, L text positions (M of them real),
N = Nq + L, H hidden, h heads, d = H / h, T frames of width Dv.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Last = Literal["all", "queries", "first"]


@dataclass
class FrameKeys:
    """Cross-attention keys and values of V videos, per cross-attention layer, computed once and reused.

    Attributes:
        keys, values: layer number -> (V, h, T, d), zeros at padded frames.
        mask: (V, T) bool, True = real frame, or None (every frame real).
    """

    keys: dict[int, torch.Tensor]
    values: dict[int, torch.Tensor]
    mask: torch.Tensor | None

    def select(self, rows: torch.Tensor) -> FrameKeys:
        """The videos ``rows`` ((V',) long, repeats allowed), sharing the computation (and its gradient)."""
        return FrameKeys({n: k[rows] for n, k in self.keys.items()}, {n: v[rows] for n, v in self.values.items()},
                         None if self.mask is None else self.mask[rows])


def frame_keys(qformer: nn.Module, frames: torch.Tensor, frame_mask: torch.Tensor | None) -> FrameKeys:
    """The cross-attention keys/values of every cross layer on the real frames only.

    Args:
        qformer: a transformers ``Blip2QFormerModel``.
        frames: (V, T, Dv) normalised, temporally encoded frames; frame_mask: (V, T) bool or None.
    """
    videos, length, _ = frames.shape
    index = None if frame_mask is None else frame_mask.reshape(-1).nonzero().squeeze(1)
    flat = frames.reshape(videos * length, -1)
    real = flat if index is None else flat[index]  # (Mf, Dv)

    def project(linear: nn.Module, heads: int) -> torch.Tensor:
        out = linear(real)
        if index is not None:
            out = out.new_zeros(videos * length, out.shape[-1]).index_copy(0, index, out)
        return _heads(out.view(videos, length, -1), heads)

    keys, values = {}, {}
    for number, layer in enumerate(qformer.encoder.layer):
        if layer.has_cross_attention:
            cross = layer.crossattention.attention
            keys[number] = project(cross.key, cross.num_attention_heads)
            values[number] = project(cross.value, cross.num_attention_heads)
    return FrameKeys(keys, values, None if frame_mask is None else frame_mask.bool())


@dataclass
class QueryCache:
    """What a query-only pass leaves for later passes over the same videos.

    Attributes:
        keys, values: self-attention keys and values of the query positions, per layer: each (B, h, Nq, d).
        frames: the videos' cross-attention keys/values (:class:`FrameKeys`).
    """

    keys: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)
    frames: FrameKeys | None = None


@dataclass
class PackedText:
    """The real positions of a right- or anywhere-padded (B, L) text, and how to put them back.

    Attributes:
        index: (M,) long, the flat position b * L + l of each real token.
        batch, length: B and L.
    """

    index: torch.Tensor
    batch: int
    length: int

    @classmethod
    def from_mask(cls, text_mask: torch.Tensor) -> PackedText:
        """From a (B, L) mask, nonzero = real token."""
        return cls(text_mask.reshape(-1).nonzero().squeeze(1), text_mask.shape[0], text_mask.shape[1])

    def pack(self, padded: torch.Tensor) -> torch.Tensor:
        """(B, L, X) -> (M, X)."""
        return padded.reshape(self.batch * self.length, -1)[self.index]

    def unpack(self, packed: torch.Tensor) -> torch.Tensor:
        """(M, X) -> (B, L, X), zeros at the padding."""
        padded = packed.new_zeros(self.batch * self.length, packed.shape[-1])
        return padded.index_copy(0, self.index, packed).view(self.batch, self.length, -1)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, H) -> (B, h, N, d)."""
    batch, length, hidden = x.shape
    return x.view(batch, length, heads, hidden // heads).transpose(1, 2)


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None, dropout: float, attn: str
) -> torch.Tensor:
    """Scaled dot-product attention with a boolean mask.

    Args:
        q: (B, h, R, d) for R query rows; k, v: (B, h, M, d).
        allowed: broadcastable to (B, h, R, M), True = may attend; None = everything. Every row needs an allowed
            key (:func:`never_empty`), or SDPA gives NaN.
        dropout: dropout probability on the attention weights (0 in eval mode).
        attn: ``"sdpa"`` (``F.scaled_dot_product_attention``) or ``"eager"`` (explicit softmax).

    Returns:
        (B, R, h*d) the attended values, heads concatenated.
    """
    if attn == "sdpa":
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout)
    else:
        scores = torch.matmul(q, k.transpose(-1, -2)) * q.shape[-1] ** -0.5
        if allowed is not None:
            scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        weights = F.dropout(scores.softmax(dim=-1), p=dropout, training=dropout > 0)
        out = torch.matmul(weights, v)
    batch, heads, rows, dim = out.shape
    return out.transpose(1, 2).reshape(batch, rows, heads * dim)


def _fused(attention: nn.Module, names: tuple[str, ...], x: torch.Tensor) -> torch.Tensor:
    """The projections ``names`` of ``attention`` (its ``query``/``key``/``value`` linears) of the same input in one
    matrix product: (.., H) -> (.., len(names) * H'), the outputs side by side in the order of ``names``. One
    product (and one input gradient in the backward) instead of one per projection; the same values."""
    linears = [getattr(attention, name) for name in names]
    weight = torch.cat([linear.weight for linear in linears])
    bias = torch.cat([linear.bias for linear in linears])
    return F.linear(x, weight, bias)


def never_empty(allowed: torch.Tensor | None) -> torch.Tensor | None:
    """``allowed`` (.., K) bool with each row that allows no key opened to every key: that row then takes a uniform
    average, as an additive ``finfo.min`` mask gives, instead of SDPA's NaN. Done once per pass, not per layer."""
    return None if allowed is None else allowed | ~allowed.any(dim=-1, keepdim=True)


def _project_out(block: nn.Module, attended: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """A ``Blip2QFormerSelfOutput``: dense, dropout, LayerNorm of the sum with the residual."""
    return block.LayerNorm(block.dropout(block.dense(attended)) + residual)


def _feed_forward(intermediate: nn.Module, output: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A ``Blip2QFormerIntermediate`` + ``Blip2QFormerOutput`` pair: (.., H) -> (.., H)."""
    return output.LayerNorm(output.dropout(output.dense(intermediate.intermediate_act_fn(intermediate.dense(x)))) + x)


def _dropout_p(attention: nn.Module) -> float:
    return attention.attention_dropout if attention.training else 0.0


def run_qformer(
    qformer: nn.Module,
    queries: torch.Tensor | None,
    text: torch.Tensor | None,
    text_mask: torch.Tensor | None,
    allowed: torch.Tensor | None = None,
    frames: FrameKeys | None = None,
    last: Last = "all",
    record: QueryCache | None = None,
    prefix: QueryCache | None = None,
    attn: str = "sdpa",
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``Blip2QFormerModel.forward`` on ``[queries; text]`` with the text's padding left out of the dense layers.

    Args:
        qformer: a transformers ``Blip2QFormerModel`` (its ``layernorm``, ``dropout`` and ``encoder.layer``).
        queries: (B, Nq, H) query embeddings, or None (text only, or text after a ``prefix``).
        text: (B, L, H) word + position embeddings of the text, or None (queries only).
        text_mask: (B, L) bool, True = real token (needed with ``text``).
        allowed: (B, R, K) or (B, 1, K) bool self-attention mask over rows ``[queries; text]`` and keys
            ``[prefix queries; queries; text]``; None = everything.
        frames: the cross-attention keys/values of the B videos (:func:`frame_keys`; needed with ``queries``).
        last: outputs computed at the last layer: ``"all"``, ``"queries"`` (VTM) or ``"first"`` (the first text
            position: ``[CLS]``, with no queries).
        record: filled with each layer's query keys and values (a queries-only run).
        prefix: keys and values of earlier query positions that the text also attends to (VTG after the query
            pass); their positions come first among the keys.
        attn: ``"sdpa"`` or ``"eager"``.

    Returns:
        ``(query_out, text_out)``: (B, Nq, H) or None, and (B, L, H) with zeros at padding, (B, 1, H) for
        ``last="first"``, or None (no text, or ``last="queries"``).
    """
    packed = PackedText.from_mask(text_mask) if text is not None else None
    q = None if queries is None else qformer.dropout(qformer.layernorm(queries))  # (B, Nq, H)
    t = None if packed is None else packed.pack(qformer.dropout(qformer.layernorm(text)))  # (M, H)
    num_queries = 0 if q is None else q.shape[1]
    mask = None if allowed is None else never_empty(allowed)[:, None]  # (B, 1, R|1, K)
    cross_mask = None if frames is None else never_empty(frames.mask)  # (B, T)
    cross_mask = None if cross_mask is None else cross_mask[:, None, None, :]  # (B, 1, 1, T)
    layers = qformer.encoder.layer
    for number, layer in enumerate(layers):
        final = last if number == len(layers) - 1 else "all"
        attention = layer.attention.attention
        heads, hidden = attention.num_attention_heads, attention.query.weight.shape[0]
        keys, values, rows = [], [], []
        if prefix is not None:
            keys.append(prefix.keys[number])
            values.append(prefix.values[number])
        if q is not None:
            query, key, value = _fused(attention, ("query", "key", "value"), q).split(hidden, dim=-1)
            keys.append(_heads(key, heads))
            values.append(_heads(value, heads))
            if record is not None:
                record.keys.append(keys[-1])
                record.values.append(values[-1])
            rows.append(query)
        if t is not None:
            text_rows = packed.unpack(t) if final == "first" else None  # (B, L, H): [CLS]'s residual
            names = ("query", "key", "value") if final == "all" else ("key", "value")
            projected = packed.unpack(_fused(attention, names, t)).split(hidden, dim=-1)  # each (B, L, H)
            keys.append(_heads(projected[-2], heads))
            values.append(_heads(projected[-1], heads))
            if final == "all":
                rows.append(projected[0])
            elif final == "first":
                rows.append(attention.query(text_rows[:, :1]))
        row_queries = rows[0] if len(rows) == 1 else torch.cat(rows, dim=1)  # (B, R, H), projected
        row_mask = mask if mask is None or mask.shape[2] == 1 else mask[:, :, : row_queries.shape[1]]
        attended = attend(
            _heads(row_queries, heads), torch.cat(keys, dim=2) if len(keys) > 1 else keys[0],
            torch.cat(values, dim=2) if len(values) > 1 else values[0], row_mask, _dropout_p(attention), attn,
        )  # (B, R, H)
        if q is not None:
            q = _query_block(layer, number, _project_out(layer.attention.output, attended[:, :num_queries], q),
                             frames, cross_mask, attn)
        if t is not None and final == "first":
            t = _text_block(layer, attended[:, num_queries:], text_rows[:, :1])  # (B, 1, H), no longer packed
            return q, t
        if t is not None and final == "all":
            t = _text_block(layer, packed.pack(attended[:, num_queries:]), t)
    return q, None if t is None or last == "queries" else packed.unpack(t)


def _query_block(
    layer: nn.Module,
    number: int,
    states: torch.Tensor,
    frames: FrameKeys | None,
    cross_mask: torch.Tensor | None,
    attn: str,
) -> torch.Tensor:
    """Cross-attention to the frames (in a cross layer) and the query feed-forward: (B, Nq, H) -> (B, Nq, H)."""
    if layer.has_cross_attention:
        if frames is None:
            raise ValueError("the query positions of a cross-attention layer need frames")
        cross = layer.crossattention.attention
        attended = attend(_heads(cross.query(states), cross.num_attention_heads), frames.keys[number],
                          frames.values[number], cross_mask, _dropout_p(cross), attn)
        states = _project_out(layer.crossattention.output, attended, states)
    return _feed_forward(layer.intermediate_query, layer.output_query, states)


def _text_block(layer: nn.Module, attended: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """Output projection and the text feed-forward: (.., H) attended values -> (.., H)."""
    return _feed_forward(layer.intermediate, layer.output, _project_out(layer.attention.output, attended, residual))
