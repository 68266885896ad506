"""Honest selection, run side: a run records the movies its best.ckpt is selected on, ``evaluate`` says so and warns
when it scores those movies, and ``data-summary`` refuses splits that share movies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moviead.cli import main
from moviead.evaluation.commands import report_selection
from moviead.evaluation.selection import SELECTION_FILE, describe_selection, read_selection, write_selection

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
         "trainer.num_sanity_val_steps=0", "trainer.enable_progress_bar=false", "loader.num_workers=0",
         "logger.csv=false"]


def _run(tmp_path: Path, movies: list[str]) -> Path:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.ckpt").write_bytes(b"weights")
    write_selection(run, "val/cider", "toy", movies)
    return run


def test_selection_json_is_written_atomically_and_read_back(tmp_path: Path) -> None:
    path = write_selection(tmp_path, "val/t2v_r1", "mad", ["b", "a", "a"])
    assert json.loads(path.read_text()) == {"monitor": "val/t2v_r1", "split": "val", "dataset": "mad",
                                            "movies": ["a", "b"]}
    assert not list(tmp_path.glob("*.tmp")) and read_selection(tmp_path)["movies"] == ["a", "b"]
    (tmp_path / SELECTION_FILE).write_text("{not json")
    assert read_selection(tmp_path) is None and read_selection(tmp_path / "missing") is None


def test_evaluate_names_the_checkpoint_and_its_selection_split(tmp_path: Path, capsys) -> None:
    run = _run(tmp_path, ["m1", "m2"])
    report = report_selection(run / "checkpoints" / "best.ckpt", "test", ["m3", "m4"])
    out, err = capsys.readouterr()
    assert report.warning is None and err == ""
    assert out.strip() == (f"checkpoint: {run / 'checkpoints' / 'best.ckpt'} (selected on the val split of toy "
                           "(2 movies) by val/cider)")


def test_evaluate_warns_when_it_scores_the_selection_movies(tmp_path: Path, capsys) -> None:
    run = _run(tmp_path, ["m1", "m2"])
    report = report_selection(run / "checkpoints" / "best.ckpt", "val", ["m2", "m1", "m9"])
    err = capsys.readouterr().err
    assert report.overlap == ("m1", "m2")
    assert err.startswith("WARNING: the val split shares 2 movie(s)") and "optimistic" in err
    assert "selected on" in err and "val/cider" in err


def test_last_checkpoint_and_unknown_selection(tmp_path: Path) -> None:
    last = describe_selection(tmp_path / "run" / "checkpoints" / "last.ckpt",
                              {"monitor": "val/cider", "split": "val", "dataset": "toy", "movies": ["m1"]}, "val",
                              ["m1"])
    assert "final weights" in last.line and last.warning is not None and "validated on" in last.warning
    unknown = describe_selection(tmp_path / "best.ckpt", None, "test", ["m1"])
    assert "selection split unknown" in unknown.line and unknown.warning is None


def _bad_split_root(toy_root: Path, tmp_path: Path, split: dict[str, list[str]]) -> Path:
    root = tmp_path / "mad"
    root.mkdir()
    for path in (toy_root / "mad").iterdir():
        if path.is_file() and path.name != "mad_split.json":
            (root / path.name).symlink_to(path)
    (root / "mad_split.json").write_text(json.dumps(split))
    return root


def test_data_summary_refuses_a_split_file_whose_splits_share_movies(toy_root: Path, tmp_path: Path,
                                                                      capsys) -> None:
    split = json.loads((toy_root / "mad" / "mad_split.json").read_text())
    leaked = split["EVAL"][0]
    root = _bad_split_root(toy_root, tmp_path, {"TRAIN": split["TRAIN"], "EVAL": split["EVAL"],
                                                "VAL": [split["TRAIN"][0], leaked]})
    # the VAL key holds a test movie: the loader itself refuses it
    code = main(["data-summary", str(CONFIGS / "data" / "toy.yaml"), f"data.root={root}", "data.mad.val_split=VAL"])
    assert code == 2 and "also in the test key" in capsys.readouterr().err
    # TRAIN holds a test movie: loading works, the disjointness check fails with status 1 and names it
    (root / "mad_split.json").write_text(json.dumps({"TRAIN": [*split["TRAIN"], leaked], "EVAL": split["EVAL"]}))
    code = main(["data-summary", str(CONFIGS / "data" / "toy.yaml"), f"data.root={root}", "--splits", "val"])
    out, err = capsys.readouterr()
    assert code == 1 and f"train/test share 1 movie(s): {leaked}" in err
    assert "movies" in out  # the counts are printed before the check


def test_data_summary_prints_three_splits_and_passes_the_check(toy_root: Path, capsys) -> None:
    code = main(["data-summary", str(CONFIGS / "data" / "toy.yaml"), f"data.root={toy_root / 'mad'}",
                 "--splits", "train", "val", "test"])
    out = capsys.readouterr().out
    assert code == 0 and "share no movie" in out
    header, movies = out.splitlines()[1], next(line for line in out.splitlines() if line.startswith("movies"))
    assert header.split() == ["train", "val", "test"] and movies.split()[1:] == ["3", "2", "1"]


@pytest.mark.slow
def test_training_records_the_val_movies_it_selects_on(toy_root: Path, tmp_path: Path) -> None:
    from moviead.config import load_config
    from moviead.data.sources import load_split
    from moviead.stages.train import train

    files = [CONFIGS / "stage1" / "pme.yaml", CONFIGS / "stage1" / "pme_tiny.yaml", CONFIGS / "data" / "toy.yaml"]
    cfg = load_config(files, [f"data.root={toy_root / 'mad'}", f"trainer.default_root_dir={tmp_path}", "name=run",
                              *QUICK])
    result = train(cfg)
    selection = read_selection(result.run_dir)
    assert selection is not None and selection["monitor"] == "val/t2v_r1" and selection["dataset"] == "toy"
    assert selection["movies"] == sorted(load_split(cfg.data, "val").movies)
    assert not set(selection["movies"]) & set(load_split(cfg.data, "test").movies)
