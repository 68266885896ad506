"""The Stage-II captioner: visual tokens (frozen PME or raw frames) + optional DSM + visual-prefix decoder.

Plain torch (no Lightning): :class:`moviead.stages.captioning.CaptioningStage` trains it, the evaluator decodes
with it. It takes the tensors of a captioning batch (:class:`moviead.data.collate.BatchKey`), never strings.

LoCo-MAD (SPEC §5.2): ``L_s2 = ½ (L_CCL + L_GEN)`` with the DSM on; ``L_GEN`` alone without it, in which case
every valid proposal item goes into the prompt (the decoder then keeps the last ``max_context_tokens`` tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from moviead.generation import GenerationSettings, generate
from moviead.models.decoder import DecoderInputs, VisualPrefixDecoder
from moviead.models.dsm import DynamicSelectionModule
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


@dataclass
class CaptionLosses:
    """``loss`` is what is optimised; ``gen`` and ``ccl`` (None without the DSM) are logged."""

    loss: torch.Tensor
    gen: torch.Tensor
    ccl: torch.Tensor | None
    selected: torch.Tensor  # (B, P) bool
    scores: torch.Tensor | None  # (B, P) DSM relevance scores


class ADCaptioner(nn.Module):
    """Visual prefix + selected context → AD text.

    Args:
        decoder: the visual-prefix LM; its ``visual_dim`` must equal the PME width (``pme``) or the frame width.
        pme: the Stage-I encoder, frozen and kept in eval mode; None feeds the frame features themselves.
        dsm: the Dynamic Selection Module; None puts every valid proposal item into the prompt.
    """

    def __init__(
        self, decoder: VisualPrefixDecoder, pme: PretrainedMovieEncoder | None = None,
        dsm: DynamicSelectionModule | None = None,
    ) -> None:
        super().__init__()
        self.decoder = decoder
        self.pme = pme
        self.dsm = dsm
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
        with torch.no_grad():
            return self.pme.query_outputs(frames, frame_mask), None

    def select(self, batch: CaptionBatch) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(B, P) selected items, the DSM's (B, P) scores and its CCL (both None without a DSM)."""
        if self.dsm is None:
            return batch.proposal_valid, None, None
        if batch.proposal_features is None:
            raise ValueError("the DSM needs proposal_features: give the collator a sentence-feature bank")
        out = self.dsm(batch.proposal_features, batch.proposal_valid, batch.frames, batch.frame_mask)
        return out.selected, out.scores, out.loss

    def decoder_inputs(
        self, batch: CaptionBatch, selected: torch.Tensor, with_target: bool, padding_side: str = "right"
    ) -> DecoderInputs:
        visual, visual_mask = self.visual_tokens(batch.frames, batch.frame_mask)
        return self.decoder.assemble(
            visual, visual_mask, batch.proposal_ad_ids, batch.proposal_ad_mask, batch.proposal_sub_ids,
            batch.proposal_sub_mask, selected,
            batch.target_ids if with_target else None, batch.target_mask if with_target else None,
            padding_side=padding_side,
        )

    def forward(self, batch: CaptionBatch) -> CaptionLosses:
        """The Stage-II losses of one batch (targets required)."""
        if batch.target_ids is None or batch.target_mask is None:
            raise ValueError("the captioning loss needs target_ids and target_mask")
        selected, scores, ccl = self.select(batch)
        visual, visual_mask = self.visual_tokens(batch.frames, batch.frame_mask)
        gen = self.decoder(
            visual, visual_mask, batch.proposal_ad_ids, batch.proposal_ad_mask, batch.proposal_sub_ids,
            batch.proposal_sub_mask, selected, batch.target_ids, batch.target_mask,
        )
        loss = gen if ccl is None else 0.5 * (ccl + gen)
        return CaptionLosses(loss=loss, gen=gen, ccl=ccl, selected=selected, scores=scores)

    @torch.no_grad()
    def generate(self, batch: CaptionBatch, settings: GenerationSettings) -> tuple[list[list[int]], torch.Tensor]:
        """Token ids of one AD per sample (ending at the first stop token) and the (B, P) selected items."""
        selected, _, _ = self.select(batch)
        inputs = self.decoder_inputs(batch, selected, with_target=False, padding_side="left")
        return generate(self.decoder, inputs, settings), selected
