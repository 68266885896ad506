"""moviead.plots and `moviead plot`: metrics read from runs, a comparison bar chart, the DSM heatmap, clear errors."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from moviead.cli import main
from moviead.plots import plot_metric_comparison, read_dsm_scores, read_metrics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the PNG signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture()
def runs(tmp_path: Path) -> list[Path]:
    """An evaluated run (metrics.json) and a trained one (metrics.csv of the CSV logger)."""
    evaluated = tmp_path / "loco_mad-mad-oracle-seed0"
    evaluated.mkdir()
    (evaluated / "metrics.json").write_text(json.dumps(
        {"cider": 0.5, "bleu4": 0.02, "mode": "recurrent", "checkpoint": "runs/x/checkpoints/best.ckpt"}))
    trained = tmp_path / "loco_mad-mad-local-seed0"
    trained.mkdir()
    (trained / "metrics.csv").write_text(
        "epoch,step,train/loss,val/bleu4,val/cider\n"
        "0,4,2.5,,\n"
        "0,4,,0.01,0.25\n"
        "1,9,1.9,,\n"
        "1,9,,0.015,0.375\n"
    )
    return [evaluated, trained]


def test_metrics_come_from_json_or_the_last_validation_row_of_the_csv(runs: list[Path]) -> None:
    assert read_metrics(runs[0]) == {"cider": 0.5, "bleu4": 0.02}  # "mode" and "checkpoint" are labels
    assert read_metrics(runs[1] / "metrics.csv") == {"val/bleu4": 0.015, "val/cider": 0.375}


def test_bad_metric_files_are_refused_with_their_name(tmp_path: Path) -> None:
    bad = tmp_path / "metrics.json"
    bad.write_text(json.dumps({"cider": "high"}))
    with pytest.raises(ValueError, match="metrics.json: metric 'cider' is 'high', not a number"):
        read_metrics(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds neither metrics.json"):
        read_metrics(tmp_path / "empty")


def test_the_comparison_chart_is_a_png_of_real_size(tmp_path: Path) -> None:
    out = plot_metric_comparison(
        {"oracle": {"cider": 0.5, "bleu4": 0.02}, "local": {"cider": 0.375}}, tmp_path / "cmp.png"
    )
    width, height = _png_size(out)
    # Two panels of 3.2 x 2.6 in, plus a legend row, at 120 dpi.
    assert (width, height) == (768, 396) and out.stat().st_size > 10_000
    with pytest.raises(ValueError, match=r"metrics \['rouge'\] are in none of the runs"):
        plot_metric_comparison({"a": {"cider": 1.0}}, tmp_path / "x.png", metrics=["rouge"])


def test_moviead_plot_compares_runs_and_fails_clearly_on_a_missing_file(
    runs: list[Path], tmp_path: Path, capsys
) -> None:
    out = tmp_path / "figures" / "compare.png"
    assert main(["plot", str(runs[0]), str(runs[1] / "metrics.csv"), "--out", str(out)]) == 0
    assert _png_size(out)[0] > 500 and out.stat().st_size > 10_000
    assert f"wrote {out}" in capsys.readouterr().out
    missing = tmp_path / "no_such_run" / "metrics.json"
    assert main(["plot", str(runs[0]), str(missing), "--out", str(tmp_path / "y.png")]) == 2
    assert f"{missing} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "y.png").exists()


def test_dsm_scores_from_a_val_samples_jsonl_pad_short_proposals_with_nan(tmp_path: Path) -> None:
    path = tmp_path / "epoch-003.jsonl"
    rows = [{"movie": "m1", "index": 4, "dsm_scores": [0.25, 0.75]}, {"movie": "m1", "index": 5, "dsm_scores": [1.0]}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    scores, labels = read_dsm_scores(path)
    assert labels == ["m1#4", "m1#5"]
    assert np.array_equal(scores, np.array([[0.25, 0.75], [1.0, np.nan]]), equal_nan=True)


def test_moviead_plot_draws_the_dsm_heatmap_from_npy(tmp_path: Path, capsys) -> None:
    scores = np.random.default_rng(0).dirichlet(np.ones(6), size=12)  # (12 ADs, 6 proposal items)
    np.save(tmp_path / "scores.npy", scores)
    out = tmp_path / "dsm.png"
    assert main(["plot", "--dsm-heatmap", str(tmp_path / "scores.npy"), "--out", str(out)]) == 0
    assert _png_size(out)[0] >= 480 and out.stat().st_size > 5_000
    assert main(["plot", "--dsm-heatmap", str(tmp_path / "absent.npy"), "--out", str(out)]) == 2
    assert "absent.npy does not exist" in capsys.readouterr().err
    assert main(["plot", "--out", str(out)]) == 2  # neither runs nor a heatmap


def test_the_evaluators_metrics_json_reads_as_its_scores(tmp_path: Path) -> None:
    from moviead.evaluation.decode import write_metrics

    path = write_metrics(tmp_path / "metrics.json", {"cider": 0.5, "bleu4": 0.1}, {"spice": "no jars"},
                         {"checkpoint": "c.ckpt", "split": "test", "data": "d", "mode": "oracle", "num_ads": 71})
    assert read_metrics(path) == {"cider": 0.5, "bleu4": 0.1}


def test_run_labels_use_as_many_folder_names_as_it_takes(tmp_path: Path) -> None:
    from moviead.plots import run_labels

    a, b = tmp_path / "loco" / "eval" / "test-recurrent", tmp_path / "dad" / "eval" / "test-recurrent"
    for folder in (a, b):
        folder.mkdir(parents=True)
    assert run_labels([a, b]) == ["loco/eval/test-recurrent", "dad/eval/test-recurrent"]
    assert run_labels([a, tmp_path / "loco"]) == ["test-recurrent", "loco"]
