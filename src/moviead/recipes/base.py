"""What every Stage-II recipe shares: the :class:`Recipe` it returns, the decoder builder, the visual encoder.

A recipe turns the ``captioning`` section of a config into a :class:`Recipe`: the captioner, its tokenizer, the
collate function of its batches and the typed :class:`~moviead.data.requirements.DataRequirements` that the
DataModule and the evaluator build their datasets from. The three recipes (:mod:`.loco_mad`, :mod:`.distinctad`,
:mod:`.focusedad`) are built on :func:`build_decoder` and :func:`build_visual_encoder`; anything missing or
contradictory fails here, before training, with what to set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from omegaconf import DictConfig, OmegaConf

from moviead.data.collate import BatchKey
from moviead.data.prompt_tokens import (
    add_prompt_special_tokens,
    ensure_pad_token,
    prompt_and_instruction_ids,
    stop_token_ids,
)
from moviead.data.requirements import DataRequirements
from moviead.data.tokenization import load_hf_tokenizer
from moviead.models.captioner import ADCaptioner, CaptionBatch
from moviead.models.decoder import VisualPrefixDecoder, load_causal_lm
from moviead.models.generation import GenerationSettings
from moviead.models.lavis_convert import load_pme

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "moviead"  # the entry of a Stage-II checkpoint that holds its config and Stage-I export


class Stage1CheckpointError(ValueError):
    """The Stage-I export named by ``captioning.stage1`` is missing or does not fit the Stage-II config."""


@dataclass
class Recipe:
    """A built Stage-II method: the captioner and everything the data layer and decoding need with it.

    Attributes:
        method: ``loco_mad``, ``distinctad`` or ``focusedad``.
        captioner: the model (plain torch).
        tokenizer: the decoder's tokenizer, with the six prompt tokens added.
        stop_ids: token ids that end an AD (a full stop or a newline in them).
        collator: the collate function of this recipe's batches (tokenising happens there).
        data: what each example must carry (context, proposal, neighbouring clips, sentence bank, records).
    """

    method: str
    captioner: ADCaptioner
    tokenizer: Any
    stop_ids: tuple[int, ...]
    collator: Callable[[Sequence[Any]], dict[str, Any]]
    data: DataRequirements

    def decode(self, ids: Sequence[int]) -> str:
        """Text of generated ids, cut after the first full stop (or before the first newline)."""
        return cut_at_stop(self.tokenizer.decode(list(ids), skip_special_tokens=True))

    def generation_settings(self, gen: DictConfig, num_beams: int | None = None) -> GenerationSettings:
        """Decoding settings of ``captioning.generation`` (``num_beams`` overrides its beam count)."""
        return GenerationSettings(
            num_beams=int(num_beams if num_beams is not None else gen.num_beams),
            max_new_tokens=int(gen.max_new_tokens),
            stop_token_ids=self.stop_ids,
            eos_token_id=self.tokenizer.eos_token_id,
            repetition_penalty=float(gen.repetition_penalty),
            no_repeat_ngram_size=int(gen.no_repeat_ngram_size),
            length_penalty=float(gen.length_penalty),
        )


def cut_at_stop(text: str) -> str:
    """``text`` up to and including its first full stop, and before its first newline; stripped."""
    text = text.split("\n", 1)[0]
    stop = text.find(".")
    return (text[: stop + 1] if stop >= 0 else text).strip()


@dataclass
class DecoderParts:
    """The visual-prefix decoder with its tokenizer (prompt tokens added) and stop-token ids."""

    decoder: VisualPrefixDecoder
    tokenizer: Any
    stop_ids: tuple[int, ...]


def build_decoder(dec: DictConfig, visual_dim: int, instruction: str | None = None) -> DecoderParts:
    """The LM of ``captioning.decoder`` (``dec``) behind a projector from ``visual_dim``, with the six prompt tokens.

    Args:
        instruction: text between the context and the AD; None takes ``dec.instruction`` (FocusedAD passes "": its
            instruction is built per clip).

    Raises:
        FileNotFoundError: the LM or its tokenizer is not a folder or a cached hub name (says how to supply it).
    """
    tokenizer = load_hf_tokenizer(dec.tokenizer or dec.lm, key="captioning.decoder.tokenizer")  # null: the LM's
    ensure_pad_token(tokenizer)
    base_vocab = len(tokenizer)
    special_ids = add_prompt_special_tokens(tokenizer)
    lm = load_causal_lm(dec.lm, dtype=dec.dtype)
    if dec.gradient_checkpointing:
        lm.gradient_checkpointing_enable()
    text = dec.instruction if instruction is None else instruction
    prompt_ids, instruction_ids = prompt_and_instruction_ids(tokenizer, dec.prompt, text)
    decoder = VisualPrefixDecoder(
        lm, visual_dim=visual_dim, special_ids=special_ids, base_vocab_size=base_vocab,
        pad_token_id=tokenizer.pad_token_id, prompt_ids=prompt_ids, instruction_ids=instruction_ids,
        freeze_lm=dec.freeze_lm, lora_rank=dec.lora_rank, lora_alpha=dec.lora_alpha, lora_dropout=dec.lora_dropout,
        lora_targets=tuple(dec.lora_targets), max_context_tokens=dec.max_context_tokens,
    )
    return DecoderParts(decoder, tokenizer, stop_token_ids(tokenizer))


def load_stage1(path: str | None, feature_dim: int) -> Any:
    """The frozen PME of a Stage-I export, checked against the data's frame width.

    Raises:
        Stage1CheckpointError: no path, a path that does not exist or holds no PME export, or a PME whose
            ``vision_width`` differs from ``data.feature_dim``.
    """
    if not path:
        raise Stage1CheckpointError(
            "captioning.stage1 is not set: point it at a Stage-I export folder (runs/<name>/export from "
            "`make stage1`), or set captioning.visual_source=frames to train without Stage-I"
        )
    folder = Path(path)
    if not folder.exists():
        raise Stage1CheckpointError(f"captioning.stage1: {folder} does not exist (expected a Stage-I export folder "
                                    "with pme.safetensors and pme_config.json)")
    try:
        pme = load_pme(folder)
    except FileNotFoundError as err:
        raise Stage1CheckpointError(f"captioning.stage1: {folder} is not a PME export ({err})") from None
    if pme.config.vision_width != feature_dim:
        raise Stage1CheckpointError(
            f"captioning.stage1: the PME in {folder} reads {pme.config.vision_width}-d frames but data.feature_dim is "
            f"{feature_dim}: train Stage-I on these features, or use the matching data config"
        )
    return pme


def build_visual_encoder(cfg: DictConfig) -> tuple[Any, int]:
    """The frozen PME of ``captioning.stage1`` and its width (``visual_source=pme``), or (None, ``data.feature_dim``)
    when the frame features themselves are the visual tokens (``visual_source=frames``)."""
    from moviead.config import VisualSource

    if VisualSource(cfg.captioning.visual_source) == VisualSource.pme:
        pme = load_stage1(cfg.captioning.stage1, int(cfg.data.feature_dim))
        return pme, int(pme.config.hidden_size)
    return None, int(cfg.data.feature_dim)


def name_swap_of(cfg: DictConfig) -> Path | None:
    """The name-pool file of ``captioning.name_swap`` (``names_file`` relative to ``data.root``), or None when the swap
    is off. The file is read when a training split is built (:func:`moviead.data.sources.make_dataset`), so a model
    rebuilt for evaluation does not need it."""
    swap = cfg.captioning.name_swap
    if not swap.enabled:
        return None
    if not swap.names_file:
        raise ValueError("captioning.name_swap.enabled=true needs captioning.name_swap.names_file: a text file with "
                         "one character name per line (relative to data.root), e.g. the toy data's "
                         "../toy_manifest.json")
    return Path(cfg.data.root) / swap.names_file


def context_requirements(cfg: DictConfig, **extra: Any) -> DataRequirements:
    """:class:`DataRequirements` of ``captioning``'s context (mode, L_c, subtitles) with proposals and its training
    name swap, plus ``extra``."""
    return DataRequirements.of_context(cfg.captioning, **{"proposal": True, "name_swap": name_swap_of(cfg), **extra})


def caption_batch(batch: dict[str, Any], with_target: bool = True) -> CaptionBatch:
    """The model tensors of a collated captioning batch."""
    return CaptionBatch(
        frames=batch[BatchKey.FRAMES],
        frame_mask=batch[BatchKey.FRAME_MASK],
        proposal_ad_ids=batch[BatchKey.PROPOSAL_AD_IDS],
        proposal_ad_mask=batch[BatchKey.PROPOSAL_AD_MASK],
        proposal_sub_ids=batch[BatchKey.PROPOSAL_SUB_IDS],
        proposal_sub_mask=batch[BatchKey.PROPOSAL_SUB_MASK],
        proposal_valid=batch[BatchKey.PROPOSAL_VALID],
        proposal_features=batch.get(BatchKey.PROPOSAL_FEATURES),
        target_ids=batch.get(BatchKey.TEXT_IDS) if with_target else None,
        target_mask=batch.get(BatchKey.TEXT_MASK) if with_target else None,
        neighbour_frames=batch.get(BatchKey.NEIGHBOUR_FRAMES),
        neighbour_mask=batch.get(BatchKey.NEIGHBOUR_MASK),
        distinct_targets=batch.get(BatchKey.DISTINCT_TARGETS) if with_target else None,
    )


def model_batch(captioner: Any, batch: dict[str, Any], with_target: bool = True) -> CaptionBatch:
    """:func:`caption_batch`, extended by the captioner's ``extend_batch(base, batch)`` when it reads more keys
    (the FocusedAD captioner: its instruction and character regions)."""
    base = caption_batch(batch, with_target)
    extend = getattr(captioner, "extend_batch", None)
    return base if extend is None else extend(base, batch)


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain containers (what a checkpoint stores)."""
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)  # type: ignore[return-value]
