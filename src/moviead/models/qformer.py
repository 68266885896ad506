"""PME — the Pre-aligned Movie Encoder of LoCo-MAD (§3.1): a BLIP-2 Q-Former over movie frame features.

Built on transformers' :class:`~transformers.Blip2QFormerModel` (``use_qformer_text_input=True``: separate
feed-forwards for query and text positions, cross-attention to the frames every ``cross_attention_frequency``
layers) fed by :class:`~transformers.models.blip_2.modeling_blip_2.Blip2TextEmbeddings`. We add learnable
queries, a fixed sinusoidal temporal encoding of the frames with a padding mask, the three task masks of the
shared query/text self-attention, a BERT LM head tied to the word embeddings, and the BLIP-2 heads
(``vision_proj``, ``text_proj``, ``itm_head``, ``temp``).

Module names mirror LAVIS's ``Blip2Qformer`` so a checkpoint converts by renaming only (LAVIS -> here):

- ``Qformer.bert.embeddings.{word,position}_embeddings.*`` -> ``embeddings.{word,position}_embeddings.*``
- ``Qformer.bert.embeddings.LayerNorm.*`` -> ``qformer.layernorm.*``
- ``Qformer.bert.encoder.*`` -> ``qformer.encoder.*``, with ``{attention,crossattention}.self.`` ->
  ``{attention,crossattention}.attention.``
- ``Qformer.cls.predictions.*`` -> ``lm_head.*``
- ``query_tokens``, ``temp``, ``vision_proj.*``, ``text_proj.*``, ``itm_head.*``: same names
- ``Qformer.bert.embeddings.position_ids``: a buffer, not saved here.

``frame_norm`` (a LayerNorm on the frame features, the role of BLIP-2's ``ln_vision``) has no LAVIS source.

Inputs are tensors only: ``frames`` (B, T, Dv) float, ``frame_mask`` (B, T) bool (True = real frame; every
sample needs at least one), ``text_ids`` (B, L) long (BERT WordPiece, ``[CLS]`` first), ``text_mask`` (B, L)
bool/int (1 = real token).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Blip2QFormerModel
from transformers.models.blip_2.modeling_blip_2 import Blip2TextEmbeddings

from moviead.models.configs import PMEConfig
from moviead.models.layers import BertLMHead, SinusoidalTemporalEncoding, additive_mask

Task = Literal["vtc", "vtm", "vtg"]


def task_attention_mask(task: Task, num_queries: int, text_mask: torch.Tensor) -> torch.Tensor:
    """Boolean self-attention mask over the joint sequence ``[queries; text]`` for one pretext task.

    - ``vtc``: queries see queries, text sees text (no exchange between modalities);
    - ``vtm``: everything sees everything (bidirectional);
    - ``vtg``: queries see queries; text position i sees all queries and text positions <= i (causal).
    Padded text keys (``text_mask == 0``) are never visible.

    Args:
        task: one of ``"vtc"``, ``"vtm"``, ``"vtg"``.
        num_queries: Nq, the number of query positions at the front of the sequence.
        text_mask: (B, L), nonzero = real token.

    Returns:
        (B, Nq+L, Nq+L) bool, ``[b, i, j]`` True when position i may attend to position j.
    """
    batch, length = text_mask.shape
    n = num_queries + length
    device = text_mask.device
    pos = torch.arange(n, device=device)
    is_query = pos < num_queries  # (N,)
    if task == "vtm":
        allowed = torch.ones(n, n, dtype=torch.bool, device=device)
    elif task == "vtc":
        allowed = is_query[:, None] == is_query[None, :]
    elif task == "vtg":
        causal = pos[None, :] <= pos[:, None]  # key j <= query i
        allowed = (is_query[:, None] & is_query[None, :]) | (~is_query[:, None] & (is_query[None, :] | causal))
    else:
        raise ValueError(f"unknown task {task!r}; expected 'vtc', 'vtm' or 'vtg'")
    key_valid = torch.cat([torch.ones(batch, num_queries, dtype=torch.bool, device=device), text_mask.bool()], 1)
    return allowed[None] & key_valid[:, None, :]  # (B, N, N)


class PretrainedMovieEncoder(nn.Module):
    """The PME: learnable queries read temporally encoded frame features through a BLIP-2 Q-Former.

    Attributes:
        query_tokens: (1, Nq, H) learnable queries.
        embeddings: word + absolute position embeddings of the text (no token types, no LayerNorm).
        qformer: transformers ``Blip2QFormerModel`` (its ``layernorm`` is BERT's embedding LayerNorm).
        lm_head: BERT LM head, ``decoder.weight`` is ``embeddings.word_embeddings.weight``.
        vision_proj, text_proj: H -> E projections for VTC; itm_head: H -> 2 for VTM.
        temp: learnable softmax temperature (scalar), initialised to ``config.temp_init``.
    """

    def __init__(self, config: PMEConfig) -> None:
        super().__init__()
        self.config = config
        qconfig = config.to_qformer_config()
        hidden = config.hidden_size
        self.temporal_encoding = SinusoidalTemporalEncoding(config.max_frames, config.vision_width)
        self.frame_norm = nn.LayerNorm(config.vision_width) if config.frame_layernorm else nn.Identity()
        self.query_tokens = nn.Parameter(torch.zeros(1, config.num_query_tokens, hidden))
        self.embeddings = Blip2TextEmbeddings(qconfig)
        self.qformer = Blip2QFormerModel(qconfig)
        self.lm_head = BertLMHead(hidden, config.vocab_size, config.hidden_act, config.layer_norm_eps)
        self.vision_proj = nn.Linear(hidden, config.embed_dim)
        self.text_proj = nn.Linear(hidden, config.embed_dim)
        self.itm_head = nn.Linear(hidden, 2)
        self.temp = nn.Parameter(torch.tensor(config.temp_init))
        self._init_own_weights()
        self.lm_head.tie_to(self.embeddings.word_embeddings)

    @torch.no_grad()
    def _init_own_weights(self) -> None:
        """BERT-style init for the parts outside ``qformer`` (which transformers initialises itself)."""
        std = self.config.initializer_range
        self.query_tokens.normal_(0.0, std)
        for emb in (self.embeddings.word_embeddings, self.embeddings.position_embeddings):
            emb.weight.normal_(0.0, std)
        self.embeddings.word_embeddings.weight[self.config.pad_token_id].zero_()
        for linear in (self.lm_head.transform.dense, self.vision_proj, self.text_proj, self.itm_head):
            linear.weight.normal_(0.0, std)
            linear.bias.zero_()
        self.lm_head.bias.zero_()

    # ------------------------------------------------------------------ inputs
    def _mask_dtype(self) -> torch.dtype:
        return self.qformer.layernorm.weight.dtype

    def encode_frames(
        self, frames: torch.Tensor, frame_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Frame features for cross-attention.

        Args:
            frames: (B, T, Dv) with T <= ``max_frames``; frame_mask: (B, T) bool, True = real frame, or None.

        Returns:
            ``(frames, cross_bias)``: (B, T, Dv) normalised and temporally encoded frames and the additive
            cross-attention bias (B, 1, 1, T) that hides padded frames (None when ``frame_mask`` is None).
        """
        if frames.shape[-1] != self.config.vision_width:
            raise ValueError(f"frames have width {frames.shape[-1]}, config.vision_width={self.config.vision_width}")
        encoded = self.temporal_encoding(self.frame_norm(frames))  # (B, T, Dv)
        cross_bias = None if frame_mask is None else additive_mask(frame_mask.bool(), self._mask_dtype())
        return encoded, cross_bias

    def _queries(self, batch: int) -> torch.Tensor:
        return self.query_tokens.expand(batch, -1, -1)  # (B, Nq, H)

    # ------------------------------------------------------------------ single-modality branches
    def query_outputs(self, frames: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Queries only (they see each other and the frames): (B, T, Dv) -> (B, Nq, H).

        These are the compact visual features: the VTC image side and Stage-II's visual tokens.
        """
        encoded, cross_bias = self.encode_frames(frames, frame_mask)
        queries = self._queries(frames.shape[0])
        out = self.qformer(
            query_embeds=queries,
            query_length=queries.shape[1],
            encoder_hidden_states=encoded,
            encoder_attention_mask=cross_bias,
        )
        return out.last_hidden_state  # (B, Nq, H)

    def forward(self, frames: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Visual tokens for Stage-II: frames (B, T, Dv), frame_mask (B, T) -> (B, Nq, H)."""
        return self.query_outputs(frames, frame_mask)

    def query_features(self, frames: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """VTC video features: (B, T, Dv) -> (B, Nq, E), L2-normalised ``vision_proj`` of each query."""
        return F.normalize(self.vision_proj(self.query_outputs(frames, frame_mask)), dim=-1)

    def text_outputs(self, text_ids: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """Text only (BERT-style bidirectional self-attention): (B, L) ids -> (B, L, H) hidden states."""
        text_embeds = self.embeddings(input_ids=text_ids)  # (B, L, H)
        out = self.qformer(
            query_embeds=text_embeds,
            query_length=0,
            attention_mask=additive_mask(text_mask.bool(), self._mask_dtype()),
        )
        return out.last_hidden_state

    def text_features(self, text_ids: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """VTC text features: (B, L) -> (B, E), L2-normalised ``text_proj`` of the [CLS] output."""
        return F.normalize(self.text_proj(self.text_outputs(text_ids, text_mask)[:, 0]), dim=-1)

    # ------------------------------------------------------------------ joint branch
    def joint_outputs(
        self,
        frames: torch.Tensor,
        frame_mask: torch.Tensor | None,
        text_ids: torch.Tensor,
        text_mask: torch.Tensor,
        task: Task,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries and text through one shared self-attention under the mask of ``task``.

        Args:
            frames: (B, T, Dv); frame_mask: (B, T) or None; text_ids, text_mask: (B, L).
            task: ``"vtc"``, ``"vtm"`` or ``"vtg"`` (see :func:`task_attention_mask`).

        Returns:
            ``(query_out, text_out)``: (B, Nq, H) and (B, L, H).
        """
        encoded, cross_bias = self.encode_frames(frames, frame_mask)
        queries = self._queries(frames.shape[0])
        num_queries = queries.shape[1]
        joint = self.embeddings(input_ids=text_ids, query_embeds=queries)  # (B, Nq+L, H)
        allowed = task_attention_mask(task, num_queries, text_mask)  # (B, Nq+L, Nq+L)
        out = self.qformer(
            query_embeds=joint,
            query_length=num_queries,
            attention_mask=additive_mask(allowed, self._mask_dtype()),
            encoder_hidden_states=encoded,
            encoder_attention_mask=cross_bias,
        ).last_hidden_state
        return out[:, :num_queries], out[:, num_queries:]

    def itm_logits(
        self, frames: torch.Tensor, frame_mask: torch.Tensor | None, text_ids: torch.Tensor, text_mask: torch.Tensor
    ) -> torch.Tensor:
        """VTM: bidirectional joint pass, ``itm_head`` on each query output -> (B, Nq, 2) (average over Nq)."""
        query_out, _ = self.joint_outputs(frames, frame_mask, text_ids, text_mask, "vtm")
        return self.itm_head(query_out)

    def lm_logits(
        self, frames: torch.Tensor, frame_mask: torch.Tensor | None, text_ids: torch.Tensor, text_mask: torch.Tensor
    ) -> torch.Tensor:
        """VTG: causal joint pass, LM head on the text outputs -> (B, L, V); logits at t predict token t+1.

        As in BLIP-2, callers may replace ``text_ids[:, 0]`` by a decoder BOS token (LAVIS's ``[DEC]``).
        """
        _, text_out = self.joint_outputs(frames, frame_mask, text_ids, text_mask, "vtg")
        return self.lm_head(text_out)

    @torch.no_grad()
    def clamp_temp_(self, min_value: float = 0.001, max_value: float = 0.5) -> None:
        """Clamp ``temp`` in place to [min_value, max_value] (BLIP-2 does this before each VTC step)."""
        self.temp.clamp_(min_value, max_value)
