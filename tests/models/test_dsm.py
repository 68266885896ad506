"""DSM (LoCo-MAD eq. 5-9): the contextual contrastive loss, top-k selection, gradients, padding, learning."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from moviead.losses import contextual_contrastive_loss, dsm_contextual_loss
from moviead.models.dsm import DSMOutput, DynamicSelectionModule, recency_positions, sample_k_mask, top_k_mask

DC, DV, P, T = 16, 12, 5, 4


def tiny_dsm(**overrides: object) -> DynamicSelectionModule:
    torch.manual_seed(0)
    kwargs: dict[str, object] = {"text_dim": DC, "visual_dim": DV, "n_layers": 2, "n_heads": 4, "top_k": 2,
                                 "max_proposal": 8, "dropout": 0.0}
    kwargs.update(overrides)
    return DynamicSelectionModule(**kwargs)  # type: ignore[arg-type]


def inputs(batch: int = 3, seed: int = 1) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    valid = torch.ones(batch, P, dtype=torch.bool)
    valid[1, 3:] = False
    visual_mask = torch.ones(batch, T, dtype=torch.bool)
    visual_mask[2, 2:] = False
    features = torch.randn(batch, P, DC, generator=gen) * valid.unsqueeze(-1)
    return {
        "proposal_features": features,
        "proposal_valid": valid,
        "visual": torch.randn(batch, T, DV, generator=gen),
        "visual_mask": visual_mask,
    }


# ---------------------------------------------------------------------------------------------- CCL


def _ccl_inputs() -> dict[str, torch.Tensor]:
    return {
        "scores": torch.tensor([[0.5, 0.2, 0.3], [0.6, 0.4, 0.0]]),
        # sample 1: item 2 is padded; its selected flag must be ignored
        "selected": torch.tensor([[True, False, True], [False, True, True]]),
        "valid": torch.tensor([[True, True, True], [True, True, False]]),
        "text_features": torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [[0.0, 2.0], [3.0, 4.0], [7.0, 7.0]]]),
        "visual_summary": torch.tensor([[1.0, 0.0], [0.0, 2.0]]),
        "temperature": torch.tensor(0.5),
    }


def _expected_ccl() -> float:
    tau = 0.5
    # sample 0: k = 2, T+ = (0.5*[1,0] + 0.3*[1,1]) / 2 = [0.4, 0.15]; negative item 1 = [0,1]; v = [1,0]
    cos_pos0 = 0.4 / math.sqrt(0.4**2 + 0.15**2)
    cos_neg0 = 0.0
    loss0 = -math.log(math.exp(cos_pos0 / tau) / (math.exp(cos_pos0 / tau) + math.exp(cos_neg0 / tau)))
    # sample 1: k = 1, T+ = 0.4*[3,4] -> cos with [0,2] = 4/5; negative item 0 = [0,2] -> cos 1
    cos_pos1, cos_neg1 = 0.8, 1.0
    loss1 = -math.log(math.exp(cos_pos1 / tau) / (math.exp(cos_pos1 / tau) + math.exp(cos_neg1 / tau)))
    return (loss0 + loss1) / 2


def test_ccl_equals_hand_computed_value() -> None:
    loss = contextual_contrastive_loss(**_ccl_inputs())
    assert loss.item() == pytest.approx(_expected_ccl(), rel=1e-6)
    assert _expected_ccl() == pytest.approx(0.52800, abs=1e-4)  # (log(1+e^-1.8727) + log(1+e^0.4)) / 2


def test_ccl_ignores_samples_without_items_and_overall_score_scale() -> None:
    base = _ccl_inputs()
    extended = {k: (torch.cat([v, torch.zeros_like(v[:1])]) if v.dim() else v) for k, v in base.items()}
    extended["text_features"][2] = 5.0  # a sample with no valid item: features must not matter
    extended["visual_summary"][2] = 1.0
    assert contextual_contrastive_loss(**extended).item() == pytest.approx(_expected_ccl(), rel=1e-6)
    scaled = dict(base, scores=base["scores"] * 7.0)  # cos is scale-invariant: only relative weights count
    assert contextual_contrastive_loss(**scaled).item() == pytest.approx(_expected_ccl(), rel=1e-6)


def test_ccl_without_any_positive_is_zero_and_backpropagates() -> None:
    scores = torch.rand(2, 3, requires_grad=True)
    feats = torch.randn(2, 3, 4, requires_grad=True)
    summary = torch.randn(2, 4, requires_grad=True)
    none = torch.zeros(2, 3, dtype=torch.bool)
    loss = contextual_contrastive_loss(scores, none, none, feats, summary, torch.tensor(0.05))
    loss.backward()
    assert loss.item() == 0.0
    for tensor in (scores, feats, summary):
        assert tensor.grad is not None and torch.all(tensor.grad == 0)


# ---------------------------------------------------------------------------------------------- selection


def test_top_k_mask_with_padding_ties_and_large_k() -> None:
    scores = torch.tensor(
        [
            [0.1, 0.5, 0.3, 0.9],  # item 3 is padded: its high score must not count
            [0.2, 0.2, 0.2, 0.2],  # all tied: the newest valid items win
            [0.5, 0.1, 0.5, 0.1],  # tie for first: the newer of the two
            [0.4, 0.0, 0.6, 0.0],  # k larger than the number of valid items
            [0.3, 0.3, 0.3, 0.3],  # no valid item
        ]
    )
    valid = torch.tensor(
        [[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1], [1, 0, 1, 0], [0, 0, 0, 0]], dtype=torch.bool
    )
    assert top_k_mask(scores, valid, 2).int().tolist() == [
        [0, 1, 1, 0], [0, 0, 1, 1], [1, 0, 1, 0], [1, 0, 1, 0], [0, 0, 0, 0],
    ]
    assert top_k_mask(scores, valid, 1).int().tolist() == [
        [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0],
    ]
    assert top_k_mask(scores, valid, 10).tolist() == valid.tolist()


def test_recency_positions_count_from_the_newest_valid_item() -> None:
    valid = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 0, 1, 0, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    assert recency_positions(valid).tolist() == [[2, 1, 0, 0, 0], [3, 3, 2, 1, 0], [2, 2, 1, 1, 0], [0] * 5]


def test_selection_mask_is_in_the_callers_time_order() -> None:
    dsm = tiny_dsm(top_k=2).eval()
    nn.init.zeros_(dsm.sampler.weight)
    nn.init.zeros_(dsm.sampler.bias)  # every score tied: the two newest valid items are chosen
    valid = torch.tensor([[1, 1, 1, 1, 0], [0, 0, 1, 1, 1], [1, 0, 1, 0, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    x = inputs(batch=4)
    out = dsm(x["proposal_features"] * valid.unsqueeze(-1), valid, x["visual"], None)
    assert out.selected.int().tolist() == [[0, 0, 1, 1, 0], [0, 0, 0, 1, 1], [0, 0, 1, 0, 1], [0, 0, 0, 0, 0]]
    assert torch.allclose(out.scores[0], torch.tensor([0.25, 0.25, 0.25, 0.25, 0.0]))

    fixed = torch.tensor([[5.0, 0.0, 0.0, 4.0, 9.0]]).expand(4, -1).unsqueeze(-1)
    dsm.sampler.register_forward_hook(lambda module, args, output: fixed)
    out = dsm(x["proposal_features"] * valid.unsqueeze(-1), valid, x["visual"], None)
    assert out.selected.int().tolist() == [[1, 0, 0, 1, 0], [0, 0, 0, 1, 1], [1, 0, 0, 0, 1], [0, 0, 0, 0, 0]]


def test_scores_are_a_softmax_over_valid_items_and_padding_invariant() -> None:
    dsm = tiny_dsm().eval()
    x = inputs()
    out = dsm(**x)
    assert isinstance(out, DSMOutput)
    assert torch.allclose(out.scores.sum(-1), torch.ones(3))
    assert torch.all(out.scores[1, 3:] == 0)
    # more padded items (at the end or the front) change nothing for the real ones
    pad = torch.zeros(3, 2, DC)
    no = torch.zeros(3, 2, dtype=torch.bool)
    right = dsm(torch.cat([x["proposal_features"], pad], 1), torch.cat([x["proposal_valid"], no], 1),
                x["visual"], x["visual_mask"])
    left = dsm(torch.cat([pad, x["proposal_features"]], 1), torch.cat([no, x["proposal_valid"]], 1),
               x["visual"], x["visual_mask"])
    assert torch.allclose(right.scores[:, :P], out.scores, atol=1e-6)
    assert torch.allclose(left.scores[:, 2:], out.scores, atol=1e-6)
    assert torch.equal(right.selected[:, :P], out.selected) and torch.equal(left.selected[:, 2:], out.selected)
    assert torch.allclose(dsm_contextual_loss(right), dsm_contextual_loss(out), atol=1e-6)


def test_recency_embedding_makes_identical_items_distinguishable() -> None:
    x = inputs()
    same = x["proposal_features"][:, :1].expand(-1, P, -1).contiguous()
    valid = torch.ones(3, P, dtype=torch.bool)
    with_pos = tiny_dsm(recency_embedding=True).eval()(same, valid, x["visual"], x["visual_mask"]).scores
    without = tiny_dsm(recency_embedding=False).eval()(same, valid, x["visual"], x["visual_mask"]).scores
    assert torch.allclose(without, torch.full((3, P), 1 / P), atol=1e-6)  # order-blind without positions
    assert (with_pos.amax(-1) - with_pos.amin(-1)).min() > 1e-4


# ---------------------------------------------------------------------------------------------- gradients


def _logit_grads(dsm: DynamicSelectionModule, x: dict[str, torch.Tensor]) -> tuple[torch.Tensor, DSMOutput]:
    captured: list[torch.Tensor] = []

    def keep(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        output.retain_grad()
        captured.append(output)

    handle = dsm.sampler.register_forward_hook(keep)
    out = dsm(**x)
    handle.remove()
    dsm_contextual_loss(out).backward()
    return captured[0].grad.squeeze(-1), out  # (B, P)


def test_sampler_gradient_flows_only_through_the_ccl_weights() -> None:
    dsm = tiny_dsm(top_k=2)
    x = inputs()
    out = dsm(**x)
    assert out.selected.dtype == torch.bool and not out.selected.requires_grad
    summary = dsm.visual_summary(x["visual"], x["visual_mask"])
    detached = contextual_contrastive_loss(
        out.scores.detach(), out.selected, x["proposal_valid"], x["proposal_features"], summary, out.temperature
    )
    detached.backward()
    assert dsm.sampler.weight.grad is None and dsm.layers[0].self_attn.in_proj_weight.grad is None
    assert dsm.visual_proj.weight.grad is not None and dsm.temperature.grad is not None

    dsm.zero_grad()
    grads, out = _logit_grads(dsm, x)
    assert dsm.sampler.weight.grad.abs().sum() > 0
    # CCL is scale-invariant in the selected scores, so through the softmax: zero gradient on every unselected
    # logit, and the selected logits' gradients sum to zero (only their relative order is learned). "Zero" is up
    # to float32 rounding, which scales with the gradients: compare to the selected logits' (measured over 60
    # seeds: the unselected ones and the sums stay below 1.5e-6 of it).
    assert torch.all(grads[out.selected].abs().view(3, 2).amax(-1) > 1e-5)
    scale = grads[out.selected].abs().max()
    assert torch.all(grads[~out.selected].abs() < 1e-4 * scale)
    assert torch.all(grads.sum(-1).abs() < 1e-4 * scale)


def test_with_top1_the_sampler_gets_no_gradient() -> None:
    dsm = tiny_dsm(top_k=1)
    grads, out = _logit_grads(dsm, inputs())
    assert dsm_contextual_loss(out).item() > 0
    # zero up to float32 rounding, relative to a gradient of the same loss that is not zero (the visual
    # projection's; measured over 60 seeds: both ratios stay below 1e-7, a real sampler gradient is above 1e-3)
    scale = dsm.visual_proj.weight.grad.norm()
    assert scale > 0
    assert grads.abs().max() < 1e-5 * scale
    assert dsm.sampler.weight.grad.abs().max() < 1e-5 * scale


def test_no_nan_without_valid_items_or_frames() -> None:
    dsm = tiny_dsm()
    x = inputs()
    x["proposal_valid"][0] = False
    x["proposal_features"][0] = 0.0
    x["visual_mask"][1] = False
    out = dsm(**x)
    loss = dsm_contextual_loss(out)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(out.scores).all()
    assert torch.all(out.scores[0] == 0) and not out.selected[0].any()
    assert all(torch.isfinite(p.grad).all() for p in dsm.parameters() if p.grad is not None)

    dsm.zero_grad()
    x["proposal_valid"][:] = False
    out = dsm(**x)
    loss = dsm_contextual_loss(out)
    loss.backward()
    assert loss.item() == 0.0 and not out.selected.any()
    assert all(torch.all(p.grad == 0) for p in dsm.parameters() if p.grad is not None)


def test_temperature_is_learnable_and_clamped() -> None:
    dsm = tiny_dsm()
    assert isinstance(dsm.temperature, nn.Parameter) and dsm.temperature.requires_grad
    assert dsm.temperature.item() == pytest.approx(0.05)
    assert dsm(**inputs()).temperature.item() == pytest.approx(0.05)
    with torch.no_grad():
        dsm.temperature.fill_(-1.0)
    assert dsm(**inputs()).temperature.item() == pytest.approx(1e-3)


def test_visual_projection_only_when_widths_differ_or_forced() -> None:
    assert isinstance(tiny_dsm().visual_proj, nn.Linear)
    assert isinstance(tiny_dsm(visual_dim=DC).visual_proj, nn.Identity)
    assert isinstance(tiny_dsm(visual_dim=DC, project_visual=True).visual_proj, nn.Linear)
    with pytest.raises(ValueError, match="divisible"):
        tiny_dsm(n_heads=3)


@pytest.mark.parametrize("train_selection", ["sample", "top_k"])
def test_dsm_learns_to_select_the_item_matching_the_clip(train_selection: str) -> None:
    """One valid item per sample is the clip's content (frames = its feature + noise); the DSM must rank it
    first, whether training selects by sampling or by top-k. temp_init=0.5: at the paper's 0.05 the CCL saturates
    as soon as the item is among the selected, and this tiny run learns far more slowly."""
    dim, items, batch = 16, 6, 32

    def sample(gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        feats = F.normalize(torch.randn(batch, items, dim, generator=gen), dim=-1)
        n_valid = torch.randint(items // 2, items + 1, (batch,), generator=gen)
        valid = torch.arange(items)[None] < n_valid[:, None]
        target = (torch.rand(batch, generator=gen) * n_valid).long()
        frames = feats[torch.arange(batch), target][:, None] + 0.3 * torch.randn(batch, T, dim, generator=gen) / 4
        return feats * valid[..., None], valid, frames, target

    dsm = tiny_dsm(text_dim=dim, visual_dim=dim, n_layers=1, top_k=2, temp_init=0.5, train_selection=train_selection)
    opt = torch.optim.Adam(dsm.parameters(), lr=5e-3)
    gen = torch.Generator().manual_seed(100)
    for _ in range(150):
        feats, valid, frames, _ = sample(gen)
        loss = dsm_contextual_loss(dsm(feats, valid, frames))
        opt.zero_grad()
        loss.backward()
        opt.step()
    feats, valid, frames, target = sample(torch.Generator().manual_seed(999))
    with torch.no_grad():
        out = dsm.eval()(feats, valid, frames)
    accuracy = (out.scores.argmax(-1) == target).float().mean().item()
    assert accuracy >= 0.9


def test_default_dsm_has_no_recency_parameters() -> None:
    """The paper's DSM gives the items no position: the recency embedding is an opt-in ablation."""
    from moviead.models.configs import DSMConfig

    assert DSMConfig().recency_embedding is False
    dsm = DynamicSelectionModule(text_dim=DC, visual_dim=DV, n_heads=4)
    assert dsm.recency is None
    assert not [name for name, _ in dsm.named_parameters() if "recency" in name]
    opted = DynamicSelectionModule(text_dim=DC, visual_dim=DV, n_heads=4, max_proposal=10, recency_embedding=True)
    assert opted.recency is not None and tuple(opted.recency.weight.shape) == (10, DC)


