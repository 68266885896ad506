"""LoCo-MAD Stage-II (SPEC §5.2): the frozen Stage-I PME's queries → projector → LM, with the Dynamic Selection
Module choosing ``captioning.dsm.top_k`` of the previous ``captioning.context_size`` (L_c) ADs and their subtitles.

Reads ``captioning.{context_*, visual_source, stage1, decoder, dsm, frozen_cache_gb}``. ``dsm.enabled=false`` is
Table 6's "w/o DSM": every item of the L_c-item proposal goes into the prompt.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from moviead.data.captioning_collate import CaptioningCollator
from moviead.models.captioner import ADCaptioner
from moviead.recipes.base import Recipe, build_decoder, build_visual_encoder, context_requirements

log = logging.getLogger(__name__)

METHOD = "loco_mad"


def sentence_bank(cfg: DictConfig, run_dir: Path | None) -> tuple[Any, Path]:
    """The DSM's sentence-feature bank, filled from its cache file when one exists, and that file's path."""
    from moviead.data.sentence_features import SentenceFeatureBank

    dsm = cfg.captioning.dsm
    cache = Path(dsm.sentence_cache) if dsm.sentence_cache else (run_dir or Path(".")) / "sentence_features.safetensors"
    if cache.exists():
        return SentenceFeatureBank.load(cache, dsm.sentence_encoder), cache
    return SentenceFeatureBank(dsm.sentence_encoder), cache


def build(cfg: DictConfig, run_dir: Path | None = None) -> Recipe:
    """The LoCo-MAD captioner of ``cfg.captioning`` and what its data layer needs.

    Raises:
        Stage1CheckpointError: ``visual_source=pme`` without a usable Stage-I export.
        FileNotFoundError: the LM, its tokenizer or the sentence encoder is missing (says how to supply it).
    """
    cap = cfg.captioning
    pme, visual_dim = build_visual_encoder(cfg)
    parts = build_decoder(cap.decoder, visual_dim)
    dsm, bank, cache = None, None, None
    if cap.dsm.enabled:
        from moviead.models.dsm import DynamicSelectionModule

        d = cap.dsm
        if d.top_k >= cap.context_size:
            log.warning("captioning.dsm.top_k=%d >= captioning.context_size=%d: the DSM keeps every item of the "
                        "proposal (LoCo-MAD: L_c = 10, top-3)", d.top_k, cap.context_size)
        bank, cache = sentence_bank(cfg, run_dir)
        dsm = DynamicSelectionModule(
            text_dim=bank.dim, visual_dim=int(cfg.data.feature_dim), n_layers=d.n_layers, n_heads=d.n_heads,
            top_k=d.top_k, temp_init=d.temp_init, max_proposal=max(1, int(cap.context_size)),
            recency_embedding=d.recency_embedding, dropout=d.dropout, similarity_prior=d.similarity_prior,
            hidden_dim=d.hidden_dim, train_selection=d.train_selection,
        )
    frozen_cache = None
    if pme is not None and cap.frozen_cache_gb > 0:
        from moviead.models.frozen_cache import FrozenEncoderCache

        frozen_cache = FrozenEncoderCache(int(cap.frozen_cache_gb * 1e9))
    captioner = ADCaptioner(parts.decoder, pme=pme, dsm=dsm, frozen_cache=frozen_cache)
    collator = CaptioningCollator(parts.tokenizer, max_text_tokens=cap.decoder.max_text_tokens,
                                  max_item_tokens=cap.decoder.max_item_tokens, sentence_features=bank)
    needs = context_requirements(cfg, sentence_bank=bank, sentence_cache=cache)
    return Recipe(METHOD, captioner, parts.tokenizer, parts.stop_ids, collator, needs)
