"""FocusedAD Stage-II (FocusedAD §3; SPEC §5.4): scene tokens, the previous ADs as text prior, a soft prompt, a
dynamic instruction naming the recognised characters, and character tokens at each named region.

Reads ``captioning.{context_*, visual_source, stage1, decoder, focused}`` and serves Storyboard-v2 records
(``data.dataset=storyboard``). The decoder has no fixed instruction: the instruction is built per clip by the
collate function (:class:`~moviead.focused.data.FocusedCollator`), whatever ``decoder.instruction`` says.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from moviead.data.captioning_collate import CaptioningCollator
from moviead.data.features import open_feature_store
from moviead.data.formats.storyboard import read_best_query_bank
from moviead.data.records import DatasetName
from moviead.focused.captioner import CHARACTER_TOKEN_SOURCES, CONNECTORS, FocusedCaptioner
from moviead.focused.data import FocusedCollator, InstructionSettings
from moviead.focused.recognition import movie_queries
from moviead.focused.templates import NAME_MODES
from moviead.recipes.base import Recipe, build_decoder, build_visual_encoder, context_requirements

METHOD = "focusedad"


def _check(cfg: DictConfig) -> None:
    focused = cfg.captioning.focused
    problems = []
    if DatasetName(cfg.data.dataset) != DatasetName.storyboard:
        problems.append(f"it reads Storyboard-v2 (data.dataset=storyboard), not {DatasetName(cfg.data.dataset).value}")
    if focused.names not in NAME_MODES:
        problems.append(f"captioning.focused.names must be one of {NAME_MODES}, got {focused.names!r}")
    if focused.character_tokens not in CHARACTER_TOKEN_SOURCES:
        problems.append(f"captioning.focused.character_tokens must be one of {CHARACTER_TOKEN_SOURCES}")
    if focused.connector not in CONNECTORS:
        problems.append(f"captioning.focused.connector must be one of {CONNECTORS}, got {focused.connector!r}")
    if focused.character_tokens == "box" and not focused.patch_features:
        problems.append("character_tokens=box needs captioning.focused.patch_features (patch features (T, H', W', D) "
                        "per global_id, relative to data.root), or set character_tokens=frame")
    if problems:
        raise ValueError("captioning.method=focusedad: " + "; ".join(problems))


def build(cfg: DictConfig, run_dir: Path | None = None) -> Recipe:
    """The FocusedAD captioner of ``cfg.captioning`` and what its data layer needs (``run_dir`` is unused).

    Raises:
        ValueError: settings that contradict FocusedAD, named all at once.
        DataFormatError: the best-query bank (names=recognised) or the patch features cannot be read.
    """
    _check(cfg)
    cap, focused = cfg.captioning, cfg.captioning.focused
    pme, visual_dim = build_visual_encoder(cfg)
    parts = build_decoder(cap.decoder, visual_dim, instruction="")
    root = Path(cfg.data.root)
    bank = None
    if focused.names == "recognised":  # recognition compares each face's embedding with these vectors (eqs. 5-6)
        bank = movie_queries(read_best_query_bank(root / cfg.data.storyboard.best_query))
    patch_path, character_dim = None, int(cfg.data.feature_dim)
    if focused.character_tokens == "box":
        patch_path = root / focused.patch_features
        store = open_feature_store(patch_path)
        character_dim = store.dim()
        getattr(store, "close", lambda: None)()
    captioner = FocusedCaptioner(
        parts.decoder, pme=pme, n_soft=int(focused.n_soft), character_tokens=focused.character_tokens,
        character_dim=character_dim, tokens_per_region=int(focused.tokens_per_region),
        connector=focused.connector, connector_hidden_dim=focused.connector_hidden_dim,
    )
    settings = InstructionSettings(
        names=focused.names, bank=bank, records_path=str(root / cfg.data.storyboard.annotations),
        threshold=float(focused.threshold),
        min_confidence=float(focused.min_confidence), max_characters=int(focused.max_characters),
        region_tokens=focused.character_tokens != "none",
    )
    base = CaptioningCollator(parts.tokenizer, max_text_tokens=cap.decoder.max_text_tokens,
                              max_item_tokens=cap.decoder.max_item_tokens)
    needs = context_requirements(cfg, storyboard_records=True, patch_features=patch_path)
    return Recipe(METHOD, captioner, parts.tokenizer, parts.stop_ids, FocusedCollator(base, settings), needs)