def test_similarity_prior_adds_the_ccl_similarity_over_tau_to_the_logits() -> None:
    """Ours (off by default): logits + cos(T_i, v) / tau, with v the visual summary the CCL uses."""
    from moviead.models.configs import DSMConfig

    assert DSMConfig().similarity_prior is False
    plain, prior = tiny_dsm(temp_init=0.5), tiny_dsm(temp_init=0.5, similarity_prior=True)
    prior.load_state_dict(plain.state_dict())
    x = inputs()
    a, b = plain(**x), prior(**x)
    cosine = torch.einsum("bpd,bd->bp", F.normalize(x["proposal_features"], dim=-1),
                          F.normalize(a.visual_summary, dim=-1))
    valid = a.valid
    # scores are a softmax over each sample's valid items: the log-ratio to its first item moves by cos / tau
    for row in range(valid.shape[0]):
        keep = valid[row]
        shift = b.scores[row, keep].log() - a.scores[row, keep].log()
        want = cosine[row, keep] / 0.5
        torch.testing.assert_close(shift - shift[0], want - want[0], rtol=1e-4, atol=1e-4)
    assert torch.equal(a.visual_summary, b.visual_summary)


def test_hidden_dim_narrows_the_cpe_but_not_what_the_ccl_compares() -> None:
    """``hidden_dim`` (ours; None = the paper's CPE at the features' width): T_c enters through Linear(Dc -> Dh), the
    blocks and the sampler run at Dh, the CCL's candidates and visual summary stay at Dc; the narrow DSM still
    learns (its scores move) and its parameters shrink."""
    from moviead.models.configs import DSMConfig

    assert DSMConfig().hidden_dim is None
    paper = tiny_dsm(text_dim=64, visual_dim=DV, n_heads=4)
    narrow = tiny_dsm(text_dim=64, visual_dim=DV, n_heads=4, hidden_dim=8)
    assert isinstance(paper.input_proj, nn.Identity)
    assert tuple(narrow.input_proj.weight.shape) == (8, 64)
    assert narrow.layers[0].self_attn.embed_dim == 8 and narrow.sampler.in_features == 8
    assert sum(p.numel() for p in narrow.parameters()) < sum(p.numel() for p in paper.parameters()) / 5
    gen = torch.Generator().manual_seed(3)
    feats, valid = torch.randn(2, P, 64, generator=gen), torch.ones(2, P, dtype=torch.bool)
    out = narrow(feats, valid, torch.randn(2, T, DV, generator=gen))
    assert out.proposal_features.shape == (2, P, 64) and out.visual_summary.shape == (2, 64)
    assert out.scores.shape == (2, P) and int(out.selected.sum()) == 2 * 2
    dsm_contextual_loss(out).backward()
    assert narrow.input_proj.weight.grad is not None and narrow.input_proj.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="divisible"):
        tiny_dsm(text_dim=64, n_heads=4, hidden_dim=10)


