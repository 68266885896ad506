"""The FocusedAD Stage-II captioner (FocusedAD §3.2-3.3): scene tokens, previous ADs, soft prompt, a dynamic
instruction naming the recognised characters, and character tokens at each named region.

It is an :class:`~moviead.models.captioner.ADCaptioner` without DSM (FocusedAD has none: every previous AD of the
proposal goes into the prompt) whose decoder input is built by :func:`~moviead.focused.prompt.assemble_focused`.
The scene tokens are the frame features (or a frozen PME's queries) through the visual connector, which replaces the
decoder's projector: an MLP (Linear, GELU, Linear) as FocusedAD §3.3 has it ("Following (Liu et al., 2023), we employ
an MLP as a visual connector"; LLaVA-1.5's ``mlp2x_gelu``, hidden width the LM's by default), or the plain Linear of
the other recipes (``connector=linear``, an ablation). Plain torch:
:class:`moviead.stages.captioning.CaptioningStage` trains it with :class:`moviead.losses.captioning.CaptioningLoss`
(L_GEN alone: no DSM, no distinctive-word loss); it reads the batch through :meth:`extend_batch`. Training and
decoding use the base class's selection, which without a DSM is every valid proposal item.

The soft prompt (``n_soft`` vectors in the LM's embedding space) starts as copies of randomly drawn rows of the
LM's input embeddings (Lester et al. 2021's "sampled vocabulary" initialisation).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from moviead.focused.character_tokens import CharacterTokenEncoder
from moviead.focused.data import FocusedBatchKey
from moviead.focused.prompt import FocusedPrompt, assemble_focused
from moviead.models.captioner import ADCaptioner, CaptionBatch
from moviead.models.decoder import DecoderInputs, VisualPrefixDecoder
from moviead.models.qformer import PretrainedMovieEncoder

CHARACTER_TOKEN_SOURCES = ("box", "frame", "none")
CONNECTORS = ("mlp", "linear")


def visual_connector(kind: str, visual_dim: int, embed_dim: int, hidden_dim: int | None = None) -> nn.Module:
    """The scene tokens' connector from ``visual_dim`` to the LM's ``embed_dim``: ``mlp`` is Linear(visual_dim →
    hidden_dim), GELU, Linear(hidden_dim → embed_dim) (``hidden_dim`` None: ``embed_dim``, as LLaVA-1.5);
    ``linear`` is one Linear(visual_dim → embed_dim) (``hidden_dim`` unused)."""
    if kind not in CONNECTORS:
        raise ValueError(f"connector must be one of {CONNECTORS}, got {kind!r}")
    if kind == "linear":
        return nn.Linear(visual_dim, embed_dim)
    hidden = embed_dim if hidden_dim is None else int(hidden_dim)
    if hidden < 1:
        raise ValueError(f"the connector's hidden width must be >= 1, got {hidden}")
    return nn.Sequential(nn.Linear(visual_dim, hidden), nn.GELU(), nn.Linear(hidden, embed_dim))


@dataclass(frozen=True)
class FocusedCaptionBatch(CaptionBatch):
    """A captioning batch plus FocusedAD's tensors (:class:`~moviead.focused.data.FocusedBatchKey`).

    Attributes:
        instruction_ids / instruction_mask / instruction_region: (B, Li) the dynamic instruction; region index c
            at the position of region c's character tokens, -1 elsewhere.
        region_boxes: fractions of the frame, (B, C, 4) one box per clip (what Storyboard-v2 gives) or (B, C, T, 4)
            one per frame; region_valid: (B, C) bool.
        patches: (B, T, H', W', Dp) patch features (box mode only).
    """

    instruction_ids: torch.Tensor | None = None
    instruction_mask: torch.Tensor | None = None
    instruction_region: torch.Tensor | None = None
    region_boxes: torch.Tensor | None = None
    region_valid: torch.Tensor | None = None
    patches: torch.Tensor | None = None


def focused_caption_batch(base: CaptionBatch, batch: dict[str, Any]) -> FocusedCaptionBatch:
    """``base`` (the common tensors of a collated batch) with the FocusedAD tensors of ``batch`` added."""
    k = FocusedBatchKey
    missing = [key for key in (k.INSTRUCTION_IDS, k.INSTRUCTION_MASK, k.INSTRUCTION_REGION, k.REGION_BOXES,
                               k.REGION_VALID) if key not in batch]
    if missing:
        raise KeyError(f"the batch lacks {missing}: collate it with moviead.focused.data.FocusedCollator")
    return FocusedCaptionBatch(
        **vars(base),
        instruction_ids=batch[k.INSTRUCTION_IDS],
        instruction_mask=batch[k.INSTRUCTION_MASK],
        instruction_region=batch[k.INSTRUCTION_REGION],
        region_boxes=batch[k.REGION_BOXES],
        region_valid=batch[k.REGION_VALID],
        patches=batch.get(k.PATCHES),
    )


def _keep_a_linear_connector(module: FocusedCaptioner, state: dict, prefix: str, *_) -> None:
    """load_state_dict pre-hook: a checkpoint written before ``captioning.focused.connector`` existed has a Linear
    projector (``decoder.projector.weight``); the MLP built from its config becomes that Linear, with a warning."""
    projector = module.decoder.projector
    if f"{prefix}decoder.projector.weight" not in state or isinstance(projector, nn.Linear):
        return
    first = next(projector.parameters())
    out_dim, in_dim = state[f"{prefix}decoder.projector.weight"].shape
    warnings.warn("these FocusedAD weights have a Linear visual connector (written before captioning.focused."
                  "connector existed, or with connector=linear): loading them with the Linear connector", stacklevel=2)
    module.decoder.projector = nn.Linear(in_dim, out_dim).to(device=first.device, dtype=first.dtype)


class FocusedCaptioner(ADCaptioner):
    """FocusedAD: the visual-prefix decoder with a soft prompt, a per-clip instruction and character tokens.

    Args:
        decoder: the visual-prefix LM (its fixed ``instruction_ids`` must be empty: the instruction is per clip).
        pme: a frozen Stage-I PME for the scene tokens, or None for the frame features themselves.
        n_soft: learnable soft-prompt vectors before the instruction (0: none).
        character_tokens: ``box`` (patch features pooled in each box), ``frame`` (the frame features as a 1x1
            grid, for data without patch features) or ``none`` (no character tokens).
        character_dim: D of the features pooled into character tokens (patch or frame width).
        tokens_per_region: K tokens per character after the temporal merge.
        connector: ``mlp`` (FocusedAD) or ``linear``: what maps the scene features to the LM (it replaces
            ``decoder.projector``; :func:`visual_connector`); connector_hidden_dim: the MLP's hidden width (None: E).
    """

    extend_batch = staticmethod(focused_caption_batch)

    def __init__(
        self, decoder: VisualPrefixDecoder, pme: PretrainedMovieEncoder | None = None, n_soft: int = 8,
        character_tokens: str = "frame", character_dim: int | None = None, tokens_per_region: int = 4,
        connector: str = "mlp", connector_hidden_dim: int | None = None,
    ) -> None:
        super().__init__(decoder, pme=pme)
        if character_tokens not in CHARACTER_TOKEN_SOURCES:
            raise ValueError(f"character_tokens must be one of {CHARACTER_TOKEN_SOURCES}, got {character_tokens!r}")
        if decoder.instruction_ids:
            raise ValueError("FocusedCaptioner builds its instruction per clip: give the decoder no instruction_ids")
        if n_soft < 0:
            raise ValueError(f"n_soft must be >= 0, got {n_soft}")
        self.character_source = character_tokens
        embeddings = decoder.lm.get_input_embeddings().weight
        if connector != "linear":  # the decoder's own projector is the Linear connector
            projector = decoder.projector
            decoder.projector = visual_connector(connector, projector.in_features, decoder.embed_dim,
                                                 connector_hidden_dim).to(projector.weight.device)
            self.register_load_state_dict_pre_hook(_keep_a_linear_connector)
        rows = torch.randint(0, decoder.base_vocab_size, (n_soft,))
        self.soft_prompt = nn.Parameter(embeddings[rows].detach().float().clone()) if n_soft else None
        self.character_encoder: CharacterTokenEncoder | None = None
        if character_tokens != "none":
            if character_dim is None:
                raise ValueError("character tokens need character_dim (the patch or frame feature width)")
            self.character_encoder = CharacterTokenEncoder(character_dim, decoder.embed_dim, tokens_per_region)
            self.character_encoder.to(embeddings.device)

    def character_tokens(self, batch: FocusedCaptionBatch) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(B, C, K, E) character tokens and their (B, C, K) mask, or (None, None) without character tokens."""
        if self.character_encoder is None:
            return None, None
        assert batch.region_boxes is not None and batch.region_valid is not None
        if self.character_source == "box":
            if batch.patches is None:
                raise ValueError("character_tokens=box needs patch features in the batch (captioning.focused."
                                 "patch_features), or use character_tokens=frame")
            grid = batch.patches  # (B, T, H', W', Dp)
        else:
            grid = batch.frames[:, :, None, None, :]  # (B, T, 1, 1, D): each frame is a 1x1 grid
        return self.character_encoder(grid, batch.frame_mask, batch.region_boxes, batch.region_valid)

    def decoder_inputs(
        self, batch: CaptionBatch, selected: torch.Tensor, with_target: bool, padding_side: str = "right"
    ) -> DecoderInputs:
        if not isinstance(batch, FocusedCaptionBatch) or batch.instruction_ids is None:
            raise TypeError("FocusedCaptioner reads a FocusedCaptionBatch (FocusedCaptioner.extend_batch)")
        assert batch.instruction_mask is not None and batch.instruction_region is not None
        tokens, token_mask = self.character_tokens(batch)
        prompt = FocusedPrompt(self.soft_prompt, batch.instruction_ids, batch.instruction_mask,
                               batch.instruction_region, tokens, token_mask)
        visual, visual_mask = self.visual_tokens(batch.frames, batch.frame_mask)
        proposal = (batch.proposal_ad_ids, batch.proposal_ad_mask, batch.proposal_sub_ids, batch.proposal_sub_mask)
        return assemble_focused(
            self.decoder, visual, visual_mask, proposal, selected, prompt,
            batch.target_ids if with_target else None, batch.target_mask if with_target else None,
            padding_side=padding_side,  # type: ignore[arg-type]
        )
