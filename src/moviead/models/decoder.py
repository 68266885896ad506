"""The Stage-II decoder (SPEC §5.1): a causal LM reading a visual prefix, the selected context and a target.

Per sample, the LM input embeddings are (LoCo-MAD eq. 10-11)::

    prompt_ids · <b_q> · Proj(visual tokens) · <e_q> · context · instruction_ids · target

with ``context`` = for each selected proposal item, oldest first, ``<b_t> AD <e_t> <b_s> subtitles <e_s>``,
joined; the oldest whole items are dropped to fit ``max_context_tokens`` (:func:`fit_context_items`). The loss
is the cross-entropy on the target only.

Any transformers causal LM works (OPT, GPT-2, Qwen2, ...): we only use ``get_input_embeddings()`` and call
``lm(inputs_embeds=..., attention_mask=..., position_ids=...)`` and ``lm.generate(inputs_embeds=...)``. The six
prompt special tokens (ids >= ``base_vocab_size``) live in a separate trainable table, so with a frozen LM its
embedding matrix stays untouched; the LM head keeps its own rows (the special tokens are never predicted).
LoRA adapters (``lora_rank > 0``) are peft's, injected into ``lm`` in place (:mod:`moviead.models.lora`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from moviead.models.lora import add_lora, legacy_lora_keys, save_adapter

SPECIAL_NAMES = ("b_q", "e_q", "b_t", "e_t", "b_s", "e_s")
IGNORE_INDEX = -100


@dataclass
class DecoderInputs:
    """What the LM reads. ``inputs_embeds`` (B, L, H) in the LM's dtype; ``attention_mask`` (B, L) long, 1 = real;
    ``position_ids`` (B, L) long (0 on pads); ``labels`` (B, L) long, -100 except on target tokens, or None."""

    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    labels: torch.Tensor | None = None


def load_causal_lm(name_or_path: str | os.PathLike, dtype: str | torch.dtype = "float32") -> nn.Module:
    """``AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype)``, with a clear error when absent.

    Args:
        name_or_path: a local folder holding ``config.json`` and the weights, or a hub name (``facebook/opt-125m``)
            already in the local Hugging Face cache when ``HF_HUB_OFFLINE=1``.
        dtype: ``"float32"``, ``"bfloat16"``, ``"float16"``, ``"auto"`` or a torch dtype.

    Raises:
        FileNotFoundError: the folder does not exist, or the name is neither a folder nor a loadable hub model.
    """
    from transformers import AutoModelForCausalLM

    name = str(name_or_path)
    torch_dtype = dtype if isinstance(dtype, torch.dtype) or dtype == "auto" else getattr(torch, dtype)
    how = (
        "Set captioning.decoder.lm to a local folder written by save_pretrained (config.json + weights) or to "
        "the name of a hub model already in the Hugging Face cache (fetch it once on a machine with network "
        "access; with HF_HUB_OFFLINE=1 nothing is downloaded)."
    )
    path = Path(name).expanduser()
    looks_local = path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1
    if looks_local and not path.is_dir():
        raise FileNotFoundError(f"decoder language model folder not found: {name}. {how}")
    try:
        return AutoModelForCausalLM.from_pretrained(str(path) if path.is_dir() else name, dtype=torch_dtype)
    except OSError as err:  # transformers reports missing files/repos as OSError
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")
        raise FileNotFoundError(
            f"cannot load decoder language model {name!r} (HF_HUB_OFFLINE={'1' if offline else '0'}): {err}. {how}"
        ) from err


def target_lists(target_ids: torch.Tensor | None, target_mask: torch.Tensor | None, batch: int) -> list[list[int]]:
    """Each sample's real target tokens ((B, Lt) ids and mask → B lists); B empty lists without targets."""
    if target_ids is None:
        return [[] for _ in range(batch)]
    mask = torch.ones_like(target_ids, dtype=torch.bool) if target_mask is None else target_mask.bool()
    return [[t for t, m in zip(row, keep) if m] for row, keep in zip(target_ids.tolist(), mask.tolist())]


