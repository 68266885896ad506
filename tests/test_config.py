import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from moviead.cli import main
from moviead.config import (
    ConfigError,
    ContextMode,
    ExperimentConfig,
    load_config,
    save_config,
    schema_template,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


NOT_CONFIGS = ("sweeps", "ablations")  # W&B sweep files; `moviead ablate` specs (tests/test_ablation.py)
EXPERIMENT_YAMLS = sorted(p for p in CONFIGS.rglob("*.yaml") if p.parent.name not in NOT_CONFIGS)


@pytest.mark.parametrize("path", EXPERIMENT_YAMLS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_yaml_merges_against_the_schema(path: Path) -> None:
    cfg = load_config([path])
    assert OmegaConf.to_container(cfg, resolve=True)  # resolves without missing values


def test_unknown_key_names_the_nearest_valid_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("captioning:\n  contxt_size: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'captioning.contxt_size'.*Did you mean 'captioning.context_size'"):
        load_config([bad])


def test_a_bad_key_names_the_file_that_holds_it_among_several(tmp_path: Path) -> None:
    """The layers merge in one call; the error still names the one layer at fault (files, then overrides)."""
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("loader:\n  batch_size: 4\n")
    bad.write_text("loader:\n  bach_size: 4\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(bad))}: unknown key 'loader.bach_size'"):
        load_config([good, bad, good], ["seed=3"])
    with pytest.raises(ConfigError, match=r"^override: unknown key 'loader.bach_size'"):
        load_config([good, good], ["seed=3", "loader.bach_size=4"])
    # the file's error comes before a malformed override
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(bad))}: unknown key"):
        load_config([good, bad], ["seed"])
    with pytest.raises(ConfigError, match="override 'seed' is not of the form key=value"):
        load_config([good], ["seed"])


def test_loading_a_config_leaves_the_shared_schema_template_as_it_was() -> None:
    cfg = load_config([], ["seed=5"])
    cfg.loader.batch_size = 1234
    assert schema_template() == OmegaConf.structured(ExperimentConfig) and schema_template().seed == 0


def test_the_schema_defaults_are_a_fresh_config_each_time() -> None:
    first = load_config()
    first.loader.batch_size = 1234
    second = load_config()
    assert second == OmegaConf.structured(ExperimentConfig) and second.loader.batch_size != 1234
    assert OmegaConf.get_type(second) is ExperimentConfig


def test_unknown_override_names_the_nearest_valid_key() -> None:
    with pytest.raises(ConfigError, match=r"Did you mean 'loader.batch_size'"):
        load_config([], ["loader.bach_size=4"])


def test_invalid_enum_value_is_an_error() -> None:
    with pytest.raises(ConfigError, match="mode"):
        load_config([], ["captioning.context_mode=sometimes"])


def test_wrong_type_is_an_error() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        load_config([], ["loader.batch_size=many"])


def test_later_files_and_overrides_win(tmp_path: Path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("loader:\n  batch_size: 4\ncaptioning:\n  context_size: 5\n")
    second.write_text("loader:\n  batch_size: 6\n")
    cfg = load_config([first, second], ["captioning.context_mode=local"])
    assert (cfg.loader.batch_size, cfg.captioning.context_size) == (6, 5)
    assert cfg.captioning.context_mode == ContextMode.local and cfg.captioning.context_mode == "local"


def test_saved_config_reloads_identically(tmp_path: Path) -> None:
    cfg = load_config([CONFIGS / "data" / "mad.yaml"], ["seed=7"])
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert load_config([path]) == cfg


def test_missing_config_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config([tmp_path / "nope.yaml"])


def test_cli_config_prints_the_resolved_config(capsys: pytest.CaptureFixture) -> None:
    assert main(["config", str(CONFIGS / "data" / "mad.yaml"), "loader.batch_size=3"]) == 0
    printed = OmegaConf.create(capsys.readouterr().out)
    assert printed.loader.batch_size == 3 and printed.data.dataset == "mad"


def test_cli_config_error_exits_2_with_the_hint(capsys: pytest.CaptureFixture) -> None:
    assert main(["config", "captioning.contxt_mode=local"]) == 2
    assert "Did you mean 'captioning.context_mode'" in capsys.readouterr().err


def test_extends_merges_the_named_files_first(tmp_path: Path) -> None:
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "base.yaml").write_text("name: base\nseed: 3\noptim:\n  lr: 0.5\n")
    (tmp_path / "recipes" / "more.yaml").write_text("extends: base.yaml\noptim:\n  lr: 0.25\n  warmup_steps: 7\n")
    exp = tmp_path / "exp.yaml"
    exp.write_text("extends: [recipes/more.yaml]\nname: exp\n")
    cfg = load_config([exp], ["seed=4"])
    assert (cfg.name, cfg.seed, cfg.optim.lr, cfg.optim.warmup_steps) == ("exp", 4, 0.25, 7)
    assert "extends" not in cfg


def test_extends_errors(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config([tmp_path / "a.yaml"])
    (tmp_path / "c.yaml").write_text("extends: missing.yaml\n")
    with pytest.raises(FileNotFoundError, match="extended by"):
        load_config([tmp_path / "c.yaml"])


@pytest.mark.parametrize("path", sorted((CONFIGS / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_sweep_files_name_real_keys_and_experiments(path: Path) -> None:
    import yaml

    sweep = yaml.safe_load(path.read_text())
    assert {"program", "method", "parameters", "command"} <= set(sweep)
    files = [item for item in sweep["command"] if isinstance(item, str) and item.endswith(".yaml")]
    assert files and all((CONFIGS.parent / f).is_file() for f in files)
    fixed = [item for item in sweep["command"] if isinstance(item, str) and "=" in item]
    for key, spec in sweep["parameters"].items():
        for value in spec["values"]:
            cfg = load_config([CONFIGS.parent / f for f in files], [*fixed, f"{key}={value}"])
            assert OmegaConf.select(cfg, key) == value


DATA_KEYS = {"dataset", "root", "feature_dim", "fps", "text_variant", "val_movies", "mad", "lsmdc", "storyboard", "toy"}


@pytest.mark.parametrize("path", sorted((CONFIGS / "data").glob("*.yaml")), ids=lambda p: p.name)
def test_a_data_config_holds_only_data(path: Path) -> None:
    layer = OmegaConf.load(path)
    assert set(layer) == {"data"}, f"{path.name} sets {sorted(set(layer) - {'data'})}: a data config holds only data"
    assert set(layer.data) <= DATA_KEYS, sorted(set(layer.data) - DATA_KEYS)


RECIPES = sorted(p for p in (CONFIGS / "stage2").glob("*.yaml") if not p.stem.endswith("_tiny"))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
@pytest.mark.parametrize("data", sorted((CONFIGS / "data").glob("*.yaml")), ids=lambda p: p.name)
def test_composition_order_cannot_change_a_recipe_value(recipe: Path, data: Path) -> None:
    assert load_config([recipe, data]) == load_config([data, recipe])


def test_feature_dim_is_declared_once_and_read_by_every_model() -> None:
    cfg = load_config([CONFIGS / "stage1" / "pme.yaml"], ["data.feature_dim=512"])
    assert cfg.pme.model.vision_width == 512 and cfg.clip.feature_dim == 512
    for path in CONFIGS.rglob("*.yaml"):
        if path.parent.name in NOT_CONFIGS:
            continue
        layer = OmegaConf.load(path)
        for key in ("pme.model.vision_width", "clip.feature_dim"):
            assert OmegaConf.select(layer, key) is None, f"{path} sets {key}: it follows data.feature_dim"
