"""``moviead recognise``: the toy Storyboard-v2 records re-labelled with two banks (the best-query bank and the actor
bank) give different labels and accuracies, each label the nearest query of the face's embedding within τ."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np

from moviead.cli import main


def _accuracy(out: str) -> tuple[float, int, int]:
    found = re.search(r"recognition accuracy: ([\d.]+) \((\d+)/(\d+) detections", out)
    assert found, out
    return float(found[1]), int(found[2]), int(found[3])


def _expected_labels(records: list[dict], bank: Path, tau: float) -> list[str]:
    """Each detection's label computed here with numpy: nearest query within τ, confidence >= 0.7, else other."""
    labels = []
    for r in records:
        names = sorted(p.stem for p in (bank / r["movie_id"]).glob("*.npy"))
        queries = np.concatenate([np.load(bank / r["movie_id"] / f"{n}.npy") for n in names]).astype(np.float64)
        for detection, face in zip(r["detect characters"], r["face embeddings"]):
            ((_, box),) = detection.items()
            d = np.linalg.norm(queries - np.asarray(face), axis=1)
            labels.append(names[int(d.argmin())] if d.min() < tau and box[4] >= 0.7 else "other")
    return labels


def test_recognise_relabels_with_the_given_bank(toy_root: Path, tmp_path: Path, capsys) -> None:
    board = toy_root / "storyboard"
    source = json.loads((board / "storyboard_v2.json").read_text(encoding="utf-8"))
    truth = [t for r in source for t in r["true characters"]]
    results = {}
    for bank in ("best_query", "actor_query"):
        out = tmp_path / f"{bank}.json"
        code = main(["recognise", "--records", str(board / "storyboard_v2.json"), "--bank", str(board / bank),
                     "--tau", "1.3", "--out", str(out)])
        printed = capsys.readouterr().out
        assert code == 0 and f"wrote {out}" in printed
        records = json.loads(out.read_text(encoding="utf-8"))
        labels = [name for r in records for d in r["detect characters"] for name in d]
        assert labels == _expected_labels(records, board / bank, 1.3)
        assert [t for r in records for t in r["true characters"]] == truth  # the ground truth is kept
        assert [r["synopses"] for r in records] == [r["synopses"] for r in source]  # the rest as it was
        results[bank] = labels, _accuracy(printed)
        assert "bank characters:" in printed and "unknown ('other' or not in the bank" in printed
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temporary file left
    (best_labels, best), (actor_labels, actor) = results["best_query"], results["actor_query"]
    assert best_labels != actor_labels
    assert best[2] == actor[2] and best[0] > actor[0] + 0.05  # the in-film best queries beat the actor photos
    # the accuracy counts the confident detections with their ground truth, as computed here
    detections = [d for r in source for d in r["detect characters"]]
    kept = [i for i, d in enumerate(detections) if next(iter(d.values()))[4] >= 0.7]
    assert best[2] == len(kept) and best[1] == sum(best_labels[i] == truth[i] for i in kept)
    # re-labelling the re-labelled file with the other bank scores against the same truth
    relabelled = tmp_path / "best_query.json"
    assert main(["recognise", "--records", str(relabelled), "--bank", str(board / "actor_query")]) == 0
    assert _accuracy(capsys.readouterr().out) == actor


def test_recognise_without_embeddings_is_an_error(toy_root: Path, tmp_path: Path, capsys) -> None:
    board = toy_root / "storyboard"
    records = json.loads((board / "storyboard_v2.json").read_text(encoding="utf-8"))
    with_faces = next(i for i, r in enumerate(records) if r["detect characters"])
    del records[with_faces]["face embeddings"]
    path = tmp_path / "no_faces.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    shutil.copytree(board / "best_query", tmp_path / "best_query")
    code = main(["recognise", "--records", str(path), "--bank", str(tmp_path / "best_query"),
                 "--out", str(tmp_path / "out.json")])
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "out.json").exists()
    assert records[with_faces]["global_id"] in err and "has no face embedding" in err and "face embeddings" in err


def test_recognise_refuses_a_bank_without_the_records_movies(toy_root: Path, tmp_path: Path, capsys) -> None:
    board = toy_root / "storyboard"
    movies = sorted(p.name for p in (board / "best_query").iterdir())
    shutil.copytree(board / "best_query" / movies[0], tmp_path / "best_query" / movies[0])
    code = main(["recognise", "--records", str(board / "storyboard_v2.json"), "--bank", str(tmp_path / "best_query"),
                 "--out", str(tmp_path / "out.json")])
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "out.json").exists()
    assert f"no best queries for {len(movies) - 1} movie(s)" in err and movies[1] in err
