"""LAVIS BLIP-2 checkpoint -> PME, and the PME's on-disk format (safetensors + ``pme_config.json``).

A LAVIS ``Blip2Qformer`` state dict (e.g. ``blip2_pretrained_vitL.pth``) maps onto
:class:`~moviead.models.qformer.PretrainedMovieEncoder` by renaming only (see the mapping in
:mod:`moviead.models.qformer`). :func:`convert_lavis_state_dict` does the renaming and sorts every key into
one of four lists of a :class:`ConversionReport`:

- *mapped*: copied from LAVIS;
- *skipped*: deliberately not used (``visual_encoder.*`` and ``ln_vision.*``, the image tower: our inputs are
  precomputed frame features; ``Qformer.bert.embeddings.position_ids``, a buffer the model rebuilds);
- *re-initialised*: a LAVIS tensor whose shape differs from ours (a ViT-L checkpoint's cross-attention
  key/value weights are (768, 1024), MAD's CLIP L/14 features are 768-d): the model's own initial values;
- *kept from init*: model keys with no LAVIS source (``frame_norm.*``).

Any other LAVIS key is an error (nothing is dropped silently). The LM head's decoder is tied to the word
embeddings (and its bias to ``lm_head.bias``) in both models: tied keys get one value, and a LAVIS checkpoint
whose tied tensors differ is refused.

The PME format, shared by the converter and the Stage-I export (:meth:`PretrainedMovieEncoder.save_pretrained` /
:meth:`~PretrainedMovieEncoder.from_pretrained`, wrapped by :func:`save_pme` / :func:`load_pme`): a safetensors
file written by ``safetensors.torch.save_model`` (tied weights stored once) and ``pme_config.json`` (the
:class:`PMEConfig` as JSON) in the same directory.
"""

from __future__ import annotations

import dataclasses
import pickle
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from moviead.models.qformer import PMEConfig, PretrainedMovieEncoder, write_pme

#: PME config of a real LAVIS ``blip2_pretrained_vitL.pth`` applied to MAD's 768-d CLIP L/14 frame features.
LAVIS_VITL_DEFAULTS: dict[str, Any] = {"vocab_size": 30523, "vision_width": 768, "num_query_tokens": 32}

_SKIPPED_PREFIXES = {
    "visual_encoder.": "image tower (PME reads precomputed frame features)",
    "ln_vision.": "image tower LayerNorm (PME has its own frame_norm)",
}
_SKIPPED_KEYS = {"Qformer.bert.embeddings.position_ids": "position-id buffer (rebuilt by the model)"}
_PREFIX_MAP = (
    ("Qformer.bert.embeddings.word_embeddings.", "embeddings.word_embeddings."),
    ("Qformer.bert.embeddings.position_embeddings.", "embeddings.position_embeddings."),
    ("Qformer.bert.embeddings.LayerNorm.", "qformer.layernorm."),
    ("Qformer.bert.encoder.", "qformer.encoder."),
    ("Qformer.cls.predictions.", "lm_head."),
    ("vision_proj.", "vision_proj."),
    ("text_proj.", "text_proj."),
    ("itm_head.", "itm_head."),
)
_SAME_NAME = ("query_tokens", "temp")
_SELF_ATTENTION = re.compile(r"\.(attention|crossattention)\.self\.")


@dataclass(frozen=True)
class Reinitialised:
    """A LAVIS tensor not used because its shape differs from the model's."""

    lavis_key: str
    pme_key: str
    lavis_shape: tuple[int, ...]
    pme_shape: tuple[int, ...]


