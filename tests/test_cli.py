"""The CLI commands of the foundation, run in-process through ``main(argv)``."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from moviead.cli import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _checksums(root: Path) -> dict[str, str]:
    sums = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix == ".h5":
            with h5py.File(path) as h5:
                digest = hashlib.sha256()
                h5.visititems(lambda name, obj: digest.update(name.encode() + np.ascontiguousarray(obj[()]).tobytes())
                              if isinstance(obj, h5py.Dataset) else None)
                sums[str(path.relative_to(root))] = digest.hexdigest()
        else:
            sums[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return sums


@pytest.mark.integration
def test_make_toy_data_twice_with_one_seed_gives_identical_checksums(tmp_path: Path, capsys) -> None:
    assert main(["make-toy-data", "--out", str(tmp_path / "a"), "--movies", "3", "--seed", "5"]) == 0
    assert main(["make-toy-data", "--out", str(tmp_path / "b"), "--movies", "3", "--seed", "5"]) == 0
    assert main(["make-toy-data", "--out", str(tmp_path / "c"), "--movies", "3", "--seed", "6"]) == 0
    a, b, c = (_checksums(tmp_path / x) for x in "abc")
    assert a == b and len(a) > 10
    assert a != c
    assert "wrote the toy data set" in capsys.readouterr().out


@pytest.mark.integration
def test_data_summary_prints_counts_and_context(toy_root: Path, capsys) -> None:
    code = main(["data-summary", str(CONFIGS / "data" / "toy.yaml"), f"data.root={toy_root / 'mad'}",
                 "--splits", "train", "val"])
    assert code == 0
    out = capsys.readouterr().out
    for label in ("movies", "ADs", "mean AD duration (s)", "feature dim", "context ADs / AD", "ADs with context"):
        assert label in out
    assert "768" in out


def test_data_summary_bad_root_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["data-summary", str(CONFIGS / "data" / "mad.yaml"), f"data.root={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "mad-v2-ad-named.csv" in err and "file not found" in err
