"""The Stage-II objective of a captioner: L_GEN, LoCo-MAD's CCL (with the DSM) and DistinctAD's L_DW.

    L = ½ (L_CCL + L_GEN)     with the DSM (LoCo-MAD, SPEC §5.2)
    L = L_GEN                 without it
    L += λ_dw · L_DW          when λ_dw > 0 (DistinctAD, SPEC §5.3)

L_GEN is the decoder's next-token cross-entropy on the target AD; L_CCL is
:func:`moviead.losses.contextual.dsm_contextual_loss` of the DSM's pass; L_DW is
:func:`moviead.losses.distinctive.distinctive_word_loss` of the bag-of-words head, whose input (the hidden state
of the last prompt position, after the context) comes from the same LM pass as L_GEN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from moviead.losses.contextual import dsm_contextual_loss
from moviead.losses.distinctive import distinctive_word_loss

if TYPE_CHECKING:
    from moviead.models.captioner import ADCaptioner, CaptionBatch


@dataclass
class CaptionLosses:
    """``loss`` is what is optimised; ``gen``, ``ccl`` (None without the DSM) and ``dw`` (None without the
    distinctive-word loss) are logged."""

    loss: torch.Tensor
    gen: torch.Tensor
    ccl: torch.Tensor | None
    selected: torch.Tensor  # (B, P) bool
    scores: torch.Tensor | None  # (B, P) DSM relevance scores
    dw: torch.Tensor | None = None


class CaptioningLoss(nn.Module):
    """The Stage-II losses of an :class:`~moviead.models.captioner.ADCaptioner` (or a subclass) on one batch.

    Args:
        lambda_dw: weight of the distinctive-word loss (0: off, not computed); a stage passes the captioner's
            ``lambda_dw``.
    """

    def __init__(self, lambda_dw: float = 0.0) -> None:
        super().__init__()
        if lambda_dw < 0:
            raise ValueError(f"lambda_dw must be >= 0, got {lambda_dw}")
        self.lambda_dw = float(lambda_dw)

    def forward(self, captioner: ADCaptioner, batch: CaptionBatch) -> CaptionLosses:
        """The losses of ``batch`` (targets required; ``distinct_targets`` (B, V) too when ``lambda_dw > 0``).

        Returns:
            :class:`CaptionLosses`: the scalars, the (B, P) selected items and the DSM's (B, P) scores (None
            without the DSM).
        """
        if batch.target_ids is None or batch.target_mask is None:
            raise ValueError("the captioning loss needs target_ids and target_mask")
        selected, dsm = captioner.select(batch)
        inputs = captioner.decoder_inputs(batch, selected, with_target=True)
        dw = None
        if self.lambda_dw > 0:
            if batch.distinct_targets is None:
                raise ValueError("the distinctive-word loss needs distinct_targets: collate with the recipe's collator")
            gen, prompt_state = captioner.decoder.loss_and_prompt_state(inputs)  # scalar, (B, H')
            dw = distinctive_word_loss(captioner.bag_of_words_logits(prompt_state), batch.distinct_targets)
        else:
            gen = captioner.decoder.loss(inputs)
        ccl = None if dsm is None else dsm_contextual_loss(dsm)
        loss = gen if ccl is None else 0.5 * (ccl + gen)
        if dw is not None:
            loss = loss + self.lambda_dw * dw
        return CaptionLosses(loss=loss, gen=gen, ccl=ccl, selected=selected, scores=None if dsm is None else dsm.scores,
                             dw=dw)
