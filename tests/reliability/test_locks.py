"""One writer per output folder: a second process refuses at once, naming the holder's pid; nothing is written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from moviead.cli import main
from moviead.evaluation.locks import FolderLockedError, acquire, folder_lock, is_held_here, release
from moviead.evaluation.predictions import PredictionStore
from tests.stages._stage2 import STAGE2

HOLDER = """
import sys
from moviead.evaluation.locks import acquire
acquire(sys.argv[1])
print("locked", flush=True)
sys.stdin.read()  # hold until the test closes our stdin
"""


@pytest.fixture()
def held(tmp_path: Path):
    """A folder locked by another process; yields (folder, that process)."""
    folder = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield folder, proc
    proc.kill()
    proc.wait()


def test_a_second_process_is_refused_at_once_naming_the_pid(held) -> None:
    folder, proc = held
    with pytest.raises(FolderLockedError) as err:
        acquire(folder)
    assert str(err.value) == (f"{folder} is being written by another moviead process (pid {proc.pid}); wait for it "
                              "to finish, or choose another output folder")
    assert not is_held_here(folder)


def test_evaluate_into_a_locked_folder_exits_2_and_writes_nothing(held, rel_checkpoint: Path, capsys) -> None:
    folder, proc = held
    argv = ["evaluate", "--checkpoint", str(rel_checkpoint), "--mode", "local", "--split", "train", "--limit-movies",
            "1", "--out", str(folder), "--bertscore-model", "none", "--no-progress"]
    assert main(argv) == 2
    # refused before the model loads: not even transformers' progress bars come before the one line
    assert capsys.readouterr().err == (f"moviead evaluate: error: {folder} is being written by another moviead "
                                       f"process (pid {proc.pid}); wait for it to finish, or choose another output "
                                       "folder\n")
    assert sorted(p.name for p in folder.iterdir()) == [".lock"]


def test_a_prediction_store_in_a_locked_folder_is_refused(held) -> None:
    folder, _ = held
    with pytest.raises(FolderLockedError):
        PredictionStore(folder, {"k": 1})
    assert not (folder / "predictions.jsonl").exists()


def test_training_into_a_locked_run_folder_is_refused(held, toy_root: Path, rel_stage1: Path) -> None:
    from moviead.config import load_config
    from moviead.stages.train import train

    folder, proc = held
    cfg = load_config(STAGE2, [f"data.root={toy_root / 'mad'}", f"captioning.stage1={rel_stage1}",
                               f"trainer.default_root_dir={folder.parent}", f"name={folder.name}",
                               "trainer.resume=true"])
    with pytest.raises(FolderLockedError, match=f"pid {proc.pid}"):
        train(cfg)
    assert sorted(p.name for p in folder.iterdir()) == [".lock"]


def test_the_lock_goes_with_a_killed_holder(held) -> None:
    folder, proc = held
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with folder_lock(folder):
        assert (folder / ".lock").read_text() == f"{os.getpid()}\n"
    assert not is_held_here(folder)


def test_the_lock_is_reentrant_within_one_process(tmp_path: Path) -> None:
    with folder_lock(tmp_path):
        acquire(tmp_path)  # e.g. evaluate holding <out>, then a PredictionStore below it
        release(tmp_path)
        assert is_held_here(tmp_path)
        PredictionStore(tmp_path / "train-local", {"k": 1})
    assert not is_held_here(tmp_path)
