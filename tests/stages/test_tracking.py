"""W&B through the config: mode resolution, run names, and what an offline run folder holds (no network).

The offline ``run-<id>.wandb`` file is a LevelDB-style log of protobuf records (W&B's own format: a 7-byte header,
32 KiB blocks, records of checksum, length, type); :func:`wandb_records` reads it so that tests can check the config,
the metrics and the media that a run logged.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Iterator

import pytest

from moviead.config import load_config
from moviead.stages.tracking import build_loggers, run_name, wandb_mode
from moviead.stages.train import train
from tests.stages._stage2 import stage2_cfg

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
STAGE1 = [CONFIGS / "stage1" / "pme.yaml", CONFIGS / "stage1" / "pme_tiny.yaml", CONFIGS / "data" / "toy.yaml"]
QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1",
         "trainer.num_sanity_val_steps=0", "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false",
         "logger.wandb.enabled=true"]


def wandb_records(path: Path) -> Iterator[object]:
    """The protobuf records (``wandb_internal_pb2.Record``) of an offline ``run-<id>.wandb`` file."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    block, pos, parts = 32768, 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a record header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        parts += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            parts = b""
            yield record


def offline_run(run_dir: Path) -> tuple[Path, dict[str, object], dict[str, list[object]]]:
    """The offline run folder of ``run_dir``, its run record's config (key → value) and its history (key → values)."""
    folders = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(folders) == 1, folders
    config: dict[str, object] = {}
    history: dict[str, list[object]] = {}
    display_name = None
    for record in wandb_records(next(folders[0].glob("run-*.wandb"))):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            display_name = record.run.display_name
            config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
        elif kind == "history":
            row: dict[str, object] = {}
            for item in record.history.item:  # a media value comes as fields under nested keys (key, field)
                value, path = json.loads(item.value_json), [item.key] if item.key else list(item.nested_key)
                if len(path) == 1:
                    row[path[0]] = value
                else:
                    row.setdefault("/".join(path[:-1]), {})[path[-1]] = value
            for key, value in row.items():
                history.setdefault(key, []).append(value)
    config["_display_name"] = display_name
    return folders[0], config, history


@pytest.fixture()
def offline_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """W&B in offline mode with its config/cache/data folders in ``tmp_path`` (nothing in $HOME, no network)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.setenv("WANDB_SILENT", "true")
    return tmp_path


def test_mode_comes_from_the_config_then_the_environment_then_the_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert wandb_mode(None) == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode(None) == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode(None) == "disabled"
    assert wandb_mode("offline") == "offline"
    with pytest.raises(ValueError, match="choose one of"):
        wandb_mode("dryrun")


def test_run_names_say_recipe_data_context_and_seed(toy_root: Path) -> None:
    cfg = load_config(STAGE1, [f"data.root={toy_root / 'mad'}", "seed=3", "captioning.context_mode=local"])
    assert run_name(cfg) == "toy_stage1_pme-toy-local-seed3"


def test_wandb_disabled_by_the_environment_gives_only_the_csv_logger(toy_root: Path, tmp_path: Path) -> None:
    # conftest.py sets WANDB_MODE=disabled, as the Makefile does for `make test`.
    cfg = load_config(STAGE1, [f"data.root={toy_root / 'mad'}", "logger.wandb.enabled=true"])
    loggers = build_loggers(cfg, tmp_path)
    assert [type(logger).__name__ for logger in loggers] == ["CSVLogger"]


def test_an_offline_stage1_run_folder_holds_the_config_and_the_metrics(toy_root: Path, offline_wandb: Path) -> None:
    cfg = load_config(STAGE1, [f"data.root={toy_root / 'mad'}", f"trainer.default_root_dir={offline_wandb}", *QUICK])
    result = train(cfg)
    folder, config, history = offline_run(result.run_dir)
    assert folder.name.endswith((result.run_dir / "wandb_run_id").read_text().strip())
    assert config["_display_name"] == "toy_stage1_pme-toy-oracle-seed0"
    assert config["task"] == "pme_alignment" and config["seed"] == 0
    assert config["pme"]["model"]["hidden_size"] == 64  # the resolved config, nested
    assert len(history["train/loss"]) == 3 and all(v > 0 for v in history["train/loss"])
    assert history["val/t2v_r1"] == [pytest.approx(result.metrics["val/t2v_r1"])]


def test_an_offline_stage2_run_logs_the_samples_table_and_the_dsm_heatmap(
    toy_root: Path, stage1_export: Path, offline_wandb: Path
) -> None:
    cfg = stage2_cfg(toy_root, stage1_export, offline_wandb, *QUICK, "captioning.val_generate_batches=1",
                     "loader.eval_batch_size=4")
    result = train(cfg)
    folder, _, history = offline_run(result.run_dir)
    (table,) = history["val/samples"]
    assert table["_type"] == "table-file" and table["nrows"] == 4
    content = json.loads((folder / "files" / table["path"]).read_text())
    assert content["columns"] == ["movie", "time", "gt", "prediction", "selected context"]
    assert all(row[1].endswith("s") and "-" in row[1] for row in content["data"])  # "12.0-15.5s"
    assert all("{" not in row[4] for row in content["data"]) and any('"' in row[4] for row in content["data"])
    (image,) = history["val/dsm_scores"]
    assert image["_type"] == "images/separated" and (folder / "files" / image["filenames"][0]).stat().st_size > 1000
    rows = [json.loads(line) for line in (result.run_dir / "val_samples" / "epoch-000.jsonl").read_text().splitlines()]
    assert all(len(row["dsm_scores"]) >= 1 and abs(sum(row["dsm_scores"]) - 1) < 1e-4 for row in rows)
    assert (result.run_dir / "val_samples" / "epoch-000.dsm.png").stat().st_size > 1000
    assert sorted(p.name for p in result.export_dir.iterdir()) == ["captioner.safetensors", "captioner_config.json",
                                                                   "config.yaml"]