@pytest.mark.parametrize("visual_dim", [DC, DV])
def test_lean_attention_equals_nn_multihead_attention(visual_dim: int) -> None:
    """The CPE's attention (``multihead_attention``) against ``nn.MultiheadAttention``'s own forward on the same
    weights: self-attention (one in-projection) and cross-attention with equal and different key widths."""
    from moviead.models.dsm import multihead_attention

    torch.manual_seed(0)
    self_attn = nn.MultiheadAttention(DC, 4, batch_first=True)
    cross = nn.MultiheadAttention(DC, 4, kdim=visual_dim, vdim=visual_dim, batch_first=True)
    x = inputs()
    items = x["proposal_features"]
    visual = torch.randn(3, T, visual_dim)
    item_ignore, visual_ignore = ~x["proposal_valid"], ~x["visual_mask"]
    want = self_attn(items, items, items, key_padding_mask=item_ignore, need_weights=False)[0]
    torch.testing.assert_close(multihead_attention(self_attn, items, items, item_ignore), want, rtol=1e-5, atol=1e-6)
    want = cross(items, visual, visual, key_padding_mask=visual_ignore, need_weights=False)[0]
    torch.testing.assert_close(multihead_attention(cross, items, visual, visual_ignore), want, rtol=1e-5, atol=1e-6)


