"""Predictions are tied to what produced them: a rerun whose checkpoint, data or config changed is refused, naming
what changed, and the earlier predictions are left as they were; ``--restart`` starts over. A damaged row in the
middle of a predictions file says how to recover."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from moviead.cli import main
from moviead.evaluation.predictions import CorruptPredictionsError, PredictionStore, ResumeMismatchError


def _evaluate(checkpoint: Path, out: Path, *extra: str, limit: int = 1) -> list[str]:
    return ["evaluate", "--checkpoint", str(checkpoint), "--mode", "local", "--split", "train", "--limit-movies",
            str(limit), "--out", str(out), "--bertscore-model", "none", "--caption-metrics", "cider", "--no-progress", *extra]


def _error(capsys) -> str:
    """The last line on stderr (transformers' own "Loading weights" bars may come before it)."""
    return capsys.readouterr().err.splitlines()[-1]


def test_a_retrained_checkpoint_at_the_same_path_is_refused_not_rescored(rel_checkpoint: Path, tmp_path: Path,
                                                                          capsys) -> None:
    out = tmp_path / "eval"
    assert main(_evaluate(rel_checkpoint, out)) == 0
    predictions = out / "train-local" / "predictions.jsonl"
    before = predictions.read_bytes()
    state = torch.load(rel_checkpoint, weights_only=False)  # "retrain": other weights, same file name
    name = next(iter(state["state_dict"]))
    state["state_dict"][name] = state["state_dict"][name] + 1.0
    torch.save(state, rel_checkpoint)
    capsys.readouterr()
    assert main(_evaluate(rel_checkpoint, out)) == 2
    err = _error(capsys)
    assert err.startswith(f"moviead evaluate: error: {predictions} was written by another run: the checkpoint's "
                          "content changed (retrained or replaced at the same path) (checkpoint_sha256 ")
    assert err.endswith("; use another output folder, or --restart to discard those predictions")
    assert predictions.read_bytes() == before  # nothing lost
    assert main(_evaluate(rel_checkpoint, out, "--restart")) == 0
    stored = json.loads((out / "train-local" / "run.json").read_text())
    assert len(stored["checkpoint_sha256"]) == 64 and len(stored["data_sha256"]) == 64


def test_a_changed_config_is_refused(rel_checkpoint: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "eval"
    assert main(_evaluate(rel_checkpoint, out, "--data", "captioning.context_size=2")) == 0
    capsys.readouterr()
    assert main(_evaluate(rel_checkpoint, out, "--data", "captioning.context_size=1")) == 2
    assert "was written by another run: the resolved config changed (config_sha256" in _error(capsys)


def test_edited_annotations_are_refused(rel_checkpoint: Path, toy_root: Path, tmp_path: Path, capsys) -> None:
    data = tmp_path / "mad"
    shutil.copytree(toy_root / "mad", data)
    out = tmp_path / "eval"
    assert main(_evaluate(rel_checkpoint, out, "--data", f"data.root={data}")) == 0
    before = (out / "train-local" / "predictions.jsonl").read_bytes()
    csv = data / "mad-v2-ad-named.csv"
    text = csv.read_text()
    assert " the " in text
    csv.write_text(text.replace(" the ", " a "))  # reworded ADs, every movie's
    capsys.readouterr()
    assert main(_evaluate(rel_checkpoint, out, "--data", f"data.root={data}")) == 2
    assert "another run: the input data changed (annotations, subtitles or features) (data_sha256" in _error(capsys)
    assert (out / "train-local" / "predictions.jsonl").read_bytes() == before


def test_a_larger_limit_resumes_the_same_predictions(rel_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    assert main(_evaluate(rel_checkpoint, out)) == 0
    first = (out / "train-local" / "predictions.jsonl").read_text()
    assert main(_evaluate(rel_checkpoint, out, limit=2)) == 0
    assert (out / "train-local" / "predictions.jsonl").read_text().startswith(first)  # appended, not redone


def _row(index: int) -> dict:
    return {"movie": "m1", "index": index, "start": float(index), "end": index + 1.0, "gt": "g", "pred": "p",
            "context": []}


@pytest.mark.parametrize("bad", ['{"movie": "m1", "ind', "[1, 2]", "null"], ids=["cut", "array", "null"])
def test_a_bad_row_in_the_middle_says_how_to_recover(tmp_path: Path, bad: str) -> None:
    store = PredictionStore(tmp_path, {"k": 1})
    store.append([_row(0)])
    with open(store.path, "a", encoding="utf-8") as handle:
        handle.write(bad + "\n")
    store.append([_row(2)])
    before = store.path.read_bytes()
    with pytest.raises(CorruptPredictionsError) as err:
        PredictionStore(tmp_path, {"k": 1})
    message = str(err.value)
    assert message.startswith(f"{store.path}:2: not a prediction row")
    assert "the 1 row(s) before it are intact" in message and "--restart" in message
    assert f"head -n 1 {store.path}" in message
    assert store.path.read_bytes() == before  # nothing rewritten


def test_a_folder_from_an_older_moviead_without_hashes_is_refused(tmp_path: Path) -> None:
    PredictionStore(tmp_path, {"checkpoint": "c"}).append([_row(0)])
    with pytest.raises(ResumeMismatchError, match="checkpoint_sha256 was not recorded"):
        PredictionStore(tmp_path, {"checkpoint": "c", "checkpoint_sha256": "ab" * 32})
    assert len((tmp_path / "predictions.jsonl").read_text().splitlines()) == 1


def test_other_settings_are_named_with_both_values(tmp_path: Path) -> None:
    PredictionStore(tmp_path, {"num_beams": 1}).append([_row(0)])
    with pytest.raises(ResumeMismatchError, match="num_beams was 1, now 3"):
        PredictionStore(tmp_path, {"num_beams": 3})
