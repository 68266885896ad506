"""Fixtures of the stage tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stages._stage2 import write_tiny_stage1_export


@pytest.fixture(scope="session")
def stage1_export(toy_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny PME export with random weights: Stage-II tests check Stage-II, not Stage-I quality."""
    return write_tiny_stage1_export(toy_root, tmp_path_factory.mktemp("stage1") / "export")
