"""Fixtures of the stage tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stages._stage2 import write_tiny_stage1_export


@pytest.fixture(scope="session")
def stage1_export(toy_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny PME export with random weights: Stage-II tests check Stage-II, not Stage-I quality."""
    return write_tiny_stage1_export(toy_root, tmp_path_factory.mktemp("stage1") / "export")


@pytest.fixture(scope="session")
def stage2_checkpoint(toy_root: Path, stage1_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained toy Stage-II checkpoint (DSM on, greedy, at most 12 new tokens) in a run folder of its own."""
    from tests.stages._stage2 import stage2_cfg, write_untrained_stage2_checkpoint

    run = tmp_path_factory.mktemp("stage2-run")
    cfg = stage2_cfg(toy_root, stage1_export, run, "captioning.generation.num_beams=1",
                     "captioning.generation.max_new_tokens=12")
    return write_untrained_stage2_checkpoint(cfg, run / "checkpoints" / "last.ckpt")
