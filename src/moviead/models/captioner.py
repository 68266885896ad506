"""The Stage-II captioner: visual tokens (frozen PME or raw frames) + optional DSM + visual-prefix decoder.

DistinctAD (SPEC §5.3): the frames of the clip and of its neighbouring clips, optionally through the frozen Stage-I
adapter, go through the contextual EM attention, whose bases and residual form the visual prefix; the LM head
applied to the hidden state of the last prompt position (after the visual prefix, the context and the instruction)
is the bag-of-words head of the distinctive-word loss.

Plain torch (no Lightning): :class:`moviead.stages.captioning.CaptioningStage` trains it with
:class:`moviead.losses.captioning.CaptioningLoss` (which holds the Stage-II objective: ``½ (L_CCL + L_GEN)`` with
the DSM, ``L_GEN`` without, ``+ λ_dw L_DW`` for DistinctAD), the evaluator decodes with it. It takes the tensors
of a captioning batch (:class:`moviead.data.collate.BatchKey`), never strings. Without the DSM every valid proposal
item goes into the prompt (the decoder then keeps the last ``max_context_tokens`` tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from moviead.models.decoder import DecoderInputs, VisualPrefixDecoder
from moviead.models.dsm import DSMOutput, DynamicSelectionModule
from moviead.models.em_attention import ContextualEMAttention
from moviead.models.frozen_cache import FrozenEncoderCache
from moviead.models.generation import GenerationSettings, generate
from moviead.models.qformer import PretrainedMovieEncoder


@dataclass(frozen=True)
class CaptionBatch:
    """The tensors of a captioning batch.

    Attributes:
        frames: (B, T, Dv) frame features; frame_mask: (B, T) bool, True on real frames.
        proposal_ad_ids / proposal_ad_mask: (B, P, La) tokens of each proposal item's AD.
        proposal_sub_ids / proposal_sub_mask: (B, P, Ls) tokens of each item's subtitles.
        proposal_valid: (B, P) bool, items oldest first.
        proposal_features: (B, P, Dc) sentence features of the items (needed by the DSM only).
        target_ids / target_mask: (B, Lt) the AD + newline (training and validation loss only).
        neighbour_frames / neighbour_mask: (B, C, Tn, Dv) / (B, C, Tn) the neighbouring clips (DistinctAD EM only).
        distinct_targets: (B, V) multi-hot distinctive-word target (DistinctAD loss only).
    """

    frames: torch.Tensor
    frame_mask: torch.Tensor
    proposal_ad_ids: torch.Tensor
    proposal_ad_mask: torch.Tensor
    proposal_sub_ids: torch.Tensor
    proposal_sub_mask: torch.Tensor
    proposal_valid: torch.Tensor
    proposal_features: torch.Tensor | None = None
    target_ids: torch.Tensor | None = None
    target_mask: torch.Tensor | None = None
    neighbour_frames: torch.Tensor | None = None
    neighbour_mask: torch.Tensor | None = None
    distinct_targets: torch.Tensor | None = None


class ADCaptioner(nn.Module):
    """Visual prefix + selected context → AD text.

    Args:
        decoder: the visual-prefix LM; its ``visual_dim`` must equal the PME width (``pme``) or the frame width.
        pme: the Stage-I encoder, frozen and kept in eval mode; None feeds the frame features themselves.
        dsm: the Dynamic Selection Module; None puts every valid proposal item into the prompt.
        em_attention: DistinctAD's contextual EM attention over the clip and its neighbours (needs ``pme`` None).
        frame_adapter: a frozen module (B, T, D), (B, T) -> (B, T, D) applied to every clip's frames first (the
            DistinctAD Stage-I adapter); needs ``pme`` None.
        lambda_dw: weight of the distinctive-word loss (0: off); kept here for the recipes, read by the loss
            (:class:`moviead.losses.captioning.CaptioningLoss`).
    """

    def __init__(
        self, decoder: VisualPrefixDecoder, pme: PretrainedMovieEncoder | None = None,
        dsm: DynamicSelectionModule | None = None, em_attention: ContextualEMAttention | None = None,
        frame_adapter: nn.Module | None = None, lambda_dw: float = 0.0,
        frozen_cache: FrozenEncoderCache | None = None,
    ) -> None:
        super().__init__()
        if pme is not None and (em_attention is not None or frame_adapter is not None):
            raise ValueError("the EM attention and the frame adapter read frame features: use them without a PME")
        self.decoder = decoder
        self.pme = pme
        self.dsm = dsm
        self.em_attention = em_attention
        self.frame_adapter = frame_adapter
        self.lambda_dw = float(lambda_dw)
        self.frozen_cache = frozen_cache  # the frozen PME's outputs per clip, computed once (not a module: not saved)
        if pme is not None:
            pme.requires_grad_(False)
            pme.eval()

    def train(self, mode: bool = True) -> ADCaptioner:
        super().train(mode)
        if self.pme is not None:
            self.pme.eval()  # frozen: no dropout, whatever the stage does
        return self

    def visual_tokens(self, frames: torch.Tensor, frame_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, Q, D) visual tokens and their (B, Q) mask: PME query outputs (no mask) or the frames themselves."""
        if self.pme is None:
            return frames, frame_mask
        if self.frozen_cache is not None:
            return self.frozen_cache(self.pme.query_outputs, frames, frame_mask), None
        with torch.no_grad():
            return self.pme.query_outputs(frames, frame_mask), None

    def visual_prefix(self, batch: CaptionBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, Q, D) visual tokens of the prefix and their (B, Q) mask (None: all real).

        Without EM attention and adapter: :meth:`visual_tokens`. With them: the (adapted) frames, then the EM
        attention's tokens over the clip and its neighbours (``neighbour_frames`` (B, C, Tn, D) flattened to C·Tn).
        """
        if self.em_attention is None and self.frame_adapter is None:
            return self.visual_tokens(batch.frames, batch.frame_mask)
        adapt = self.frame_adapter if self.frame_adapter is not None else (lambda frames, mask: frames)
        frames = adapt(batch.frames, batch.frame_mask)
        if self.em_attention is None:
            return frames, batch.frame_mask
        if batch.neighbour_frames is None or batch.neighbour_mask is None:
            raise ValueError("the contextual EM attention needs neighbour_frames and neighbour_mask: build the dataset "
                             "with neighbour_clips=CaptionerParts.neighbour_clips and use CaptionerParts.collator")
        b, c, t, d = batch.neighbour_frames.shape
        mask = batch.neighbour_mask.reshape(b * c, t)
        neighbours = adapt(batch.neighbour_frames.reshape(b * c, t, d), mask).reshape(b, c * t, -1)
        out = self.em_attention(frames, batch.frame_mask, neighbours, mask.reshape(b, c * t))
        return out.tokens, out.mask

    def select(self, batch: CaptionBatch) -> tuple[torch.Tensor, DSMOutput | None]:
        """(B, P) bool selected items and the DSM's output (scores and what the CCL needs; None without a DSM)."""
        if self.dsm is None:
            return batch.proposal_valid, None
        if batch.proposal_features is None:
            raise ValueError("the DSM needs proposal_features: give the collator a sentence-feature bank")
        out = self.dsm(batch.proposal_features, batch.proposal_valid, batch.frames, batch.frame_mask)
        return out.selected, out

    def decoder_inputs(
        self, batch: CaptionBatch, selected: torch.Tensor, with_target: bool, padding_side: str = "right"
    ) -> DecoderInputs:
        """The LM input of ``batch`` with the (B, P) bool ``selected`` items as context (and the targets when
        ``with_target``), right-padded for training or left-padded for generation."""
        visual, visual_mask = self.visual_prefix(batch)
        return self.decoder.assemble(
            visual, visual_mask, batch.proposal_ad_ids, batch.proposal_ad_mask, batch.proposal_sub_ids,
            batch.proposal_sub_mask, selected,
            batch.target_ids if with_target else None, batch.target_mask if with_target else None,
            padding_side=padding_side,
        )

    def bag_of_words_logits(self, prompt_state: torch.Tensor) -> torch.Tensor:
        """DistinctAD's bag-of-words head: the LM head on the last prompt position's hidden state, which has seen
        the visual prefix and the context ADs that define "distinctive"
        (:meth:`VisualPrefixDecoder.loss_and_prompt_state`), (B, H') -> (B, V)."""
        return self.decoder.lm.get_output_embeddings()(prompt_state)

    @torch.no_grad()
    def generate(self, batch: CaptionBatch, settings: GenerationSettings) -> tuple[list[list[int]], torch.Tensor]:
        """Token ids of one AD per sample (ending at the first stop token) and the (B, P) selected items."""
        selected, _ = self.select(batch)
        inputs = self.decoder_inputs(batch, selected, with_target=False, padding_side="left")
        return generate(self.decoder, inputs, settings), selected
