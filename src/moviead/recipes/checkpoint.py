"""Rebuild a Stage-II recipe from what ``moviead train`` (task ``captioning``) wrote: a ``.ckpt`` checkpoint or the
``export/`` folder.

The export (:func:`save_captioner_export`) is ``captioner.safetensors`` (the trainable weights) and
``captioner_config.json``: the resolved ``captioning`` section, ``data.dataset`` / ``data.feature_dim``,
``loader.frames`` (how frames are sampled for the model), the run folder it was written in (``run_dir``: inputs
moved with the run are found relative to it), the Stage-I export path (``stage1``) and its content hash
(``stage1_sha256``, None when ``captioning.visual_source=frames``). A checkpoint's ``moviead`` entry records the same
hash. Both loaders refuse a ``captioning.stage1`` whose files hash differently from the recorded one: the frozen
PME is not stored with Stage-II, so another PME would silently give another model.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from moviead.checkpoints import load_checkpoint_safely
from moviead.export_files import CAPTIONER_CONFIG, CAPTIONER_WEIGHTS
from moviead.recipes import build_recipe
from moviead.recipes.base import CHECKPOINT_KEY, Recipe, Stage1CheckpointError, resolved_config
from moviead.recipes.stored_paths import resolve_stored_inputs, run_dir_of

EXPORT_FORMAT = "moviead.captioner"
EXPORT_VERSION = 1


class Stage1MismatchError(Stage1CheckpointError):
    """``captioning.stage1`` names a Stage-I export other than the one the Stage-II model was trained on."""


def stage1_sha256(cfg: DictConfig) -> str | None:
    """Content hash of the Stage-I export ``captioning.stage1`` (PME weights then ``pme_config.json`` bytes); None
    when ``captioning.visual_source=frames`` (no Stage-I) or when the export cannot be found (building the recipe
    then says what is missing)."""
    from moviead.config import VisualSource
    from moviead.models.qformer import pme_export_sha256

    cap = cfg.captioning
    if VisualSource(cap.visual_source) != VisualSource.pme or not cap.stage1:
        return None
    try:
        return pme_export_sha256(cap.stage1)
    except FileNotFoundError:
        return None


def check_stage1(cfg: DictConfig, recorded_sha: str | None, recorded_path: str | None, source: Path,
                 recorded: bool = True) -> None:
    """Refuse a ``captioning.stage1`` whose content hash differs from the one recorded by ``source``.

    Args:
        cfg: the config the recipe is about to be built from.
        recorded_sha: the hash stored at training time (None: trained without Stage-I).
        recorded_path: the Stage-I path stored at training time (for the message).
        source: the checkpoint or export being loaded (for the message).
        recorded: False for files written before the hash was recorded: warn instead of refusing.

    Raises:
        Stage1MismatchError: the hashes differ.
    """
    current = stage1_sha256(cfg)
    if current is None:
        return
    if not recorded:
        warnings.warn(f"{source} does not record the hash of its Stage-I export (written by an older moviead): "
                      f"cannot check that captioning.stage1={cfg.captioning.stage1} is the PME it was trained on",
                      stacklevel=3)
        return
    if recorded_sha is not None and recorded_sha != current:
        raise Stage1MismatchError(
            f"{source} was trained on the Stage-I export {recorded_path} (sha256 {recorded_sha}), but "
            f"captioning.stage1={cfg.captioning.stage1} has sha256 {current}: its PME weights or config differ. "
            f"Point captioning.stage1 at the Stage-I export this model was trained on (e.g. the override "
            f"captioning.stage1=<that export folder>)"
        )


def _config_from(sections: Mapping[str, Any], config_files: Sequence[str | Path], overrides: Sequence[str]
                 ) -> DictConfig:
    """Schema defaults, then the stored ``sections``, then ``config_files``, then ``overrides`` (one merge: each
    ``OmegaConf.merge`` copies the whole config; the shared template is never changed)."""
    from moviead.config import merge_config_layers, schema_template

    stored = ("the checkpoint's stored config", OmegaConf.create(dict(sections)))
    return merge_config_layers(schema_template(), config_files, overrides, first=[stored])


def _load_trainable(recipe: Recipe, state: Mapping[str, torch.Tensor], source: Path) -> None:
    """Load ``state`` into the captioner: every key must exist and every trainable parameter must be given."""
    missing, unexpected = recipe.captioner.load_state_dict(dict(state), strict=False)
    if unexpected:
        raise ValueError(f"{source}: weights that this config's captioner does not have: {unexpected[:5]}")
    trainable = {n for n, p in recipe.captioner.named_parameters() if p.requires_grad}
    absent = sorted(trainable & set(missing))
    if absent:
        raise ValueError(f"{source}: trainable weights missing from it: {absent[:5]}")


def load_captioner_checkpoint(
    path: str | Path, overrides: Sequence[str] = (), config_files: Sequence[str | Path] = ()
) -> tuple[Recipe, DictConfig]:
    """Rebuild the recipe of a Stage-II checkpoint: frozen parts from its stored config, then its weights.

    ``config_files`` (YAML, e.g. a data config) and then ``overrides`` (``key=value``) are merged over the stored
    config before the model is built, so evaluation can point the same model at other data.

    The stored paths of its frozen inputs (decoder, tokenizer, Stage-I export, sentence encoder) are looked for
    as stored, then relative to the run folder (:mod:`moviead.recipes.stored_paths`; the entry's ``run_dir`` is
    the run folder it was written in).

    Raises:
        FileNotFoundError: the checkpoint does not exist.
        MissingStoredInputError: a stored input cannot be found (says which override supplies it).
        ValueError: the file is not a moviead Stage-II checkpoint, or its weights do not fit its config.
        Stage1MismatchError: ``captioning.stage1`` hashes differently from the Stage-I export it was trained on
            (a checkpoint without a recorded hash only warns).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Stage-II checkpoint not found: {path}")
    checkpoint = load_checkpoint_safely(path)  # refuses pickles that carry code
    info = checkpoint.get(CHECKPOINT_KEY)
    if not info or "config" not in info:
        raise ValueError(f"{path} holds no moviead Stage-II entry (config and Stage-I export): was it written by "
                         "`moviead train` with task=captioning?")
    cfg = _config_from(info["config"], config_files, overrides)
    resolve_stored_inputs(cfg, info["config"], path, path.parent.parent, info.get("run_dir"))
    check_stage1(cfg, info.get("stage1_sha256"), info.get("stage1"), path, recorded="stage1_sha256" in info)
    recipe = build_recipe(cfg, run_dir=path.parent.parent)
    prefix = "captioner."
    _load_trainable(recipe, {k[len(prefix):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)},
                    path)
    return recipe, cfg