def test_sampled_selection_draws_valid_items_with_the_softmax_frequencies() -> None:
    """Gumbel top-k: with k = 1, item j is drawn with probability softmax(logits)_j over the valid items (20,000
    draws: the tolerance is about 6 standard errors); with k >= the valid count every valid item; never a padded
    one; k distinct items otherwise."""
    torch.manual_seed(0)
    n = 20_000
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0, 5.0]).expand(n, -1)
    valid = torch.tensor([True, True, True, True, False]).expand(n, -1)
    drawn = sample_k_mask(logits, valid, 1)
    assert drawn.sum(-1).eq(1).all() and not drawn[:, 4].any()
    want = torch.softmax(logits[0, :4], dim=0)
    torch.testing.assert_close(drawn[:, :4].float().mean(0), want, rtol=0.0, atol=0.02)
    pairs = sample_k_mask(logits, valid, 2)
    assert pairs.sum(-1).eq(2).all() and not pairs[:, 4].any()
    few = torch.tensor([[False, True, False, True, False]])
    assert torch.equal(sample_k_mask(logits[:1], few, 3), few)
    assert not sample_k_mask(logits[:1], torch.zeros_like(few), 3).any()


def test_training_samples_its_selection_and_evaluation_takes_the_top_k() -> None:
    """eq. 7's Sampler (the default): in training mode the k items are drawn from s_c, so the selection varies
    between passes over the same input; in eval mode it is the top k of the same scores. train_selection="top_k"
    selects the top k in training too."""
    from moviead.models.configs import DSMConfig

    assert DSMConfig().train_selection == "sample"
    x = inputs(batch=3)
    dsm = tiny_dsm(temp_init=0.5)
    dsm.train()
    draws = [dsm(**x).selected for _ in range(20)]
    assert any(not torch.equal(draws[0], d) for d in draws[1:])
    assert all(torch.equal(d.sum(-1), x["proposal_valid"].sum(-1).clamp(max=2)) for d in draws)
    out = dsm.eval()(**x)
    assert torch.equal(out.selected, top_k_mask(out.scores, out.valid, 2))
    deterministic = tiny_dsm(temp_init=0.5, train_selection="top_k")
    deterministic.train()
    out = deterministic(**x)
    assert torch.equal(out.selected, top_k_mask(out.scores, out.valid, 2))
    with pytest.raises(ValueError, match="train_selection"):
        tiny_dsm(train_selection="gumbel")