def pad_token_rows(
    sequences: list[list[int]], targets: list[list[int]], pad_id: int, padding_side: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
    """Pad token sequences (each ending with its target) into a batch.

    Returns:
        ids (B, L) int64, labels (B, L) (``IGNORE_INDEX`` except each row's last ``len(targets[b])`` positions),
        attention (B, L) int64, and each row's offset (its first real position: > 0 only with left padding).
    """
    length = max(len(seq) for seq in sequences)
    batch = len(sequences)
    ids = torch.full((batch, length), pad_id, dtype=torch.long)
    labels = torch.full((batch, length), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros(batch, length, dtype=torch.long)
    offsets = []
    for b, seq in enumerate(sequences):
        offset = length - len(seq) if padding_side == "left" else 0
        ids[b, offset : offset + len(seq)] = torch.tensor(seq, dtype=torch.long)
        attention[b, offset : offset + len(seq)] = 1
        if targets[b]:
            labels[b, offset + len(seq) - len(targets[b]) : offset + len(seq)] = torch.tensor(targets[b])
        offsets.append(offset)
    return ids, labels, attention, offsets


CONTEXT_MARKERS = 4  # <b_t> <e_t> <b_s> <e_s> around each context item


def fit_context_items(
    items: Sequence[tuple[Sequence[int], Sequence[int]]], budget: int, markers: tuple[int, int, int, int]
) -> list[int]:
    """The context token ids of ``items`` (oldest first, each ``(ad_tokens, subtitle_tokens)``) within ``budget``.

    Whole items only: starting from the newest, items are kept while the total length fits, and the oldest ones
    that do not fit are dropped, so every kept item sits inside balanced ``<b_t> .. <e_t> <b_s> .. <e_s>`` markers.
    When even the newest item alone exceeds the budget, it is kept with its text truncated inside its four
    markers: the AD whole when it fits, and the subtitles' last tokens (those nearest the current clip) in the
    remaining room; an AD longer than the room keeps its last tokens and no subtitle. A budget below the four
    markers gives no context.

    Args:
        items: per item, its AD tokens (empty for a subtitles-only item) and its subtitle tokens.
        budget: the most context tokens (``max_context_tokens``).
        markers: the ids of ``b_t, e_t, b_s, e_s``.

    Returns:
        The joined ids, at most ``budget`` long.
    """
    b_t, e_t, b_s, e_s = markers
    kept: list[list[int]] = []
    used = 0
    for ad, sub in reversed(items):
        tokens = [b_t, *ad, e_t, b_s, *sub, e_s]
        if used + len(tokens) <= budget:
            kept.append(tokens)
            used += len(tokens)
            continue
        if not kept and budget >= CONTEXT_MARKERS:  # the newest item alone overflows: truncate its text
            room = budget - CONTEXT_MARKERS
            ad_part = list(ad)[-room:] if room else []
            sub_room = room - len(ad_part)
            sub_part = list(sub)[-sub_room:] if sub_room else []
            kept.append([b_t, *ad_part, e_t, b_s, *sub_part, e_s])
        break
    return [t for tokens in reversed(kept) for t in tokens]


def _rename_legacy_lora_keys(module: VisualPrefixDecoder, state: dict, prefix: str, *_) -> None:
    """load_state_dict pre-hook: our former LoRA wrapper's keys -> peft's (see :func:`legacy_lora_keys`)."""
    legacy_lora_keys(state, f"{prefix}lm.", module.lora_modules)


class VisualPrefixDecoder(nn.Module):
    """A (frozen by default) causal LM conditioned on projected visual tokens and textual context.

    Attributes:
        lm: the causal LM; its parameters have ``requires_grad=False`` when ``freeze_lm``.
        projector: Linear(visual_dim -> E), E the LM's input-embedding width (FocusedAD swaps in an MLP,
            :func:`moviead.focused.captioner.visual_connector`).
        special_embeddings: (n_new, E) float32 rows for the ids ``base_vocab_size ..``; initialised to the mean
            of the LM's embedding rows ``[:base_vocab_size]``.
        special_ids: name -> id for ``b_q e_q b_t e_t b_s e_s``.
        lora_modules: qualified names (in ``lm``) of the modules given a peft LoRA adapter (empty without LoRA).
    """

    def __init__(
        self,
        lm: nn.Module,
        *,
        visual_dim: int,
        special_ids: Mapping[str, int],
        base_vocab_size: int,
        pad_token_id: int,
        prompt_ids: Sequence[int] = (),
        instruction_ids: Sequence[int] = (),
        freeze_lm: bool = True,
        lora_rank: int = 0,
        lora_alpha: float = 16.0,
        lora_dropout: float = 0.0,
        lora_targets: Sequence[str] = ("q_proj", "v_proj"),
        max_context_tokens: int = 200,
    ) -> None:
        super().__init__()
        missing = [n for n in SPECIAL_NAMES if n not in special_ids]
        if missing:
            raise ValueError(f"special_ids lacks {missing}; expected keys {SPECIAL_NAMES}")
        self.special_ids = {n: int(special_ids[n]) for n in SPECIAL_NAMES}
        if min(self.special_ids.values()) < base_vocab_size:
            raise ValueError(f"special token ids {self.special_ids} must be >= base_vocab_size={base_vocab_size}")
        if not 0 <= pad_token_id < base_vocab_size:
            raise ValueError(f"pad_token_id={pad_token_id} must be an LM token id (< {base_vocab_size})")
        self.lm = lm
        self.base_vocab_size = int(base_vocab_size)
        self.pad_token_id = int(pad_token_id)
        self.prompt_ids = [int(i) for i in prompt_ids]
        self.instruction_ids = [int(i) for i in instruction_ids]
        self.max_context_tokens = int(max_context_tokens)

        lm_embeddings = lm.get_input_embeddings()
        weight = lm_embeddings.weight
        self.embed_dim = lm_embeddings.embedding_dim
        n_new = max(self.special_ids.values()) - self.base_vocab_size + 1
        with torch.no_grad():
            mean_row = weight[: self.base_vocab_size].float().mean(0)
        self.special_embeddings = nn.Parameter(mean_row.expand(n_new, -1).clone())
        self.projector = nn.Linear(visual_dim, self.embed_dim, device=weight.device)

        if freeze_lm:
            for p in self.lm.parameters():
                p.requires_grad_(False)
        self.lora_modules = add_lora(lm, lora_targets, lora_rank, lora_alpha, lora_dropout) if lora_rank else []
        if self.lora_modules:  # checkpoints written before LoRA came from peft
            self.register_load_state_dict_pre_hook(_rename_legacy_lora_keys)

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike, *, dtype: str | torch.dtype = "float32", **kwargs
    ) -> VisualPrefixDecoder:
        """Load the LM with :func:`load_causal_lm` (FileNotFoundError when missing), then build the decoder."""
        return cls(load_causal_lm(name_or_path, dtype), **kwargs)

    def save_adapter(self, directory: str | os.PathLike) -> Path:
        """Write the LM's LoRA adapter in peft's layout (``adapter_config.json``, ``adapter_model.safetensors``;
        ``peft.PeftModel.from_pretrained(lm, directory)`` loads it). ValueError without LoRA."""
        return save_adapter(self.lm, directory)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters with ``requires_grad`` (projector, special rows, LoRA; the whole LM when not frozen)."""
        return [p for p in self.parameters() if p.requires_grad]

    # ------------------------------------------------------------------ embeddings
    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, L) long -> (B, L, E) in the LM's dtype; ids >= ``base_vocab_size`` read ``special_embeddings``."""
        lm_embeddings = self.lm.get_input_embeddings()
        is_new = ids >= self.base_vocab_size
        base = lm_embeddings(ids.masked_fill(is_new, self.pad_token_id))
        if not bool(is_new.any()):
            return base
        new = self.special_embeddings[(ids - self.base_vocab_size).clamp(min=0)].to(base.dtype)
        return torch.where(is_new[..., None], new, base)

    # ------------------------------------------------------------------ prompt assembly
    def context_ids(self, ad: list, ad_mask: list, sub: list, sub_mask: list, selected: list) -> list[int]:
        """One sample's context ids (nested lists, P items): selected items oldest first, cut at item boundaries.

        Each item is ``<b_t> AD <e_t> <b_s> subtitles <e_s>``; :func:`fit_context_items` keeps the newest whole
        items that fit in ``max_context_tokens`` (see there for an item that alone exceeds it).
        """
        s = self.special_ids
        items: list[tuple[list[int], list[int]]] = [
            ([t for t, m in zip(ad[p], ad_mask[p]) if m], [t for t, m in zip(sub[p], sub_mask[p]) if m])
            for p, keep in enumerate(selected) if keep
        ]
        return fit_context_items(items, self.max_context_tokens, (s["b_t"], s["e_t"], s["b_s"], s["e_s"]))

    def assemble(
        self,
        visual: torch.Tensor,
        visual_mask: torch.Tensor | None,
        proposal_ad_ids: torch.Tensor,
        proposal_ad_mask: torch.Tensor,
        proposal_sub_ids: torch.Tensor,
        proposal_sub_mask: torch.Tensor,
        selected: torch.Tensor,
        target_ids: torch.Tensor | None = None,
        target_mask: torch.Tensor | None = None,
        padding_side: Literal["right", "left"] = "right",
    ) -> DecoderInputs:
        """Build the padded LM input of a batch.

        Args:
            visual: (B, Q, Dv) visual tokens; visual_mask: (B, Q) bool (False rows are left out) or None.
            proposal_ad_ids, proposal_ad_mask: (B, P, La) item AD tokens and their mask.
            proposal_sub_ids, proposal_sub_mask: (B, P, Ls) item subtitle tokens and their mask.
            selected: (B, P) bool, the items that enter the context (items are oldest first).
            target_ids, target_mask: (B, Lt) target tokens and mask, or None (generation).
            padding_side: ``"right"`` for training, ``"left"`` for generation.

        Returns:
            :class:`DecoderInputs` with L = the longest sample; ``labels`` None when ``target_ids`` is None.
        """
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        batch, num_q = visual.shape[:2]
        device = visual.device
        vis_keep = torch.ones(batch, num_q, dtype=torch.bool, device=device) if visual_mask is None else visual_mask
        vis_keep = vis_keep.bool()
        n_vis = vis_keep.sum(1).tolist()
        ad, ad_m = proposal_ad_ids.tolist(), proposal_ad_mask.bool().tolist()
        sub, sub_m = proposal_sub_ids.tolist(), proposal_sub_mask.bool().tolist()
        sel = selected.bool().tolist()
        targets = target_lists(target_ids, target_mask, batch)

        s = self.special_ids
        sequences: list[list[int]] = []
        vis_starts: list[int] = []
        for b in range(batch):
            head = [*self.prompt_ids, s["b_q"]]
            vis_starts.append(len(head))
            tail = [s["e_q"], *self.context_ids(ad[b], ad_m[b], sub[b], sub_m[b], sel[b]), *self.instruction_ids]
            sequences.append(head + [self.pad_token_id] * n_vis[b] + tail + targets[b])
        ids, labels, attention, offsets = pad_token_rows(sequences, targets, self.pad_token_id, padding_side)
        vis_rows: list[int] = []
        vis_cols: list[int] = []
        for b, offset in enumerate(offsets):
            vis_rows.extend([b] * n_vis[b])
            vis_cols.extend(range(offset + vis_starts[b], offset + vis_starts[b] + n_vis[b]))
        ids, labels, attention = ids.to(device), labels.to(device), attention.to(device)
        position_ids = (attention.cumsum(1) - 1) * attention

        embeds = self.embed_tokens(ids)  # (B, L, E)
        dtype = next(self.projector.parameters()).dtype  # a Linear, or FocusedAD's MLP
        projected = self.projector(visual.to(dtype))[vis_keep]  # (sum n_vis, E), row-major
        index = (torch.tensor(vis_rows, dtype=torch.long, device=device), torch.tensor(vis_cols, device=device))
        embeds = embeds.index_put(index, projected.to(embeds.dtype))
        return DecoderInputs(embeds, attention, position_ids, labels if target_ids is not None else None)

    # ------------------------------------------------------------------ training loss
    @property
    def output_vocab_size(self) -> int:
        """V, the number of logits the LM head gives (may exceed the tokenizer's base vocabulary)."""
        return int(self.lm.get_output_embeddings().weight.shape[0])

    def loss(self, inputs: DecoderInputs) -> torch.Tensor:
        """Mean next-token cross-entropy over the target tokens of right- or left-padded ``inputs`` (scalar).

        Logits are computed only over the span of positions that predict a target token (``logits_to_keep``).
        """
        return self._target_loss(inputs, with_hidden=False)[0]

    def loss_and_prompt_state(self, inputs: DecoderInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`loss` and, from the same LM pass, each sample's last hidden state at its last prompt position
        (the one predicting the first target token, after the visual prefix, the context and the instruction),
        (B, H') with H' the LM head's input width; a sample without target tokens reads its last real position."""
        gen, hidden = self._target_loss(inputs, with_hidden=True)
        assert inputs.labels is not None and hidden is not None
        positions = torch.arange(hidden.shape[1], device=hidden.device).expand(hidden.shape[0], -1)
        is_target = inputs.labels != IGNORE_INDEX
        first_target = positions.masked_fill(~is_target, hidden.shape[1]).amin(1)  # (B,)
        last_real = positions.masked_fill(inputs.attention_mask == 0, -1).amax(1) + 1
        prompt_end = torch.where(is_target.any(1), first_target, last_real) - 1
        return gen, hidden[torch.arange(hidden.shape[0], device=hidden.device), prompt_end]

    def _target_loss(self, inputs: DecoderInputs, with_hidden: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The target cross-entropy and, ``with_hidden``, the LM's last hidden states (B, L, H') (else None)."""
        if inputs.labels is None:
            raise ValueError("DecoderInputs has no labels: assemble with target_ids")
        labels = inputs.labels
        is_target = labels != IGNORE_INDEX  # (B, L)
        if not bool(is_target.any()):
            raise ValueError("the batch has no target tokens")
        cols = is_target.any(0).nonzero().squeeze(1)
        first, last = int(cols.min()), int(cols.max())
        if first == 0:
            raise ValueError("a target token at position 0 has no context to be predicted from")
        keep = torch.arange(first - 1, last, device=labels.device)  # positions predicting first .. last
        out = self.lm(
            inputs_embeds=inputs.inputs_embeds,
            attention_mask=inputs.attention_mask,
            position_ids=inputs.position_ids,
            use_cache=False,
            logits_to_keep=keep,
            output_hidden_states=with_hidden,
        )
        logits = out.logits  # (B, last - first + 1, V)
        shifted = labels[:, first : last + 1]
        gen = F.cross_entropy(logits.float().flatten(0, 1), shifted.flatten(), ignore_index=IGNORE_INDEX)
        return gen, out.hidden_states[-1] if with_hidden else None

    def forward(
        self,
        visual: torch.Tensor,
        visual_mask: torch.Tensor | None,
        proposal_ad_ids: torch.Tensor,
        proposal_ad_mask: torch.Tensor,
        proposal_sub_ids: torch.Tensor,
        proposal_sub_mask: torch.Tensor,
        selected: torch.Tensor,
        target_ids: torch.Tensor,
        target_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scalar mean cross-entropy over target tokens; arguments as in :meth:`assemble` (right padding)."""
        inputs = self.assemble(
            visual,
            visual_mask,
            proposal_ad_ids,
            proposal_ad_mask,
            proposal_sub_ids,
            proposal_sub_mask,
            selected,
            target_ids,
            target_mask,
            padding_side="right",
        )
        return self.loss(inputs)
