"""Stage-I recipes: the LoCo-MAD PME (``task=pme_alignment``) and DistinctAD's CLIP adaptation
(``task=clip_adaptation``), built from their config sections with their tokenizers."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_model

from moviead.data.tokenization import load_hf_tokenizer
from moviead.models.lavis_convert import convert_lavis_state_dict, load_lavis_state_dict
from moviead.models.qformer import PMEConfig, PretrainedMovieEncoder, pme_export_files

log = logging.getLogger(__name__)


def pme_tokenizer(cfg: DictConfig) -> Any:
    """The PME's BERT tokenizer (``pme.tokenizer``), checked against ``pme.model.vocab_size``.

    Raises:
        ValueError: the tokenizer has more tokens than the PME's embedding table.
    """
    tokenizer = load_hf_tokenizer(cfg.pme.tokenizer, key="pme.tokenizer")
    if len(tokenizer) > cfg.pme.model.vocab_size:
        raise ValueError(
            f"the tokenizer {cfg.pme.tokenizer} has {len(tokenizer)} tokens but pme.model.vocab_size is "
            f"{cfg.pme.model.vocab_size}: set pme.model.vocab_size >= {len(tokenizer)}"
        )
    return tokenizer


def build_pme(cfg: DictConfig) -> PretrainedMovieEncoder:
    """The PME of ``cfg.pme.model`` (frames of ``data.feature_dim``), initialised from ``cfg.pme.init_from`` if given.

    ``init_from`` is a PME export (folder or ``.safetensors`` beside its ``pme_config.json``: Stage-I or
    ``moviead convert-lavis`` output), loaded strictly so sizes must match ``pme.model``, or a LAVIS BLIP-2
    ``.pth`` (converted in memory, mismatched tensors re-initialised and logged).

    Raises:
        FileNotFoundError: ``init_from`` does not exist.
    """
    model = PretrainedMovieEncoder(PMEConfig(**OmegaConf.to_container(cfg.pme.model, resolve=True)))
    source = cfg.pme.init_from
    if source:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"pme.init_from: {path} does not exist (a PME export folder or a LAVIS .pth)")
        if path.is_dir() or path.suffix == ".safetensors":
            weights, _ = pme_export_files(path)
            load_model(model, str(weights), strict=True)
        else:
            converted, report = convert_lavis_state_dict(load_lavis_state_dict(path), model)
            model.load_state_dict(converted, strict=True)
            log.info("initialised the PME from %s\n%s", path, report.summary())
    return model


@dataclass
class CLIPAdaptation:
    """DistinctAD Stage-I: the adapter (or tower) model, its text tokenizer and the open_clip model it wraps."""

    model: Any  # moviead.models.clip_adapter.CLIPVideoAdapter
    tokenizer: Any  # moviead.clip_towers.OpenCLIPTokenizer
    clip_model: Any
    config: Any  # moviead.models.configs.CLIPAdaptationConfig


def build_clip_adaptation(cfg: DictConfig) -> CLIPAdaptation:
    """The CLIP adaptation model of ``cfg.clip`` (adapter mode reads frame features of ``data.feature_dim``).

    Raises:
        ValueError: adapter mode with ``clip.feature_dim`` set apart from ``data.feature_dim``.
        FileNotFoundError: the CLIP weights or architecture file is missing.
    """
    from moviead.clip_towers import OpenCLIPTokenizer, load_open_clip
    from moviead.models.clip_adapter import CLIPAdaptationConfig, CLIPVideoAdapter

    config = CLIPAdaptationConfig(**OmegaConf.to_container(cfg.clip, resolve=True))
    if config.mode == "adapter" and config.feature_dim != cfg.data.feature_dim:
        raise ValueError(
            f"clip.feature_dim={config.feature_dim} but data.feature_dim={cfg.data.feature_dim}: adapter mode reads "
            "the data's CLIP features, so leave clip.feature_dim unset (it follows data.feature_dim)"
        )
    clip_model, _, clip_tokenizer = load_open_clip(
        config.clip_model, config.clip_checkpoint, config.random_init, config.clip_model_config_file
    )
    model = CLIPVideoAdapter(clip_model, config, clip_tokenizer)
    tokenizer = OpenCLIPTokenizer(clip_tokenizer, int(clip_model.context_length))
    return CLIPAdaptation(model, tokenizer, clip_model, config)
