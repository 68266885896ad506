"""Low-rank adapters (LoRA, Hu et al. 2021) on a causal LM, through ``peft``.

:func:`add_lora` injects peft's LoRA layers in place (``inject_adapter_in_model``): the LM stays a transformers
model (its ``generate`` and embeddings unchanged), a wrapped layer computes ``base(x) + B A dropout(x) * alpha / r``
with ``B`` zero at the start, so a freshly wrapped model computes exactly what the base model computes. GPT-2's
``Conv1D`` (weight stored (in, out)) is covered by peft's ``fan_in_fan_out``. Adapter weights are float32 whatever
the LM's dtype. :func:`save_adapter` writes peft's ``save_pretrained`` layout (``adapter_config.json`` and
``adapter_model.safetensors``), which ``peft.PeftModel.from_pretrained(lm, folder)`` loads.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from peft.tuners.tuners_utils import cast_adapter_dtype
from safetensors.torch import save_file
from torch import nn
from transformers.pytorch_utils import Conv1D

ADAPTER = "default"  # peft's adapter name


def lora_module_names(model: nn.Module) -> list[str]:
    """Qualified names of the modules of ``model`` that carry a LoRA adapter."""
    return [name for name, module in model.named_modules() if isinstance(module, LoraLayer)]


def add_lora(
    model: nn.Module, targets: Sequence[str], rank: int, alpha: float = 16.0, dropout: float = 0.0
) -> list[str]:
    """Add, in place, a LoRA adapter to every ``nn.Linear``/``Conv1D`` of ``model`` whose attribute name is in
    ``targets``. The ``requires_grad`` of the model's own parameters is left as it was.

    Args:
        model: a transformers causal LM (or any module).
        targets: attribute names such as ``("q_proj", "v_proj")`` (OPT, Qwen2) or ``("c_attn",)`` (GPT-2).
        rank, alpha, dropout: LoRA settings (``scaling = alpha / rank``).

    Returns:
        The qualified names of the wrapped modules.

    Raises:
        ValueError: when no module matches ``targets`` or ``rank <= 0``.
    """
    if rank <= 0:
        raise ValueError(f"LoRA rank must be positive, got {rank}")
    wanted = set(targets)
    matched = [
        m for n, m in model.named_modules() if n.rsplit(".", 1)[-1] in wanted and isinstance(m, (nn.Linear, Conv1D))
    ]
    if not matched:
        raise ValueError(f"no nn.Linear/Conv1D module named any of {sorted(wanted)} in {type(model).__name__}")
    config = LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=sorted(wanted),
        fan_in_fan_out=all(isinstance(m, Conv1D) for m in matched),  # Conv1D stores its weight (in, out)
    )  # fmt: skip
    trainable = {id(p): p.requires_grad for p in model.parameters()}
    inject_adapter_in_model(config, model, adapter_name=ADAPTER)  # freezes all but the adapters
    for p in model.parameters():
        if id(p) in trainable:
            p.requires_grad_(trainable[id(p)])
    cast_adapter_dtype(model, ADAPTER)  # float16/bfloat16 adapters -> float32, as get_peft_model does
    return lora_module_names(model)


def save_adapter(model: nn.Module, directory: str | os.PathLike) -> Path:
    """Write the LoRA adapter of ``model`` (see :func:`add_lora`) in peft's ``save_pretrained`` layout.

    Returns:
        ``directory``, holding ``adapter_config.json`` and ``adapter_model.safetensors``.
    """
    configs = getattr(model, "peft_config", None)
    if not configs or ADAPTER not in configs:
        raise ValueError(f"{type(model).__name__} carries no LoRA adapter")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    configs[ADAPTER].save_pretrained(str(out))
    # a PeftModel holds the LM as base_model.model: its saved keys carry that prefix
    state = get_peft_model_state_dict(model, adapter_name=ADAPTER)
    state = {f"base_model.model.{k}": v.detach().cpu().contiguous() for k, v in state.items()}
    save_file(state, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    return out


def legacy_lora_keys(state: dict, prefix: str, module_names: Sequence[str]) -> dict:
    """Rename, in ``state``, the keys our former LoRA wrapper wrote (``<m>.lora_A``, ``<m>.lora_B``,
    ``<m>.base.*``) to peft's (``<m>.lora_A.default.weight``, ..., ``<m>.base_layer.*``); ``prefix`` is prepended
    to each of ``module_names``. Returns ``state``, changed in place."""
    for module in module_names:
        at = f"{prefix}{module}."
        renames = {f"{at}lora_A": f"{at}lora_A.{ADAPTER}.weight", f"{at}lora_B": f"{at}lora_B.{ADAPTER}.weight"}
        renames |= {k: f"{at}base_layer.{k[len(at) + 5:]}" for k in state if k.startswith(f"{at}base.")}
        for key, renamed in renames.items():
            if key in state and renamed not in state:
                state[renamed] = state.pop(key)
    return state
