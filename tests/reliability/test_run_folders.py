"""A run folder is never overwritten by a new run: refused unless --resume or --overwrite (which moves the old
run aside, deleting nothing). Checkpoints store absolute paths, so they work from any working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from moviead.cli import main
from moviead.config import load_config
from moviead.stages.train import RunFolderExistsError, _is_launched_rank, portable_paths, prepare_run_folder, train
from tests.stages._stage2 import STAGE2, write_untrained_stage2_checkpoint

STAGE1 = [Path(__file__).resolve().parents[2] / "configs" / f for f in
          ("stage1/pme.yaml", "stage1/pme_tiny.yaml", "data/toy.yaml")]


def _stage1_cfg(toy_root: Path, runs: Path, *extra: str):
    return load_config(STAGE1, [f"data.root={toy_root / 'mad'}", f"trainer.default_root_dir={runs}", "name=run",
                                *extra])


def _old_run(runs: Path) -> dict[str, bytes]:
    """A finished-looking run folder; returns its files' contents."""
    run = runs / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.csv").write_text("epoch,train/loss\n0,1.5\n")
    (run / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    (run / "config.yaml").write_text("name: run\n")
    return {str(p.relative_to(run)): p.read_bytes() for p in run.rglob("*") if p.is_file()}


def test_training_into_a_folder_that_holds_a_run_is_refused(toy_root: Path, tmp_path: Path) -> None:
    files = _old_run(tmp_path)
    with pytest.raises(RunFolderExistsError) as err:
        train(_stage1_cfg(toy_root, tmp_path))
    assert str(err.value) == (f"{tmp_path / 'run'} already holds a run: pass --resume (trainer.resume=true) to go on "
                              "with it, --overwrite to move it aside and start afresh, or another name=...")
    run = tmp_path / "run"
    assert {str(p.relative_to(run)): p.read_bytes() for p in run.rglob("*") if p.is_file()} == files


def test_the_cli_refuses_it_in_one_line(toy_root: Path, tmp_path: Path, capsys) -> None:
    _old_run(tmp_path)
    argv = ["train", *map(str, STAGE1), f"data.root={toy_root / 'mad'}", f"trainer.default_root_dir={tmp_path}",
            "name=run"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"moviead train: error: {tmp_path / 'run'} already holds a run") and err.count("\n") == 1


def test_overwrite_moves_the_old_run_aside_and_deletes_nothing(toy_root: Path, tmp_path: Path) -> None:
    files = _old_run(tmp_path)
    run = prepare_run_folder(_stage1_cfg(toy_root, tmp_path), overwrite=True)
    assert run == tmp_path / "run" and not run.exists()
    (aside,) = tmp_path.glob("run.old-*")
    assert {str(p.relative_to(aside)): p.read_bytes() for p in aside.rglob("*") if p.is_file()} == files


def test_a_folder_holding_only_the_config_of_a_failed_start_is_not_a_run(toy_root: Path, tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("name: run\n")
    assert prepare_run_folder(_stage1_cfg(toy_root, tmp_path)) == tmp_path / "run"


def test_resume_goes_on_in_the_existing_folder(toy_root: Path, tmp_path: Path) -> None:
    _old_run(tmp_path)
    assert prepare_run_folder(_stage1_cfg(toy_root, tmp_path, "trainer.resume=true")) == tmp_path / "run"
    assert (tmp_path / "run" / "metrics.csv").exists()


def test_ddp_ranks_above_0_leave_the_folder_to_rank_0() -> None:
    assert _is_launched_rank({"LOCAL_RANK": "1"}) and _is_launched_rank({"NODE_RANK": "1", "LOCAL_RANK": "0"})
    assert not _is_launched_rank({}) and not _is_launched_rank({"LOCAL_RANK": "0"})


def test_portable_paths_resolves_local_paths_and_keeps_hub_names(toy_root: Path, tmp_path: Path,
                                                                  monkeypatch) -> None:
    monkeypatch.chdir(toy_root)
    (toy_root / "lm").mkdir(exist_ok=True)
    cfg = load_config([], ["data.root=mad", "captioning.stage1=missing-export", "captioning.decoder.lm=lm",
                           "captioning.decoder.tokenizer=gpt2", "captioning.dsm.sentence_cache=cache.safetensors"])
    out = portable_paths(cfg)
    assert out.data.root == str(toy_root / "mad")
    assert out.captioning.decoder.lm == str(toy_root / "lm")
    assert out.captioning.decoder.tokenizer == "gpt2"  # a hub name: kept
    assert out.captioning.stage1 == "missing-export"  # does not exist here: kept (building the recipe says so)
    assert out.captioning.dsm.sentence_cache == str(toy_root / "cache.safetensors")
    assert cfg.data.root == "mad"  # the caller's config is not changed


def test_a_checkpoint_trained_with_relative_paths_evaluates_from_another_directory(
    toy_root: Path, rel_stage1: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(toy_root)
    stage1 = Path("stage1-export")
    if not stage1.exists():
        stage1.symlink_to(rel_stage1, target_is_directory=True)
    cfg = load_config(STAGE2, ["data.root=mad", f"captioning.stage1={stage1}", f"trainer.default_root_dir={tmp_path}",
                               "captioning.generation.num_beams=1", "captioning.generation.max_new_tokens=4"])
    checkpoint = write_untrained_stage2_checkpoint(portable_paths(cfg), tmp_path / "run" / "checkpoints" / "last.ckpt")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--mode", "local", "--split", "train", "--limit-movies", "1",
            "--out", "eval", "--bertscore-model", "none", "--caption-metrics", "cider", "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().err
    assert (elsewhere / "eval" / "train-local" / "predictions.jsonl").read_text().count("\n") > 0
