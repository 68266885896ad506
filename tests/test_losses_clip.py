"""CLIP adaptation losses (SPEC §4.2) against hand-computed values; frame-word MIL; DDP with ragged T."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from _dist import free_port, run_ranks

from moviead.losses import clip_adaptation_loss, clip_global_loss, frame_word_loss, frame_word_similarity


def ce(logits: list[float], target: int) -> float:
    """Cross-entropy of one row, written out: -x_y + log sum_c exp(x_c)."""
    return -logits[target] + math.log(sum(math.exp(x) for x in logits))


def sym_info_nce(sim: list[list[float]], temp: float) -> float:
    """Symmetric InfoNCE of a 2x2 video x text similarity matrix, written out row by row."""
    v2t = [ce([sim[i][0] / temp, sim[i][1] / temp], i) for i in range(2)]
    t2v = [ce([sim[0][j] / temp, sim[1][j] / temp], j) for j in range(2)]
    return (sum(v2t) / 2 + sum(t2v) / 2) / 2


def test_clip_global_loss_hand_computed() -> None:
    # videos [1,0], [.6,.8]; texts [.8,.6], [0,1]; given unnormalised (x3, x0.5) to check the normalisation.
    # cos: v0t0 = .8, v0t1 = 0, v1t0 = .96, v1t1 = .8
    video = torch.tensor([[3.0, 0.0], [1.8, 2.4]])
    text = torch.tensor([[0.4, 0.3], [0.0, 0.5]])
    temp = 0.5
    expected = sym_info_nce([[0.8, 0.0], [0.96, 0.8]], temp)
    assert clip_global_loss(video, text, temp).item() == pytest.approx(expected, rel=1e-6)
    # the same value in closed form: a two-way cross-entropy is log(1 + exp(other - own)); both directions hold the
    # margins -0.8/temp and (0.96 - 0.8)/temp once each
    closed = (math.log1p(math.exp(-0.8 / temp)) + math.log1p(math.exp(0.16 / temp))) / 2
    assert clip_global_loss(video, text, temp).item() == pytest.approx(closed, rel=1e-6)
    assert clip_global_loss(video, text, 2 * temp).item() == pytest.approx(
        (math.log1p(math.exp(-0.4 / temp)) + math.log1p(math.exp(0.08 / temp))) / 2, rel=1e-6)


# Video 0: frames [1,0], [0,1], padding frame [.6,.8] (would match word t0w1 exactly if counted).
# Video 1: frame [.8,.6], padding frames [1,0], [0,1].
# Text 0: words [1,0], [.6,.8], padding word [-1,0]. Text 1: word [0,1], masked word [1,0] (a stopword).
FRAMES = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], [[0.8, 0.6], [1.0, 0.0], [0.0, 1.0]]])
FRAME_MASK = torch.tensor([[True, True, False], [True, False, False]])
WORDS = torch.tensor([[[1.0, 0.0], [0.6, 0.8], [-1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]])
WORD_MASK = torch.tensor([[True, True, False], [True, False, False]])
# s(v0,t0) = mean(max(1, 0), max(.6, .8)) = .9     s(v0,t1) = max(0, 1) = 1
# s(v1,t0) = mean(.8, .96) = .88                    s(v1,t1) = .6
S_FW = [[0.9, 1.0], [0.88, 0.6]]


def test_frame_word_similarity_hand_computed() -> None:
    sim = frame_word_similarity(FRAMES * 2.0, FRAME_MASK, WORDS * 0.5, WORD_MASK)
    assert sim.shape == (2, 2)
    assert torch.allclose(sim, torch.tensor(S_FW), atol=1e-6)


def test_frame_word_loss_hand_computed() -> None:
    temp = 0.5
    loss = frame_word_loss(FRAMES, FRAME_MASK, WORDS, WORD_MASK, temp)
    assert loss.item() == pytest.approx(sym_info_nce(S_FW, temp), rel=1e-6)


def test_frame_word_mil_max_over_frames_and_padding_ignored() -> None:
    gen = torch.Generator().manual_seed(0)
    word = torch.tensor([0.0, 0.0, 1.0, 0.0])
    frames = torch.randn(1, 6, 4, generator=gen)
    frames[..., 2] = -frames[..., 2].abs()  # every other frame points away from the word
    frames[0, 3] = 2.0 * word  # only frame 3 shows it
    words = torch.stack([word, -word, torch.ones(4)])[None]  # (1, 3, 4): the word, then two masked entries
    mask_w = torch.tensor([[True, False, False]])
    all_frames = torch.ones(1, 6, dtype=torch.bool)
    assert frame_word_similarity(frames, all_frames, words, mask_w).item() == pytest.approx(1.0, rel=1e-6)
    hidden = all_frames.clone()
    hidden[0, 3] = False  # the matching frame is padding: it must not win the max
    assert frame_word_similarity(frames, hidden, words, mask_w).item() < 0
    both = torch.tensor([[True, True, False]])  # counting the masked word -word (best cos < 1) lowers the mean
    assert frame_word_similarity(frames, all_frames, words, both).item() < 0.99


def test_clip_adaptation_loss_combines_and_switches_off() -> None:
    video, text = torch.randn(2, 2), torch.randn(2, 2)
    out = clip_adaptation_loss(video, text, FRAMES, FRAME_MASK, WORDS, WORD_MASK, 0.1, 0.5, lambda_fw=0.3)
    assert out["global"].item() == pytest.approx(clip_global_loss(video, text, 0.1).item())
    assert out["fw"].item() == pytest.approx(sym_info_nce(S_FW, 0.5), rel=1e-6)
    assert out["loss"].item() == pytest.approx(out["global"].item() + 0.3 * out["fw"].item())
    off = clip_adaptation_loss(video, text, FRAMES, FRAME_MASK, WORDS, WORD_MASK, 0.1, 0.5, lambda_fw=0.0)
    assert "fw" not in off and off["loss"].item() == pytest.approx(out["global"].item())
    with pytest.raises(ValueError):
        clip_adaptation_loss(video, text, FRAMES, FRAME_MASK, WORDS, WORD_MASK, 0.1, 0.5, lambda_fw=-1.0)


def test_temperatures_get_gradients() -> None:
    temp_g, temp_fw = torch.tensor(0.07, requires_grad=True), torch.tensor(0.07, requires_grad=True)
    frames = FRAMES.clone().requires_grad_(True)
    out = clip_adaptation_loss(torch.randn(2, 2), torch.randn(2, 2), frames, FRAME_MASK, WORDS, WORD_MASK,
                               temp_g, temp_fw)
    out["loss"].backward()
    assert temp_g.grad is not None and temp_fw.grad is not None and torch.isfinite(frames.grad).all()
    assert frames.grad[1, 1:].abs().sum() == 0  # padding frames get no gradient


# ------------------------------------------------------------------------------------------------- DDP

WORLD, LOCAL_B, E, L = 2, 3, 4, 5


def _ddp_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.nn.Linear]:
    gen = torch.Generator().manual_seed(0)
    frames = torch.randn(WORLD * LOCAL_B, 4, E, generator=gen)  # rank 0 uses T = 3, rank 1 T = 4
    frame_mask = torch.ones(WORLD * LOCAL_B, 4, dtype=torch.bool)
    frame_mask[:LOCAL_B, 3] = False
    frame_mask[1, 2] = False
    words = torch.randn(WORLD * LOCAL_B, L, E, generator=gen)
    word_mask = torch.rand(WORLD * LOCAL_B, L, generator=gen) > 0.3
    word_mask[:, 0] = True
    torch.manual_seed(0)
    return frames, frame_mask, words, word_mask, torch.nn.Linear(E, E)


def _ddp_worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        frames, frame_mask, words, word_mask, model = _ddp_data()
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        rows, length = slice(rank * LOCAL_B, (rank + 1) * LOCAL_B), 3 + rank  # ragged T across ranks
        frame_emb = ddp(frames[rows, :length])
        video = frame_emb.mean(dim=1)
        out = clip_adaptation_loss(video, words[rows].mean(dim=1), frame_emb, frame_mask[rows, :length],
                                   words[rows], word_mask[rows], torch.tensor(0.2), torch.tensor(0.3))
        out["loss"].backward()
        mean_loss = out["loss"].detach().clone()
        dist.all_reduce(mean_loss)
        torch.save({"loss": mean_loss / WORLD, "grads": {n: p.grad for n, p in model.named_parameters()}},
                   Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()




@pytest.mark.integration  # two forked gloo processes, under a second
def test_clip_losses_ddp_match_single_process(tmp_path: Path) -> None:
    run_ranks(_ddp_worker, WORLD, free_port(), str(tmp_path))
    frames, frame_mask, words, word_mask, model = _ddp_data()
    frame_emb = model(frames)
    video = torch.cat([frame_emb[:LOCAL_B, :3].mean(dim=1), frame_emb[LOCAL_B:].mean(dim=1)])
    out = clip_adaptation_loss(video, words.mean(dim=1), frame_emb, frame_mask, words, word_mask,
                               torch.tensor(0.2), torch.tensor(0.3))
    out["loss"].backward()
    for rank in range(WORLD):
        result = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert result["loss"].item() == pytest.approx(out["loss"].item(), rel=1e-5)
        for name, param in model.named_parameters():
            # near-zero entries: float32 rounding relative to the gradient's scale (measured: below 2.5e-7 of it)
            scale = param.grad.abs().max()
            assert torch.allclose(result["grads"][name], param.grad, rtol=1e-5, atol=1e-5 * scale), name
