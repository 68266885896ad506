"""Contextual EM attention (DistinctAD, SPEC §5.3): cluster recovery, one E/M step by hand, gradient as configured."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from moviead.models.em_attention import ContextualEMAttention


def clustered_frames(n_clusters: int, per_cluster: int, dim: int, noise: float, seed: int) -> tuple[torch.Tensor, ...]:
    """(n_clusters * per_cluster, dim) unit frames around unit cluster means (near-orthogonal in ``dim``)."""
    g = torch.Generator().manual_seed(seed)
    means = F.normalize(torch.randn(n_clusters, dim, generator=g), dim=-1)
    points = means.repeat_interleave(per_cluster, 0) + noise * torch.randn(n_clusters * per_cluster, dim, generator=g)
    return F.normalize(points, dim=-1), means


def test_bases_recover_the_cluster_means_of_clip_and_context() -> None:
    frames, means = clustered_frames(n_clusters=4, per_cluster=24, dim=64, noise=0.05, seed=0)
    order = torch.randperm(len(frames), generator=torch.Generator().manual_seed(1))
    frames = frames[order].unsqueeze(0)  # (1, 96, 64), clusters interleaved
    current, context = frames[:, :16], frames[:, 16:]
    ema = ContextualEMAttention(64, num_bases=8, n_iters=3, lam=10.0).eval()
    out = ema(current, torch.ones(1, 16, dtype=torch.bool), context, torch.ones(1, 80, dtype=torch.bool))
    cos = out.bases[0] @ means.T  # (K, C)
    assert cos.max(dim=0).values.min() > 0.95, cos  # every cluster mean has a basis
    assert cos.max(dim=1).values.min() > 0.95, cos  # every basis is a cluster mean
    assert torch.allclose(out.bases.norm(dim=-1), torch.ones(1, 8))
    # each current frame is reconstructed as (nearly) its cluster's mean: the residual is the frame's own deviation
    # (norm about 0.37 here; the bases are the empirical means, within about 0.1 of the true ones)
    nearest = means[(current[0] @ means.T).argmax(dim=1)]  # (16, 64)
    assert (out.residual[0] - (current[0] - nearest)).norm(dim=-1).max() < 0.15


def test_one_em_step_and_projection_equal_a_hand_computation() -> None:
    """λ = ln 2, μ⁰ = I, X = [1,0], [0,2] (current) and [1,1] (context) plus one padded context frame.

    E-step: 2^(Xμᵀ) row-normalised: Z = [2/3, 1/3], [1/5, 4/5], [1/2, 1/2], [0, 0].
    M-step: μ₁ ∝ 2/3·[1,0] + 1/5·[0,2] + 1/2·[1,1] = [7/6, 9/10] ∝ [35, 27];
            μ₂ ∝ 1/3·[1,0] + 4/5·[0,2] + 1/2·[1,1] = [5/6, 21/10] ∝ [25, 63] (dividing by Σ_n Z only rescales).
    """
    ema = ContextualEMAttention(2, num_bases=2, n_iters=1, lam=math.log(2.0), normalize_input=False)
    with torch.no_grad():
        ema.initial_bases.copy_(torch.eye(2))
    current = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    context = torch.tensor([[[1.0, 1.0], [50.0, -7.0]]])
    out = ema(current, torch.ones(1, 2, dtype=torch.bool), context, torch.tensor([[True, False]]))

    z = torch.tensor([[2 / 3, 1 / 3], [1 / 5, 4 / 5], [1 / 2, 1 / 2], [0.0, 0.0]])
    assert torch.allclose(out.responsibilities[0], z, atol=1e-6)
    mu = torch.tensor([[35.0, 27.0], [25.0, 63.0]])
    mu = mu / mu.norm(dim=-1, keepdim=True)
    assert torch.allclose(out.bases[0], mu, atol=1e-6)

    # projection of the current frames onto the final bases, and the residual, element by element
    for t, x in enumerate(([1.0, 0.0], [0.0, 2.0])):
        scores = [math.exp(math.log(2.0) * (x[0] * m[0] + x[1] * m[1])) for m in mu.tolist()]
        weights = [s / sum(scores) for s in scores]
        recon = [sum(w * m[d] for w, m in zip(weights, mu.tolist())) for d in range(2)]
        assert out.projection[0, t].tolist() == pytest.approx(weights, abs=1e-6)
        assert out.residual[0, t].tolist() == pytest.approx([x[d] - recon[d] for d in range(2)], abs=1e-6)
    # output "both": the bases, then the residual, all real
    assert torch.allclose(out.tokens[0], torch.cat([out.bases[0], out.residual[0]]))
    assert out.mask.tolist() == [[True] * 4]


def test_outputs_and_masks_per_mode_with_padding() -> None:
    torch.manual_seed(0)
    current, context = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    cur_mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    ctx_mask = torch.tensor([[True] * 7, [False] * 7])  # the second sample has no context at all
    shapes = {"bases": (2, 4, 16), "residual": (2, 5, 16), "both": (2, 9, 16)}
    for mode, shape in shapes.items():
        out = ContextualEMAttention(16, num_bases=4, output=mode)(current, cur_mask, context, ctx_mask)
        assert out.tokens.shape == shape and out.mask.shape == shape[:2] and torch.isfinite(out.tokens).all()
        expected = {"bases": torch.ones(2, 4, dtype=torch.bool), "residual": cur_mask,
                    "both": torch.cat([torch.ones(2, 4, dtype=torch.bool), cur_mask], 1)}[mode]  # fmt: skip
        assert torch.equal(out.mask, expected)
        assert torch.equal(out.residual[1, 2:], torch.zeros(3, 16))
        assert torch.equal(out.responsibilities[1, 5:], torch.zeros(7, 4))
    # padded frames (whatever their values) change nothing
    noisy = current.clone()
    noisy[1, 2:] = 100.0
    ema = ContextualEMAttention(16, num_bases=4)
    clean_bases = ema(current, cur_mask, context, ctx_mask).bases
    assert torch.allclose(clean_bases, ema(noisy, cur_mask, context, ctx_mask).bases)
    with pytest.raises(ValueError, match="output must be one of"):
        ContextualEMAttention(16, output="mean")


def _reference(x: torch.Tensor, mu0: torch.Tensor, lam: float, n_iters: int, detach_before_last: bool) -> torch.Tensor:
    """SPEC §5.3 written out: n_iters E/M steps (the early ones without gradient when asked), then Σ residual²."""
    x_n = F.normalize(x, dim=-1)
    mu = F.normalize(mu0, dim=-1).unsqueeze(0)
    for i in range(n_iters):
        with torch.set_grad_enabled(not (detach_before_last and i < n_iters - 1)):
            z = torch.softmax(lam * x_n @ mu.transpose(1, 2), -1)
            mu = F.normalize((z / (z.sum(1, keepdim=True) + 1e-6)).transpose(1, 2) @ x_n, dim=-1)
    cur = x_n[:, :3]
    residual = cur - torch.softmax(lam * cur @ mu.transpose(1, 2), -1) @ mu
    return residual.pow(2).sum()


def test_gradient_flows_through_the_last_iteration_or_all_as_configured() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 9, 8)
    grads = {}
    for last_only in (True, False):
        ema = ContextualEMAttention(8, num_bases=3, n_iters=3, lam=5.0, output="residual", grad_last_only=last_only)
        assert ("initial_bases" in dict(ema.named_parameters())) is not last_only  # last-only: a buffer, no grad
        mu0 = ema.initial_bases.detach().clone()
        frames = x.clone().requires_grad_(True)
        out = ema(frames[:, :3], torch.ones(1, 3, dtype=torch.bool), frames[:, 3:], torch.ones(1, 6, dtype=torch.bool))
        out.residual.pow(2).sum().backward()

        ref_x, ref_mu0 = x.clone().requires_grad_(True), mu0.clone().requires_grad_(True)
        _reference(ref_x, ref_mu0, 5.0, 3, detach_before_last=last_only).backward()
        assert torch.allclose(frames.grad, ref_x.grad, atol=1e-5), last_only
        if last_only:
            assert ref_mu0.grad is None  # nothing reaches the initial bases
        else:
            assert ema.initial_bases.grad.abs().sum() > 0
            assert torch.allclose(ema.initial_bases.grad, ref_mu0.grad, atol=1e-5)
        grads[last_only] = frames.grad
    assert not torch.allclose(grads[True], grads[False], atol=1e-4)  # the two settings really differ


def test_one_iteration_learns_the_initial_bases_and_init_is_reproducible() -> None:
    torch.manual_seed(123)
    first = ContextualEMAttention(8, num_bases=3, n_iters=1)
    torch.manual_seed(456)
    second = ContextualEMAttention(8, num_bases=3, n_iters=1)
    assert isinstance(first.initial_bases, torch.nn.Parameter)  # one iteration: it carries the gradient
    assert torch.equal(first.initial_bases, second.initial_bases)  # seeded, whatever the global RNG
    assert torch.allclose(first.initial_bases.norm(dim=-1), torch.ones(3))


def test_bases_from_the_context_alone_ignore_the_clip_and_leave_its_own_content_in_the_residual() -> None:
    """``bases_from="context"``: the same hand example as above with the current frames left out of EM.

    X = [1,1] (context) and one padded context frame; μ⁰ = I, λ = ln 2: Z = [1/2, 1/2], so both bases are [1,1]/√2.
    The current frames are then projected onto them: any weights give [1,1]/√2, so the residual is x − [1,1]/√2.
    """
    ema = ContextualEMAttention(2, num_bases=2, n_iters=1, lam=math.log(2.0), normalize_input=False,
                                bases_from="context")
    with torch.no_grad():
        ema.initial_bases.copy_(torch.eye(2))
    current = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    context = torch.tensor([[[1.0, 1.0], [50.0, -7.0]]])
    out = ema(current, torch.ones(1, 2, dtype=torch.bool), context, torch.tensor([[True, False]]))
    root = 1 / math.sqrt(2.0)
    assert out.bases[0].tolist() == [pytest.approx([root, root], abs=1e-6)] * 2
    assert out.responsibilities[0].tolist() == [pytest.approx([0.5, 0.5], abs=1e-6), [0.0, 0.0]]
    assert out.residual[0].tolist() == [pytest.approx([1 - root, -root], abs=1e-6),
                                        pytest.approx([-root, 2 - root], abs=1e-6)]
    # the bases do not move when only the current clip changes; with the SPEC's X they do
    other = torch.tensor([[[5.0, -3.0], [-2.0, 9.0]]])
    moved = ema(other, torch.ones(1, 2, dtype=torch.bool), context, torch.tensor([[True, False]]))
    assert torch.equal(moved.bases, out.bases)
    spec = ContextualEMAttention(2, num_bases=2, n_iters=1, lam=math.log(2.0), normalize_input=False)
    with torch.no_grad():
        spec.initial_bases.copy_(torch.eye(2))
    spec_bases = spec(current, torch.ones(1, 2, dtype=torch.bool), context, torch.tensor([[True, False]])).bases
    spec_moved = spec(other, torch.ones(1, 2, dtype=torch.bool), context, torch.tensor([[True, False]])).bases
    assert (spec_bases - spec_moved).abs().max() > 0.1


def test_bases_from_the_context_without_any_neighbour_leave_the_whole_clip_as_residual() -> None:
    torch.manual_seed(0)
    current, context = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    cur_mask = torch.ones(2, 5, dtype=torch.bool)
    ctx_mask = torch.tensor([[True] * 7, [False] * 7])  # the second sample is a movie's first clip
    out = ContextualEMAttention(16, num_bases=4, bases_from="context")(current, cur_mask, context, ctx_mask)
    assert out.mask.tolist() == [[True] * 9, [False] * 4 + [True] * 5]  # its bases are left out of the prefix
    assert torch.equal(out.bases[1], torch.zeros(4, 16))
    assert torch.allclose(out.residual[1], F.normalize(current[1], dim=-1))
    assert (out.residual[0] - F.normalize(current[0], dim=-1)).norm(dim=-1).min() > 0.01
    with pytest.raises(ValueError, match="needs context_frames"):
        ContextualEMAttention(16, bases_from="context")(current, cur_mask)
    with pytest.raises(ValueError, match="bases_from must be one of"):
        ContextualEMAttention(16, bases_from="neighbours")
