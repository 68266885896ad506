"""Build the Stage-II captioner from a config, and rebuild one from a Stage-II checkpoint.

Everything a Stage-II run needs is named by the config: the decoder LM and its tokenizer (``captioning.decoder``),
the Stage-I export (``captioning.stage1``, PME frozen), the DSM and its sentence encoder (``captioning.dsm``), the
DistinctAD EM attention, Stage-I adapter and distinctive-word targets (``captioning.distinct``).
Anything missing or incompatible fails here, before training starts, with what to fix.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from omegaconf import DictConfig, OmegaConf

from moviead.checkpoints import load_checkpoint_safely
from moviead.config import VisualSource, merge_config_layers
from moviead.data.captioning_collate import CaptioningCollator
from moviead.data.collate import BatchKey
from moviead.data.distinctive_targets import DistinctiveWordTargets
from moviead.data.prompt_tokens import (
    add_prompt_special_tokens,
    ensure_pad_token,
    prompt_and_instruction_ids,
    stop_token_ids,
)
from moviead.data.tokenization import load_hf_tokenizer
from moviead.models.generation import GenerationSettings
from moviead.models.captioner import ADCaptioner, CaptionBatch
from moviead.models.decoder import VisualPrefixDecoder, load_causal_lm
from moviead.models.lavis_convert import load_pme

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "moviead"  # the entry of a Stage-II checkpoint that holds its config and Stage-I export


class Stage1CheckpointError(ValueError):
    """The Stage-I export named by ``captioning.stage1`` is missing or does not fit the Stage-II config."""


@dataclass
class CaptionerParts:
    """A built captioner and what the data layer and decoding need with it."""

    captioner: ADCaptioner
    tokenizer: Any
    stop_ids: tuple[int, ...]
    sentence_bank: Any | None  # moviead.data.sentence_features.SentenceFeatureBank when the DSM is on
    sentence_cache: Path | None = None  # where that bank is saved
    neighbour_clips: int = 0  # DistinctAD: previous clips whose frames the dataset must give (make_dataset argument)
    distinctive: DistinctiveWordTargets | None = None  # DistinctAD: builds the distinctive-word targets in collate

    def decode(self, ids: Sequence[int]) -> str:
        """Text of generated ids, cut after the first full stop (or before the first newline)."""
        return cut_at_stop(self.tokenizer.decode(list(ids), skip_special_tokens=True))

    def collator(self, decoder: DictConfig) -> CaptioningCollator:
        """The Stage-II collate function for this tokenizer and sentence bank (``decoder``: ``captioning.decoder``)."""
        return CaptioningCollator(self.tokenizer, max_text_tokens=decoder.max_text_tokens,
                                  max_item_tokens=decoder.max_item_tokens, sentence_features=self.sentence_bank,
                                  neighbour_clips=self.neighbour_clips, distinctive=self.distinctive)

    def datamodule_kwargs(self, decoder: DictConfig) -> dict[str, Any]:
        """What a DataModule needs to serve this captioner: its collate function, proposals and sentence bank."""
        return {"collate": self.collator(decoder), "with_proposal": True, "sentence_bank": self.sentence_bank,
                "sentence_cache": self.sentence_cache, "neighbour_clips": self.neighbour_clips}

    def generation_settings(self, gen: DictConfig, num_beams: int | None = None) -> GenerationSettings:
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


def _sentence_bank(cfg: DictConfig, run_dir: Path | None) -> tuple[Any, Path]:
    """The DSM's sentence-feature bank, filled from its cache file when one exists, and that file's path."""
    from moviead.data.sentence_features import SentenceFeatureBank

    dsm = cfg.captioning.dsm
    cache = Path(dsm.sentence_cache) if dsm.sentence_cache else (run_dir or Path(".")) / "sentence_features.safetensors"
    if cache.exists():
        return SentenceFeatureBank.load(cache, dsm.sentence_encoder), cache
    return SentenceFeatureBank(dsm.sentence_encoder), cache


@dataclass
class DistinctParts:
    """DistinctAD's pieces of the captioner (all None / 0 when ``captioning.distinct`` is off)."""

    em_attention: Any = None  # ContextualEMAttention
    frame_adapter: Any = None  # FrozenFrameAdapter
    neighbour_clips: int = 0
    targets: DistinctiveWordTargets | None = None
    lambda_dw: float = 0.0


def check_distinct_source(cfg: DictConfig) -> None:
    """DistinctAD reads frame features: ValueError when ``captioning.distinct`` is on with another visual source."""
    if cfg.captioning.distinct.enabled and VisualSource(cfg.captioning.visual_source) != VisualSource.frames:
        raise ValueError("captioning.distinct needs captioning.visual_source=frames: the EM attention and the Stage-I "
                         "adapter read frame features (DistinctAD has no PME)")


def build_distinct(cfg: DictConfig, tokenizer: Any, vocab_size: int) -> DistinctParts:
    """The EM attention, frozen Stage-I adapter and distinctive-word targets of ``cfg.captioning.distinct``.

    Raises:
        ValueError: DistinctAD with a PME visual source (it reads frame features).
        FileNotFoundError: ``distinct.adapter`` names a missing export.
    """
    d = cfg.captioning.distinct
    if not d.enabled:
        return DistinctParts()
    check_distinct_source(cfg)
    if d.n_context_clips < 1:
        raise ValueError(f"captioning.distinct.n_context_clips must be >= 1, got {d.n_context_clips}")
    parts = DistinctParts(lambda_dw=float(d.lambda_dw))
    dim = int(cfg.data.feature_dim)
    if d.adapter:
        from moviead.models.frame_adapter import load_frame_adapter

        parts.frame_adapter = load_frame_adapter(d.adapter, dim)
    if d.em_attention:
        from moviead.models.em_attention import ContextualEMAttention

        parts.em_attention = ContextualEMAttention(
            dim, num_bases=d.num_bases, n_iters=d.n_iters, lam=d.lam, output=d.ema_output,
            grad_last_only=d.grad_last_only, normalize_input=d.normalize_input,
        )
        parts.neighbour_clips = int(d.n_context_clips)
    if d.lambda_dw > 0:
        parts.targets = DistinctiveWordTargets(tokenizer, vocab_size, int(d.n_context_clips))
    return parts