@dataclass
class ConversionReport:
    """Where every LAVIS key and every PME key went.

    Attributes:
        mapped: ``(lavis_key, pme_key)`` pairs copied over (a tied PME key filled from its sibling's source
            appears with that source).
        skipped: ``(lavis_key, reason)`` for LAVIS keys deliberately not used.
        reinitialised: shape-mismatched tensors, which keep the model's initial values.
        kept_from_init: PME keys with no LAVIS source.
    """

    mapped: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    reinitialised: list[Reinitialised] = field(default_factory=list)
    kept_from_init: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Multi-line human-readable account for the log (skipped keys are counted per reason)."""
        lines = [
            f"LAVIS -> PME: {len(self.mapped)} mapped, {len(self.skipped)} skipped, "
            f"{len(self.reinitialised)} re-initialised (shape mismatch), {len(self.kept_from_init)} kept from init"
        ]
        for reason, count in Counter(reason for _, reason in self.skipped).items():
            keys = [key for key, r in self.skipped if r == reason]
            shown = keys[0] if count == 1 else ", ".join(sorted({key.split(".")[0] + ".*" for key in keys}))
            lines.append(f"  skipped {count} key(s) {shown}: {reason}")
        for item in self.reinitialised:
            lines.append(
                f"  re-initialised {item.pme_key}: LAVIS {item.lavis_key} has shape {list(item.lavis_shape)}, "
                f"model expects {list(item.pme_shape)}"
            )
        for key in self.kept_from_init:
            lines.append(f"  kept from init (no LAVIS source): {key}")
        return "\n".join(lines)


def lavis_key_to_pme(key: str) -> str | None:
    """The PME state-dict name of a LAVIS BLIP-2 Q-Former key, or None when the key is not a Q-Former key."""
    if key in _SAME_NAME:
        return key
    for lavis_prefix, pme_prefix in _PREFIX_MAP:
        if key.startswith(lavis_prefix):
            return _SELF_ATTENTION.sub(r".\1.attention.", pme_prefix + key[len(lavis_prefix) :])
    return None


def _skip_reason(key: str) -> str | None:
    if key in _SKIPPED_KEYS:
        return _SKIPPED_KEYS[key]
    for prefix, reason in _SKIPPED_PREFIXES.items():
        if key.startswith(prefix):
            return reason
    return None


def _tie_groups(model: torch.nn.Module) -> list[list[str]]:
    """State-dict keys that name the same tensor (e.g. ``lm_head.decoder.weight`` and the word embeddings)."""
    groups: dict[int, list[str]] = {}
    for key, tensor in model.state_dict(keep_vars=True).items():
        groups.setdefault(id(tensor), []).append(key)
    return [keys for keys in groups.values() if len(keys) > 1]


def convert_lavis_state_dict(
    lavis_state: Mapping[str, torch.Tensor],
    model: PretrainedMovieEncoder,
    generator: torch.Generator | None = None,
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Rename a LAVIS BLIP-2 state dict into a full state dict for ``model``.

    Args:
        lavis_state: LAVIS ``Blip2Qformer`` state dict (``visual_encoder.*`` / ``ln_vision.*`` may be present).
        model: the target PME (not modified); its current values fill re-initialised and unmapped keys.
        generator: when given, re-initialised tensors of 2+ dims are redrawn from N(0, initializer_range) with
            it (reproducible whatever the global RNG); 1-D ones keep the model's init (zeros / ones).

    Returns:
        ``(state, report)``: ``state`` has exactly the keys of ``model.state_dict()`` with its dtypes and
        shapes (so ``model.load_state_dict(state, strict=True)`` works) and ``report`` says where each came from.

    Raises:
        ValueError: unknown LAVIS keys, LAVIS keys with no counterpart in the model (layer count or
            cross-attention frequency differ from the config), or tied LAVIS tensors that differ.
    """
    target = {k: v.detach() for k, v in model.state_dict().items()}
    report = ConversionReport()
    state: dict[str, torch.Tensor] = {}
    sources: dict[str, str] = {}
    unknown, unmatched = [], []
    for key, tensor in lavis_state.items():
        reason = _skip_reason(key)
        if reason is not None:
            report.skipped.append((key, reason))
            continue
        pme_key = lavis_key_to_pme(key)
        if pme_key is None:
            unknown.append(key)
        elif pme_key not in target:
            unmatched.append(f"{key} -> {pme_key}")
        elif tuple(tensor.shape) != tuple(target[pme_key].shape):
            report.reinitialised.append(
                Reinitialised(key, pme_key, tuple(tensor.shape), tuple(target[pme_key].shape))
            )
        else:
            state[pme_key] = tensor.detach().to(dtype=target[pme_key].dtype, device="cpu").clone()
            sources[pme_key] = key
            report.mapped.append((key, pme_key))
    if unknown:
        raise ValueError(f"unknown LAVIS keys (neither Q-Former nor image tower): {sorted(unknown)}")
    if unmatched:
        raise ValueError(f"LAVIS keys with no counterpart in the PME (check the PMEConfig sizes): {unmatched}")

    for group in _tie_groups(model):
        _unify_tied(group, state, sources, report)

    std = model.config.initializer_range
    reinit_keys = {item.pme_key for item in report.reinitialised}
    for key, value in target.items():
        if key in state:
            continue
        fresh = value.detach().to("cpu").clone()
        if key in reinit_keys and generator is not None and fresh.dim() >= 2:
            fresh = torch.randn(fresh.shape, generator=generator, dtype=torch.float32).mul_(std).to(fresh.dtype)
        state[key] = fresh
        if key not in reinit_keys:
            report.kept_from_init.append(key)
    for group in _tie_groups(model):  # tied keys that were all re-initialised get one (the first) value
        for key in group[1:]:
            state[key] = state[group[0]]
    return {key: state[key] for key in target}, report


