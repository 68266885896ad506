"""Stage-I validation retrieval under DDP: every rank scores the whole validation set, not its own share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from moviead.losses import PMELoss, vtc_similarities
from moviead.metrics.retrieval import retrieval_metrics
from moviead.models.qformer import PMEConfig, PretrainedMovieEncoder
from moviead.stages.alignment_pme import PMEAlignmentStage
from tests._dist import free_port, run_ranks

WORLD, N, NQ, E = 2, 10, 3, 8


def _val_items() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    text = torch.nn.functional.normalize(torch.randn(N, E, generator=gen), dim=-1)
    video = torch.nn.functional.normalize(text[:, None] + 0.8 * torch.randn(N, NQ, E, generator=gen), dim=-1)
    return video, text


def _stage() -> PMEAlignmentStage:
    tiny = PMEConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                     num_query_tokens=2, vision_width=8, embed_dim=8, vocab_size=32)
    return PMEAlignmentStage(PretrainedMovieEncoder(tiny), PMELoss(), optim=None)  # type: ignore[arg-type]


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        video, text = _val_items()
        rows = slice(0, 4) if rank == 0 else slice(4, N)  # unequal shares, as a last partial batch gives
        stage = _stage()
        all_video, all_text = stage.gather_validation(video[rows]), stage.gather_validation(text[rows])
        _, sim_t2v, _ = vtc_similarities(all_video, all_text, gather=False)
        torch.save(retrieval_metrics(sim_t2v), Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.integration  # two forked gloo processes, about a second
def test_validation_metrics_under_ddp_equal_single_process(tmp_path: Path) -> None:
    run_ranks(_worker, WORLD, free_port(), str(tmp_path))
    video, text = _val_items()
    _, sim_t2v, _ = vtc_similarities(video, text, gather=False)
    expected = retrieval_metrics(sim_t2v)
    assert 0.0 < expected["t2v_r1"] < 100.0  # a non-trivial case: per-rank metrics would differ
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got == pytest.approx(expected)
