"""Build the FocusedAD Stage-II captioner (``captioning.focused.enabled``) and what its data layer needs.

The tokenizer, LM, decoder (no fixed instruction) and optional frozen PME come from
:func:`~moviead.recipes.build.build_captioner` with ``focused`` off; this module wraps that decoder in a
:class:`~moviead.focused.captioner.FocusedCaptioner` and gives the DataModule a
:class:`~moviead.focused.data.FocusedCollator` (names from the best-query bank or the detections) and, in box mode,
the patch features. Everything missing or contradictory fails here, before training, saying what to set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from moviead.config import DatasetName
from moviead.data.captioning_collate import CaptioningCollator
from moviead.data.features import open_feature_store
from moviead.data.formats.storyboard import read_best_query_bank
from moviead.focused.captioner import CHARACTER_TOKEN_SOURCES, FocusedCaptioner
from moviead.focused.data import FocusedCollator, InstructionSettings
from moviead.focused.templates import NAME_MODES
from moviead.recipes.build import CaptionerParts, build_captioner


@dataclass
class FocusedCaptionerParts(CaptionerParts):
    """:class:`CaptionerParts` of a FocusedAD captioner: its collate function reads Storyboard-v2 examples."""

    instruction: InstructionSettings = InstructionSettings()
    patch_features: Path | None = None  # box mode: the patch-feature store the DataModule reads

    def collator(self, decoder: DictConfig) -> FocusedCollator:  # type: ignore[override]
        """The FocusedAD collate function (``decoder``: ``captioning.decoder``)."""
        base = CaptioningCollator(self.tokenizer, max_text_tokens=decoder.max_text_tokens,
                                  max_item_tokens=decoder.max_item_tokens)
        return FocusedCollator(base, self.instruction)

    def datamodule_kwargs(self, decoder: DictConfig) -> dict[str, Any]:
        """A :class:`moviead.datamodules.StoryboardDataModule` serving Storyboard-v2 examples with proposals."""
        return {"collate": self.collator(decoder), "with_proposal": True, "storyboard_examples": True,
                "patch_features": self.patch_features}


def _check(cfg: DictConfig) -> None:
    cap, focused = cfg.captioning, cfg.captioning.focused
    problems = []
    if DatasetName(cfg.data.dataset) != DatasetName.storyboard:
        problems.append(f"it reads Storyboard-v2 (data.dataset=storyboard), not {DatasetName(cfg.data.dataset).value}")
    if cap.dsm.enabled:
        problems.append("it has no DSM: set captioning.dsm.enabled=false")
    if cap.get("distinct") is not None and cap.distinct.enabled:
        problems.append("it is not DistinctAD: set captioning.distinct.enabled=false")
    if cap.decoder.instruction:
        problems.append("its instruction is built per clip: set captioning.decoder.instruction=''")
    if focused.names not in NAME_MODES:
        problems.append(f"captioning.focused.names must be one of {NAME_MODES}, got {focused.names!r}")
    if focused.character_tokens not in CHARACTER_TOKEN_SOURCES:
        problems.append(f"captioning.focused.character_tokens must be one of {CHARACTER_TOKEN_SOURCES}")
    if focused.character_tokens == "box" and not focused.patch_features:
        problems.append("character_tokens=box needs captioning.focused.patch_features (patch features (T, H', W', D) "
                        "per global_id, relative to data.root), or set character_tokens=frame")
    if problems:
        raise ValueError("captioning.focused: " + "; ".join(problems))


def build_focused_captioner(cfg: DictConfig, run_dir: Path | None = None) -> FocusedCaptionerParts:
    """The FocusedAD captioner of ``cfg.captioning`` (``focused.enabled``) with its collate settings.

    Raises:
        ValueError: settings that contradict FocusedAD (module docstring), named all at once.
        DataFormatError: the best-query bank (names=recognised) or the patch features cannot be read.
    """
    _check(cfg)
    focused = cfg.captioning.focused
    base_cfg = OmegaConf.merge(cfg, {"captioning": {"focused": {"enabled": False}}})
    parts = build_captioner(base_cfg, run_dir)
    root = Path(cfg.data.root)
    bank_names = None
    if focused.names == "recognised":
        bank = read_best_query_bank(root / cfg.data.storyboard.best_query)
        bank_names = {movie: frozenset(names) for movie, names in bank.items()}
    patch_path, character_dim = None, int(cfg.data.feature_dim)
    if focused.character_tokens == "box":
        patch_path = root / focused.patch_features
        store = open_feature_store(patch_path)
        character_dim = store.dim()
        getattr(store, "close", lambda: None)()
    captioner = FocusedCaptioner(
        parts.captioner.decoder, pme=parts.captioner.pme, n_soft=int(focused.n_soft),
        character_tokens=focused.character_tokens, character_dim=character_dim,
        tokens_per_region=int(focused.tokens_per_region),
    )
    settings = InstructionSettings(
        names=focused.names, bank_names=bank_names, threshold=float(focused.threshold),
        min_confidence=float(focused.min_confidence), max_characters=int(focused.max_characters),
        region_tokens=focused.character_tokens != "none",
    )
    return FocusedCaptionerParts(captioner, parts.tokenizer, parts.stop_ids, None, None, instruction=settings,
                                 patch_features=patch_path)
