"""The allowed range of every numeric config value, checked after each merge (:func:`validate_config`), and the
error type of the config layer. Plain OmegaConf, no torch: a bad value is refused before anything heavy loads."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


class ConfigError(ValueError):
    """A config file or override that does not fit the schema, or a value out of its range."""


# key -> (lowest allowed, lowest is allowed itself, highest allowed or None): checked by validate_config at load
RANGES: dict[str, tuple[float, bool, float | None]] = {
    "seed": (0, True, None),
    "data.fps": (0, False, None),
    "data.feature_dim": (1, True, None),
    "data.lsmdc.clip_fps": (0, False, None),
    "data.val_movies": (1, True, None),
    "data.storyboard.val_fraction": (0, True, 1),
    "data.toy.movies": (1, True, None),
    "loader.batch_size": (1, True, None),
    "loader.eval_batch_size": (1, True, None),
    "loader.num_workers": (0, True, None),
    "loader.max_text_tokens": (1, True, None),
    "loader.max_context_tokens": (1, True, None),
    "loader.frames.num_frames": (1, True, None),
    "loader.frames.max_frames": (1, True, None),
    "loader.frames.train_shift": (0, True, None),
    "captioning.context_size": (0, True, None),
    "captioning.max_subtitles": (0, True, None),
    "captioning.dsm.top_k": (1, True, None),
    "captioning.focused.connector_hidden_dim": (1, True, None),
    "captioning.generation.num_beams": (1, True, None),
    "captioning.generation.max_new_tokens": (1, True, None),
    "captioning.generation.repetition_penalty": (0, False, None),
    "captioning.generation.no_repeat_ngram_size": (0, True, None),
    "captioning.decoder.max_context_tokens": (1, True, None),
    "captioning.decoder.max_text_tokens": (1, True, None),
    "captioning.decoder.lora_rank": (0, True, None),
    "captioning.val_generate_batches": (0, True, None),
    "captioning.val_num_beams": (1, True, None),
    "captioning.frozen_cache_gb": (0, True, None),
    "trainer.accumulate_grad_batches": (1, True, None),
    "trainer.log_every_n_steps": (1, True, None),
    "trainer.check_val_every_n_epoch": (1, True, None),
    "trainer.ckpt_every_n_steps": (0, True, None),
    "trainer.num_sanity_val_steps": (-1, True, None),
    "optim.lr": (0, False, None),
    "optim.weight_decay": (0, True, None),
    "optim.warmup_steps": (0, True, None),
    "optim.min_lr_ratio": (0, True, 1),
}


def _range_text(low: float, inclusive: bool, high: float | None) -> str:
    text = f"{'>=' if inclusive else '>'} {low:g}"
    return text if high is None else f"{text} and <= {high:g}"


def validate_config(cfg: DictConfig, source: str = "config") -> DictConfig:
    """Check the numeric values of :data:`RANGES` (fps > 0, batch sizes >= 1, beams >= 1, lr > 0, ...); returns
    ``cfg``. Keys that are absent or None (optional) are skipped.

    Raises:
        ConfigError: the first value out of range, naming its key, its value and the allowed range.
    """
    for key, (low, inclusive, high) in RANGES.items():
        try:
            value = OmegaConf.select(cfg, key, throw_on_missing=False)
        except OmegaConfBaseException as err:  # an interpolation that does not resolve
            raise ConfigError(f"{source}: {key} cannot be resolved: {str(err).splitlines()[0]}") from None
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        ok = (value >= low if inclusive else value > low) and (high is None or value <= high)
        if not ok:
            raise ConfigError(f"{source}: {key}={value!r} is out of range: it must be {_range_text(low, inclusive, high)}")
    return cfg