def build_captioner(cfg: DictConfig, run_dir: Path | None = None) -> CaptionerParts:
    """Tokenizer (with the six prompt tokens), LM, frozen PME, DSM, DistinctAD parts, decoder of ``cfg.captioning``."""
    cap = cfg.captioning
    if cap.focused.enabled:  # FocusedAD wraps this decoder in its own captioner
        from moviead.recipes.focusedad import build_focused_captioner

        return build_focused_captioner(cfg, run_dir)
    dec = cap.decoder
    check_distinct_source(cfg)
    tokenizer = load_hf_tokenizer(dec.tokenizer or dec.lm)
    ensure_pad_token(tokenizer)
    base_vocab = len(tokenizer)
    special_ids = add_prompt_special_tokens(tokenizer)
    lm = load_causal_lm(dec.lm, dtype=dec.dtype)
    if dec.gradient_checkpointing:
        lm.gradient_checkpointing_enable()
    if VisualSource(cap.visual_source) == VisualSource.pme:
        pme = load_stage1(cap.stage1, int(cfg.data.feature_dim))
        visual_dim = pme.config.hidden_size
    else:
        pme, visual_dim = None, int(cfg.data.feature_dim)
    prompt_ids, instruction_ids = prompt_and_instruction_ids(tokenizer, dec.prompt, dec.instruction)
    decoder = VisualPrefixDecoder(
        lm, visual_dim=visual_dim, special_ids=special_ids, base_vocab_size=base_vocab,
        pad_token_id=tokenizer.pad_token_id, prompt_ids=prompt_ids, instruction_ids=instruction_ids,
        freeze_lm=dec.freeze_lm, lora_rank=dec.lora_rank, lora_alpha=dec.lora_alpha, lora_dropout=dec.lora_dropout,
        lora_targets=tuple(dec.lora_targets), max_context_tokens=dec.max_context_tokens,
    )
    dsm, bank, cache = None, None, None
    if cap.dsm.enabled:
        from moviead.models.dsm import DynamicSelectionModule

        bank, cache = _sentence_bank(cfg, run_dir)
        d = cap.dsm
        dsm = DynamicSelectionModule(
            text_dim=bank.dim, visual_dim=int(cfg.data.feature_dim), n_layers=d.n_layers, n_heads=d.n_heads,
            top_k=d.top_k, temp_init=d.temp_init, max_proposal=max(32, int(cfg.data.context.context_size) + 1),
            recency_embedding=d.recency_embedding, dropout=d.dropout,
        )
    distinct = build_distinct(cfg, tokenizer, decoder.output_vocab_size)
    frozen_cache = None
    if pme is not None and cap.frozen_cache_gb > 0:
        from moviead.models.frozen_cache import FrozenEncoderCache

        frozen_cache = FrozenEncoderCache(int(cap.frozen_cache_gb * 1e9))
    captioner = ADCaptioner(decoder, pme=pme, dsm=dsm, em_attention=distinct.em_attention,
                            frame_adapter=distinct.frame_adapter, lambda_dw=distinct.lambda_dw,
                            frozen_cache=frozen_cache)
    return CaptionerParts(captioner, tokenizer, stop_token_ids(tokenizer), bank, cache,
                          neighbour_clips=distinct.neighbour_clips, distinctive=distinct.targets)


def load_captioner_checkpoint(
    path: str | Path, overrides: Sequence[str] = (), config_files: Sequence[str | Path] = ()
) -> tuple[CaptionerParts, DictConfig]:
    """Rebuild the captioner of a Stage-II checkpoint: frozen parts from its stored config, then its weights.

    ``config_files`` (YAML, e.g. a data config) and then ``overrides`` (``key=value``) are merged over the stored
    config before the model is built, so evaluation can point the same model at other data.

    Raises:
        FileNotFoundError: the checkpoint does not exist.
        ValueError: the file is not a moviead Stage-II checkpoint.
    """
    from moviead.config import load_config

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Stage-II checkpoint not found: {path}")
    checkpoint = load_checkpoint_safely(path)  # refuses pickles that carry code
    info = checkpoint.get("moviead")
    if not info or "config" not in info:
        raise ValueError(f"{path} holds no moviead Stage-II entry (config and Stage-I export): was it written by "
                         "`moviead train` with task=captioning?")
    cfg = load_config([], [])
    cfg = OmegaConf.merge(cfg, OmegaConf.create(info["config"]))
    cfg = merge_config_layers(cfg, config_files, overrides)
    parts = build_captioner(cfg, run_dir=path.parent.parent)
    prefix = "captioner."
    state = {k[len(prefix):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    missing, unexpected = parts.captioner.load_state_dict(state, strict=False)
    if unexpected:
        raise ValueError(f"{path}: weights that this config's captioner does not have: {unexpected[:5]}")
    trainable = {n for n, p in parts.captioner.named_parameters() if p.requires_grad}
    absent = sorted(trainable & set(missing))
    if absent:
        raise ValueError(f"{path}: trainable weights missing from the checkpoint: {absent[:5]}")
    return parts, cfg


ExtraMetrics = Callable[[list[str], list[str]], dict[str, float]]

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
