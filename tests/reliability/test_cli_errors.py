"""Bad flags and missing inputs: one ``moviead <command>: error: ...`` line, exit 2, before torch is imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from moviead.cli import main

REPO = Path(__file__).resolve().parents[2]
EVALUATE = ["evaluate", "--checkpoint", "CKPT"]
DESCRIBE = ["describe", "--features", "F", "--movie", "m", "--checkpoint", "CKPT", "--out", "OUT"]

BAD_FLAGS = [  # (arguments, the error after "argument ")
    ([*EVALUATE, "--beams", "0"], "--beams: must be >= 1, got 0"),
    ([*EVALUATE, "--beams", "two"], "--beams: expected an integer >= 1, got 'two'"),
    ([*EVALUATE, "--batch-size", "0"], "--batch-size: must be >= 1, got 0"),
    ([*EVALUATE, "--batch-movies", "-3"], "--batch-movies: must be >= 1, got -3"),
    ([*EVALUATE, "--limit-movies", "0"], "--limit-movies: must be >= 1, got 0"),
    ([*EVALUATE, "--mode", "local,sideways"],
     "--mode: unknown mode 'sideways': choose from local, oracle, recurrent (comma-separated)"),
    ([*EVALUATE, "--export", "vtt,mp4"], "--export: unknown format 'mp4': choose from vtt, srt (comma-separated)"),
    ([*DESCRIBE, "--window", "0"], "--window: must be > 0 seconds, got 0"),
    ([*DESCRIBE, "--min-gap", "-1"], "--min-gap: must be > 0 seconds, got -1"),
    ([*DESCRIBE, "--max-cue", "nan"], "--max-cue: must be > 0 seconds, got nan"),
    ([*DESCRIBE, "--window", "inf"], "--window: must be > 0 seconds, got inf"),
]


@pytest.mark.parametrize(("argv", "error"), BAD_FLAGS, ids=[" ".join(a[-2:]) for a, _ in BAD_FLAGS])
def test_a_bad_flag_is_one_line_and_exit_2(argv: list[str], error: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err == f"moviead {argv[0]}: error: argument {error} (see moviead {argv[0]} --help)\n"


PROBE = """
import sys, time
began = time.perf_counter()
from moviead.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit_:  # argparse's own errors
    code = exit_.code
print(code, 'torch' in sys.modules, 'lightning' in sys.modules, round(time.perf_counter() - began, 3))
"""


def _probe(tmp_path: Path, *argv: str) -> tuple[int, bool, bool, float, str]:
    """Run ``main(argv)`` in a fresh interpreter: its exit code, whether torch / Lightning got imported, its time."""
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False)
    code, torch, lightning, seconds = done.stdout.split()
    return int(code), torch == "True", lightning == "True", float(seconds), done.stderr


def test_a_missing_checkpoint_is_refused_before_torch_loads(tmp_path: Path) -> None:
    code, torch, _, _, err = _probe(tmp_path, "evaluate", "--checkpoint", "nowhere.ckpt")
    assert (code, torch) == (2, False)
    assert err == "moviead evaluate: error: --checkpoint nowhere.ckpt: no such file or folder\n"


def test_a_bad_data_override_is_refused_before_torch_loads(tmp_path: Path) -> None:
    (tmp_path / "x.ckpt").write_bytes(b"")
    code, torch, _, _, err = _probe(tmp_path, "evaluate", "--checkpoint", "x.ckpt", "--data", "loader.batch_size=0")
    assert (code, torch) == (2, False)
    assert err == "moviead evaluate: error: config: loader.batch_size=0 is out of range: it must be >= 1\n"


def test_a_misspelt_data_key_is_refused_before_torch_loads(tmp_path: Path) -> None:
    (tmp_path / "x.ckpt").write_bytes(b"")
    code, torch, _, _, err = _probe(tmp_path, "evaluate", "--checkpoint", "x.ckpt", "--data", "data.fsp=5")
    assert (code, torch) == (2, False)
    assert err.startswith("moviead evaluate: error: override: unknown key 'data.fsp'. Did you mean 'data.fps'?")


def test_describe_with_missing_subtitles_is_refused_before_torch_loads(tmp_path: Path) -> None:
    for name in ("x.ckpt", "f.h5"):
        (tmp_path / name).write_bytes(b"")
    code, torch, _, _, err = _probe(tmp_path, "describe", "--features", "f.h5", "--movie", "m", "--checkpoint",
                                    "x.ckpt", "--out", "out", "--subtitles", "film.srt")
    assert (code, torch) == (2, False)
    assert err == "moviead describe: error: --subtitles film.srt: no such file or folder\n"
    assert not (tmp_path / "out").exists()  # nothing written


def test_a_bad_training_config_is_refused_before_lightning_loads(tmp_path: Path) -> None:
    code, torch, lightning, _, err = _probe(tmp_path, "train", str(REPO / "configs/stage1/pme.yaml"), "data.fps=-1")
    assert (code, torch, lightning) == (2, False, False)
    assert err == "moviead train: error: config: data.fps=-1.0 is out of range: it must be > 0\n"


def test_overwrite_and_resume_together_are_refused(tmp_path: Path) -> None:
    code, _, lightning, _, err = _probe(tmp_path, "train", str(REPO / "configs/stage1/pme.yaml"), "--resume",
                                        "--overwrite")
    assert (code, lightning) == (2, False)
    assert "give one of them" in err and len(err.splitlines()) == 1


def test_a_bad_flag_errors_before_torch_loads(tmp_path: Path) -> None:
    """What makes a bad flag fail fast: argparse's error comes before torch is imported. (How fast is a speed
    figure, not a test's business: no timing here.)"""
    code, torch, _, _, err = _probe(tmp_path, "evaluate", "--beams", "0", "--checkpoint", "x")
    assert (code, torch) == (2, False)
    assert err.startswith("moviead evaluate: error: argument --beams")
