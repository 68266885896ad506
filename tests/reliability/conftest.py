"""Fixtures of the bad-input suite: a tiny Stage-I export and an untrained toy Stage-II checkpoint (fast)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stages._stage2 import stage2_cfg, write_tiny_stage1_export, write_untrained_stage2_checkpoint


@pytest.fixture(scope="session")
def rel_stage1(toy_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny PME export with random weights."""
    return write_tiny_stage1_export(toy_root, tmp_path_factory.mktemp("rel-stage1") / "export")


@pytest.fixture()
def rel_checkpoint(toy_root: Path, rel_stage1: Path, tmp_path: Path) -> Path:
    """An untrained toy Stage-II checkpoint of this test's own (greedy, at most 4 new tokens): tests may replace it."""
    run = tmp_path / "run"
    cfg = stage2_cfg(toy_root, rel_stage1, tmp_path, "captioning.generation.num_beams=1",
                     "captioning.generation.max_new_tokens=4", "name=run")
    return write_untrained_stage2_checkpoint(cfg, run / "checkpoints" / "last.ckpt")
