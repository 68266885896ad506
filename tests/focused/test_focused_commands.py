"""``moviead build-char-bank`` (from labelled embeddings, and its errors) and ``moviead sweep-recognition``."""

from __future__ import annotations

import numpy as np

from moviead.cli import main
from moviead.data.formats.storyboard import read_best_query_bank
from moviead.focused.face_sets import make_face_set, write_face_set


def _faces(tmp_path):
    rng = np.random.default_rng(0)
    anna = np.array([1.0, 0, 0, 0]) + 0.05 * rng.standard_normal((6, 4))
    ben = np.array([0, 1.0, 0, 0]) + 0.05 * rng.standard_normal((6, 4))
    stranger = np.array([[0, 0, 1.0, 0]])
    faces = make_face_set(np.concatenate([anna, ben, stranger]), ["ANNA"] * 6 + ["BEN"] * 6 + ["other"],
                          ["tt01"] * 13)
    return write_face_set(faces, tmp_path / "faces.npz")


def test_build_char_bank_from_embeddings_then_sweep(tmp_path, capsys) -> None:
    faces = _faces(tmp_path)
    assert main(["build-char-bank", "--embeddings", str(faces), "--out", str(tmp_path / "best_query")]) == 0
    out = capsys.readouterr().out
    assert "wrote 2 best queries for 1 movies" in out and "tt01: 2 characters" in out
    assert sorted(read_best_query_bank(tmp_path / "best_query")["tt01"]) == ["ANNA", "BEN"]
    code = main(["sweep-recognition", str(faces), "--bank", str(tmp_path / "best_query"),
                 "--thresholds", "0.5", "1.3", "1.5"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "13 of 13 faces with confidence >= 0.7"
    assert lines[2].split() == ["0.50", "1.0000", "13"]  # the stranger is 1.41 from both queries
    assert lines[4].split() == ["1.50", "0.9231", "12"]  # ... which τ = 1.5 takes for a character
    assert lines[-1] == "best threshold: 0.5 (accuracy 1.0000)"


def test_build_char_bank_errors(tmp_path, capsys) -> None:
    (tmp_path / "portraits" / "tt01" / "ANNA").mkdir(parents=True)
    assert main(["build-char-bank", str(tmp_path / "portraits"), "--out", str(tmp_path / "bq")]) == 2
    assert "InceptionResnetV1 weights not found" in capsys.readouterr().err
    assert main(["build-char-bank", "--out", str(tmp_path / "bq")]) == 2
    assert "give a portrait folder or --embeddings" in capsys.readouterr().err
    assert main(["sweep-recognition", str(_faces(tmp_path)), "--bank", str(tmp_path / "nowhere")]) == 2
    assert "no best-query vectors found" in capsys.readouterr().err
