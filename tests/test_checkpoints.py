"""moviead.checkpoints: atomic writes, weights-only loading that refuses code, RNG state round trips."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from moviead.checkpoints import (
    UnsafeCheckpointError,
    capture_rng_states,
    load_checkpoint_safely,
    restore_rng_states,
    save_checkpoint_atomically,
)


class RunsCodeWhenUnpickled:
    """What a tampered checkpoint carries: unpickling it calls ``os.mkdir(marker)`` (harmless here, and visible)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_saving_writes_the_checkpoint_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = save_checkpoint_atomically({"state_dict": {"w": torch.arange(3.0)}, "epoch": 2}, tmp_path / "last.ckpt")
    loaded = load_checkpoint_safely(path)
    assert loaded["epoch"] == 2 and torch.equal(loaded["state_dict"]["w"], torch.tensor([0.0, 1.0, 2.0]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_a_write_that_fails_midway_keeps_the_previous_file_intact(tmp_path: Path, monkeypatch) -> None:
    path = save_checkpoint_atomically({"step": 1, "w": torch.ones(1000)}, tmp_path / "last.ckpt")
    before = path.read_bytes()

    def torn_save(obj, handle):  # half a file, then the process "dies"
        handle.write(before[: len(before) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint_atomically({"step": 2, "w": torch.zeros(1000)}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
    monkeypatch.undo()
    assert load_checkpoint_safely(path)["step"] == 1


def test_a_checkpoint_carrying_code_is_refused_without_running_it(tmp_path: Path) -> None:
    path, marker = tmp_path / "tampered.ckpt", tmp_path / "payload-ran"
    torch.save({"state_dict": {"w": torch.ones(2)}, "payload": RunsCodeWhenUnpickled(marker)}, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_checkpoint_safely(path)
    message = str(err.value)
    assert str(path) in message and "not a plain-weights checkpoint" in message
    assert "mkdir" in message  # names what it found (posix.mkdir)
    assert not marker.exists()


def test_a_truncated_or_missing_checkpoint_fails_with_its_name(tmp_path: Path) -> None:
    path = save_checkpoint_atomically({"w": torch.ones(100)}, tmp_path / "a.ckpt")
    torn = tmp_path / "torn.ckpt"
    torn.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="torn.ckpt is not a complete"):
        load_checkpoint_safely(torn)
    with pytest.raises(FileNotFoundError, match="absent.ckpt"):
        load_checkpoint_safely(tmp_path / "absent.ckpt")


def test_rng_states_survive_a_weights_only_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    np.random.normal()  # a cached Gaussian is part of NumPy's state
    path = save_checkpoint_atomically({"rng": capture_rng_states()}, tmp_path / "rng.ckpt")
    expected = (torch.rand(4), np.random.normal(size=3), [random.random() for _ in range(3)])
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    restore_rng_states(load_checkpoint_safely(path)["rng"])
    assert torch.equal(torch.rand(4), expected[0])
    assert np.array_equal(np.random.normal(size=3), expected[1])
    assert [random.random() for _ in range(3)] == expected[2]
