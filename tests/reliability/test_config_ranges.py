"""Config values are checked at load: each out-of-range value is a ConfigError naming the key and the range."""

from __future__ import annotations

import pytest

from moviead.cli import main
from moviead.config import ConfigError, load_config

BAD_VALUES = [  # (override, the message's "key=value", the allowed range)
    ("data.fps=0", "data.fps=0.0", "> 0"),
    ("data.fps=-5", "data.fps=-5.0", "> 0"),
    ("loader.batch_size=0", "loader.batch_size=0", ">= 1"),
    ("loader.eval_batch_size=0", "loader.eval_batch_size=0", ">= 1"),
    ("loader.num_workers=-1", "loader.num_workers=-1", ">= 0"),
    ("loader.frames.num_frames=0", "loader.frames.num_frames=0", ">= 1"),
    ("captioning.context_size=-1", "captioning.context_size=-1", ">= 0"),
    ("captioning.dsm.top_k=0", "captioning.dsm.top_k=0", ">= 1"),
    ("captioning.generation.num_beams=0", "captioning.generation.num_beams=0", ">= 1"),
    ("captioning.generation.max_new_tokens=0", "captioning.generation.max_new_tokens=0", ">= 1"),
    ("captioning.val_num_beams=0", "captioning.val_num_beams=0", ">= 1"),
    ("optim.lr=0", "optim.lr=0.0", "> 0"),
    ("optim.lr=-0.001", "optim.lr=-0.001", "> 0"),
    ("optim.min_lr_ratio=1.5", "optim.min_lr_ratio=1.5", ">= 0 and <= 1"),
    ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches=0", ">= 1"),
]


@pytest.mark.parametrize(("override", "shown", "allowed"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_an_out_of_range_config_value_is_refused_naming_key_and_range(override: str, shown: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config([], [override])
    assert str(err.value) == f"config: {shown} is out of range: it must be {allowed}"


def test_a_yaml_file_with_an_out_of_range_value_is_refused(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("loader:\n  batch_size: 0\n")
    with pytest.raises(ConfigError, match=r"loader\.batch_size=0 is out of range: it must be >= 1"):
        load_config([bad])


def test_the_lowest_allowed_values_load() -> None:
    cfg = load_config([], ["loader.num_workers=0", "captioning.context_size=0", "loader.batch_size=1",
                           "captioning.generation.num_beams=1", "optim.min_lr_ratio=1"])
    assert (cfg.loader.num_workers, cfg.captioning.context_size, cfg.loader.batch_size) == (0, 0, 1)


def test_the_cli_prints_one_line_and_exits_2_for_a_bad_config_value(capsys) -> None:
    assert main(["config", "data.fps=0"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "moviead config: error: config: data.fps=0.0 is out of range: it must be > 0\n"


def test_debug_shows_the_traceback_instead(capsys) -> None:
    with pytest.raises(ConfigError, match="data.fps"):
        main(["--debug", "config", "data.fps=0"])
    with pytest.raises(ConfigError, match="data.fps"):
        main(["config", "data.fps=0", "--debug"])  # after the command too
