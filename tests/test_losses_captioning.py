"""The Stage-II objective (CaptioningLoss): how L_GEN, the DSM's CCL and the distinctive-word loss combine, on a
stand-in captioner with fixed outputs, against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from moviead.losses import CaptioningLoss
from moviead.models.captioner import CaptionBatch
from moviead.models.dsm import DSMOutput

GEN = 2.0
# One sample, items [1, 0] (selected) and [0, 1]; v = [1, 0]; tau = 0.5: cos(T+, v) = 1, cos(T-, v) = 0, so
# CCL = -log(e^2 / (e^2 + e^0)) = log(1 + e^-2).
CCL = math.log(1.0 + math.exp(-2.0))
# logits [[0, ln 3]], targets [[1, 0]]: positives' mean ln 2 + negatives' mean ln 4 = 3 ln 2 (see
# test_losses_distinctive.py)
DW = 3.0 * math.log(2.0)


def dsm_output() -> DSMOutput:
    return DSMOutput(
        scores=torch.tensor([[0.7, 0.3]]),
        selected=torch.tensor([[True, False]]),
        temperature=torch.tensor(0.5),
        valid=torch.tensor([[True, True]]),
        proposal_features=torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]),
        visual_summary=torch.tensor([[1.0, 0.0]]),
    )


class _FixedDecoder:
    def loss(self, inputs: object) -> torch.Tensor:
        return torch.tensor(GEN)

    def loss_and_prompt_state(self, inputs: object) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor(GEN), torch.tensor([[0.0, math.log(3.0)]])  # (B, H'), here the head's logits


class _FixedCaptioner:
    """What CaptioningLoss reads of an ADCaptioner, with fixed outputs; records the selection it was given."""

    def __init__(self, dsm: DSMOutput | None, lambda_dw: float = 0.0) -> None:
        self.dsm, self.lambda_dw, self.decoder = dsm, lambda_dw, _FixedDecoder()
        self.context: torch.Tensor | None = None

    def select(self, batch: CaptionBatch) -> tuple[torch.Tensor, DSMOutput | None]:
        return (batch.proposal_valid, None) if self.dsm is None else (self.dsm.selected, self.dsm)

    def decoder_inputs(self, batch: CaptionBatch, selected: torch.Tensor, with_target: bool) -> object:
        assert with_target
        self.context = selected
        return object()

    def bag_of_words_logits(self, prompt_state: torch.Tensor) -> torch.Tensor:
        return prompt_state


def batch(with_target: bool = True, distinct: bool = True) -> CaptionBatch:
    ids = torch.zeros(1, 2, 1, dtype=torch.long)
    return CaptionBatch(
        frames=torch.zeros(1, 1, 2), frame_mask=torch.ones(1, 1, dtype=torch.bool), proposal_ad_ids=ids,
        proposal_ad_mask=ids.bool(), proposal_sub_ids=ids, proposal_sub_mask=ids.bool(),
        proposal_valid=torch.tensor([[True, True]]),
        target_ids=torch.ones(1, 2, dtype=torch.long) if with_target else None,
        target_mask=torch.ones(1, 2, dtype=torch.bool) if with_target else None,
        distinct_targets=torch.tensor([[1.0, 0.0]]) if distinct else None,
    )


@pytest.mark.parametrize(
    "with_dsm, lambda_dw, expected",
    [
        (True, 0.0, 0.5 * (CCL + GEN)),  # LoCo-MAD: L = ½ (L_CCL + L_GEN)
        (False, 0.0, GEN),  # no DSM: L_GEN alone
        (False, 0.5, GEN + 0.5 * DW),  # DistinctAD: L_GEN + λ_dw L_DW
        (True, 0.5, 0.5 * (CCL + GEN) + 0.5 * DW),
    ],
)
def test_captioning_loss_combines_the_losses(with_dsm: bool, lambda_dw: float, expected: float) -> None:
    captioner = _FixedCaptioner(dsm_output() if with_dsm else None, lambda_dw)
    out = CaptioningLoss(lambda_dw)(captioner, batch())  # type: ignore[arg-type]
    assert out.loss.item() == pytest.approx(expected, rel=1e-6)
    assert out.gen.item() == pytest.approx(GEN, rel=1e-6)
    if with_dsm:
        assert out.ccl is not None and out.ccl.item() == pytest.approx(CCL, rel=1e-6)
        assert torch.equal(out.scores, dsm_output().scores) and out.selected.tolist() == [[True, False]]
    else:
        assert out.ccl is None and out.scores is None and out.selected.tolist() == [[True, True]]
    assert (out.dw is None) == (lambda_dw == 0) and (out.dw is None or out.dw.item() == pytest.approx(DW, rel=1e-6))
    assert torch.equal(captioner.context, out.selected)  # the prompt holds the selected items


def test_captioning_loss_refuses_missing_targets_and_negative_weights() -> None:
    with pytest.raises(ValueError, match="target_ids"):
        CaptioningLoss()(_FixedCaptioner(None), batch(with_target=False))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="distinct_targets"):
        CaptioningLoss(0.5)(_FixedCaptioner(None), batch(distinct=False))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lambda_dw"):
        CaptioningLoss(-1.0)
