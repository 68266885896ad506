"""Low-rank adapters (LoRA, Hu et al. 2021) for the linear layers of a frozen causal LM.

A wrapped layer computes ``base(x) + (dropout(x) A^T B^T) * alpha / r`` with ``A`` (r, in) drawn like a
linear layer's weight and ``B`` (out, r) zero, so a freshly wrapped model computes exactly what the base
model computes. Works for :class:`torch.nn.Linear` and transformers' GPT-2 style ``Conv1D`` (a linear layer
whose weight is stored transposed, (in, out)). No merging: the adapter stays a separate branch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D


class LoRALinear(nn.Module):
    """A linear (or ``Conv1D``) layer plus a trainable low-rank update.

    Attributes:
        base: the wrapped layer (its parameters keep their ``requires_grad``).
        lora_A: (r, in_features), Kaiming-uniform init; lora_B: (out_features, r), zeros.
        scaling: ``alpha / r``.
    """

    def __init__(self, base: nn.Module, rank: int, alpha: float = 16.0, dropout: float = 0.0) -> None:
        super().__init__()
        if rank <= 0:
            raise ValueError(f"LoRA rank must be positive, got {rank}")
        if isinstance(base, nn.Linear):
            in_features, out_features = base.in_features, base.out_features
        elif isinstance(base, Conv1D):
            in_features, out_features = base.weight.shape  # Conv1D stores (in, out)
        else:
            raise TypeError(f"LoRA wraps nn.Linear or transformers Conv1D, got {type(base).__name__}")
        self.base = base
        self.rank = rank
        self.scaling = alpha / rank
        device = base.weight.device
        self.lora_A = nn.Parameter(torch.empty(rank, in_features, device=device))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank, device=device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # nn.Linear's default weight init
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in_features) -> (..., out_features)."""
        out = self.base(x)
        update = self.dropout(x).to(self.lora_A.dtype) @ self.lora_A.t() @ self.lora_B.t()
        return out + (update * self.scaling).to(out.dtype)

    def extra_repr(self) -> str:
        return f"rank={self.rank}, scaling={self.scaling:g}"


def apply_lora(
    model: nn.Module, targets: Sequence[str], rank: int, alpha: float = 16.0, dropout: float = 0.0
) -> list[str]:
    """Wrap, in place, every ``nn.Linear``/``Conv1D`` of ``model`` whose attribute name is in ``targets``.

    Args:
        model: any module (typically a transformers causal LM).
        targets: attribute names such as ``("q_proj", "v_proj")`` (OPT, Qwen2) or ``("c_attn",)`` (GPT-2).
        rank, alpha, dropout: LoRA settings (``scaling = alpha / rank``).

    Returns:
        The qualified names of the wrapped modules.

    Raises:
        ValueError: when no module matches ``targets``.
    """
    wanted = set(targets)
    found: list[tuple[nn.Module, str, str]] = []
    for qualified, module in model.named_modules():
        if isinstance(module, LoRALinear):
            continue
        for name, child in module.named_children():
            if name in wanted and isinstance(child, (nn.Linear, Conv1D)):
                found.append((module, name, f"{qualified}.{name}" if qualified else name))
    if not found:
        raise ValueError(f"no nn.Linear/Conv1D module named any of {sorted(wanted)} in {type(model).__name__}")
    for parent, name, _ in found:
        setattr(parent, name, LoRALinear(getattr(parent, name), rank, alpha, dropout))
    return [qualified for _, _, qualified in found]


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The ``lora_A``/``lora_B`` parameters of every :class:`LoRALinear` in ``model``."""
    return [p for m in model.modules() if isinstance(m, LoRALinear) for p in (m.lora_A, m.lora_B)]
