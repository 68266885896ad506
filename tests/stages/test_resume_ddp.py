"""Resume under DDP (2 gloo processes): each rank's RNG state is kept, and each rank's sampler share is disjoint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from tests._dist import free_port, run_ranks

WORLD = 2


def _worker(rank: int, port: int, out_dir: str) -> None:
    from moviead.checkpoints import capture_rng_states, gather_from_ranks
    from moviead.data.resumable_sampler import ResumableShuffleSampler

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(100 + rank)  # ranks draw different dropout masks
        gathered = gather_from_ranks({"rank": rank, "rng": capture_rng_states()})
        sampler = ResumableShuffleSampler(range(9), seed=0)  # rank and world size from the process group
        torch.save({"gathered": gathered, "share": list(sampler), "next": torch.rand(3)}, Path(out_dir) / f"{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.integration
def test_every_rank_keeps_its_own_rng_state_and_data_share(tmp_path: Path) -> None:
    run_ranks(_worker, WORLD, free_port(), str(tmp_path))
    results = [torch.load(tmp_path / f"{rank}.pt", weights_only=True) for rank in range(WORLD)]
    gathered = results[0]["gathered"]
    assert [state["rank"] for state in gathered] == [0, 1]
    for rank in range(WORLD):  # rank r's saved state replays rank r's next draws
        torch.set_rng_state(gathered[rank]["rng"]["torch"])
        assert torch.equal(torch.rand(3), results[rank]["next"])
    order = torch.randperm(9, generator=torch.Generator().manual_seed(0)).tolist()
    padded = order + order[:1]
    assert results[0]["share"] == padded[0::2] and results[1]["share"] == padded[1::2]