def captioner_export_config(cfg: DictConfig, stage1_hash: str | None = None) -> dict[str, Any]:
    """What ``captioner_config.json`` holds for the run ``cfg`` (see the module docstring); ``stage1_hash``: the
    Stage-I export's hash when the caller already has it (default: computed here)."""
    full = resolved_config(cfg)
    sections = {
        "task": full["task"],
        "captioning": full["captioning"],
        "data": {"dataset": full["data"]["dataset"], "feature_dim": full["data"]["feature_dim"]},
        "loader": {"frames": full["loader"]["frames"]},
    }
    return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "config": sections,
            "run_dir": run_dir_of(full),
            "stage1": full["captioning"]["stage1"],
            "stage1_sha256": stage1_hash if stage1_hash is not None else stage1_sha256(cfg)}


def save_captioner_export(recipe: Recipe, cfg: DictConfig, out: str | Path, stage1_hash: str | None = None) -> Path:
    """Write ``out/captioner.safetensors`` (the captioner's trainable weights) and ``out/captioner_config.json``;
    returns ``out``. Read back with :func:`load_captioner_export`. ``stage1_hash`` as :func:`captioner_export_config`."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    weights = {n: p.detach().contiguous() for n, p in recipe.captioner.named_parameters() if p.requires_grad}
    save_file(weights, str(out / CAPTIONER_WEIGHTS), metadata={"format": "pt"})
    (out / CAPTIONER_CONFIG).write_text(json.dumps(captioner_export_config(cfg, stage1_hash), indent=2) + "\n")
    return out


def load_captioner_export(
    folder: str | Path, overrides: Sequence[str] = (), config_files: Sequence[str | Path] = ()
) -> tuple[Recipe, DictConfig]:
    """Rebuild the recipe of a Stage-II export folder (``captioner_config.json`` + ``captioner.safetensors``).

    The config is the schema defaults, then the stored sections, then ``config_files`` (YAML, e.g. the data config
    with its ``data.root``), then ``overrides`` (``key=value``); the recipe is built from it and the trainable
    weights are loaded (every stored weight must exist, every trainable parameter must be stored).

    Raises:
        FileNotFoundError: the folder, its config or its weights are missing.
        MissingStoredInputError: a stored input (decoder, tokenizer, Stage-I export, sentence encoder) cannot be
            found (says which override supplies it).
        ValueError: not a captioner export, or weights that do not fit the config.
        Stage1MismatchError: ``captioning.stage1`` hashes differently from the Stage-I export it was trained on.
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    config_path, weights = folder / CAPTIONER_CONFIG, folder / CAPTIONER_WEIGHTS
    for needed in (config_path, weights):
        if not needed.is_file():
            raise FileNotFoundError(f"{needed} not found: a Stage-II export folder (<run>/export of `moviead train` "
                                    f"with task=captioning) holds {CAPTIONER_CONFIG} and {CAPTIONER_WEIGHTS}")
    stored = json.loads(config_path.read_text())
    if stored.get("format") != EXPORT_FORMAT or "config" not in stored:
        raise ValueError(f"{config_path} is not a moviead captioner export config (format {EXPORT_FORMAT!r})")
    cfg = _config_from(stored["config"], config_files, overrides)
    resolve_stored_inputs(cfg, stored["config"], folder, folder.parent, stored.get("run_dir"))
    check_stage1(cfg, stored.get("stage1_sha256"), stored.get("stage1"), folder)
    recipe = build_recipe(cfg, run_dir=folder.parent)
    _load_trainable(recipe, load_file(str(weights)), weights)
    return recipe, cfg


def load_captioner(
    path: str | Path, overrides: Sequence[str] = (), config_files: Sequence[str | Path] = ()
) -> tuple[Recipe, DictConfig]:
    """:func:`load_captioner_export` for an export folder, :func:`load_captioner_checkpoint` for a ``.ckpt``."""
    path = Path(path)
    if path.is_dir() and (path / CAPTIONER_CONFIG).is_file():
        return load_captioner_export(path, overrides, config_files)
    return load_captioner_checkpoint(path, overrides, config_files)