def _unify_tied(
    group: list[str], state: dict[str, torch.Tensor], sources: dict[str, str], report: ConversionReport
) -> None:
    """Give all keys of one tie group the same mapped tensor; refuse differing LAVIS values."""
    mapped = [key for key in group if key in state]
    if not mapped:
        return
    first = mapped[0]
    for key in mapped[1:]:
        if not torch.equal(state[key], state[first]):
            raise ValueError(
                f"LAVIS tensors {sources[first]} and {sources[key]} differ, but {first} and {key} are tied in "
                "the PME; this converter only accepts checkpoints whose LM decoder is tied to the embeddings"
            )
    for key in group:
        if key not in state:
            state[key] = state[first]
            sources[key] = sources[first]
            report.mapped.append((sources[first], key))
            report.reinitialised = [item for item in report.reinitialised if item.pme_key != key]
        else:
            state[key] = state[first]  # one tensor for the whole group


# ---------------------------------------------------------------------------------------------- files


def load_lavis_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a LAVIS checkpoint safely (``torch.load(weights_only=True)``) and return its state dict.

    Accepts a raw state dict or LAVIS's ``{"model": state_dict, ...}``.

    Raises:
        pickle.UnpicklingError: the file holds objects other than tensors and plain containers (the message
            names the file); ValueError: the loaded object is not a state dict of tensors.
    """
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise pickle.UnpicklingError(
            f"refusing to load {path}: only plain state dicts (tensors in dicts, optionally under 'model') are "
            f"accepted, and torch.load(weights_only=True) found something else ({_unpickler_reason(err)})"
        ) from err
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} is not a state dict of tensors (nor {{'model': state_dict}})")
    return dict(obj)


def _unpickler_reason(err: Exception) -> str:
    """The informative line of torch's weights-only error (e.g. "Unsupported global: GLOBAL mod.Cls ...")."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines:
        if line.startswith("WeightsUnpickler error:"):
            return line.removeprefix("WeightsUnpickler error:").strip().split(". ")[0]
    return lines[-1] if lines else type(err).__name__


def save_pme(model: PretrainedMovieEncoder, config: PMEConfig, out_dir: str | Path) -> Path:
    """Write ``out_dir/pme.safetensors`` and ``out_dir/pme_config.json``; returns the weights path.

    A thin wrapper of :meth:`PretrainedMovieEncoder.save_pretrained`.
    """
    return model.save_pretrained(out_dir, config)


def load_pme(path_or_dir: str | Path, device: str | torch.device = "cpu") -> PretrainedMovieEncoder:
    """A PME export, loaded strictly, in eval mode: :meth:`PretrainedMovieEncoder.from_pretrained`."""
    return PretrainedMovieEncoder.from_pretrained(path_or_dir, device)


def convert_lavis_checkpoint(
    in_path: str | Path, out_path: str | Path, config: PMEConfig, seed: int = 0
) -> ConversionReport:
    """LAVIS ``.pth`` -> PME safetensors at ``out_path`` plus ``pme_config.json`` beside it.

    Builds the PME from ``config``, converts (re-initialised tensors drawn from ``seed``), loads the result
    strictly and writes it with tied weights stored once.
    """
    lavis_state = load_lavis_state_dict(in_path)
    model = PretrainedMovieEncoder(config)
    state, report = convert_lavis_state_dict(lavis_state, model, torch.Generator().manual_seed(seed))
    model.load_state_dict(state, strict=True)
    write_pme(model, config, Path(out_path))
    return report


def run_convert_lavis(
    in_path: str, out_path: str, config_overrides: dict[str, Any] | None = None
) -> ConversionReport:
    """CLI entry: convert with :data:`LAVIS_VITL_DEFAULTS` (BERT-base PME, 768-d frames) plus overrides."""
    values = {**LAVIS_VITL_DEFAULTS, **(config_overrides or {})}
    names = {f.name for f in dataclasses.fields(PMEConfig)}
    extra = sorted(set(values) - names)
    if extra:
        raise ValueError(f"unknown PMEConfig fields in overrides: {extra}")
    return convert_lavis_checkpoint(in_path, out_path, PMEConfig(**values))
