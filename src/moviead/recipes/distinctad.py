"""DistinctAD Stage-II (SPEC §5.3): frame features of the clip and of its neighbouring clips (optionally through the
frozen Stage-I adapter) → contextual EM attention → bases + the clip's residual → projector → LM, with the
distinctive-word loss ``L = L_GEN + λ_dw L_DW``.

Reads ``captioning.{context_*, decoder, distinct}``. The neighbouring clips are the previous ``captioning.context_size``
ADs' intervals: the same ADs that are the prompt's context and that the distinctive words D are computed against,
so one key sets all three. The visual source is always the frame features (DistinctAD has no PME and no DSM).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from moviead.data.captioning_collate import CaptioningCollator
from moviead.data.distinctive_targets import DistinctiveWordTargets
from moviead.models.captioner import ADCaptioner
from moviead.recipes.base import Recipe, build_decoder, context_requirements

METHOD = "distinctad"


def build(cfg: DictConfig, run_dir: Path | None = None) -> Recipe:
    """The DistinctAD captioner of ``cfg.captioning`` and what its data layer needs (``run_dir`` is unused).

    Raises:
        ValueError: EM attention with ``captioning.context_size`` 0 (it has no neighbouring clips to read).
        FileNotFoundError: the LM, its tokenizer or ``distinct.adapter`` is missing.
    """
    cap, d = cfg.captioning, cfg.captioning.distinct
    dim, context = int(cfg.data.feature_dim), int(cap.context_size)
    if d.em_attention and context < 1:
        raise ValueError("captioning.method=distinctad with EM attention needs captioning.context_size >= 1 "
                         "(the neighbouring clips its bases are estimated from)")
    parts = build_decoder(cap.decoder, dim)
    frame_adapter = None
    if d.adapter:
        from moviead.models.frame_adapter import load_frame_adapter

        frame_adapter = load_frame_adapter(d.adapter, dim)
    em_attention, neighbours = None, 0
    if d.em_attention:
        from moviead.models.em_attention import ContextualEMAttention

        em_attention = ContextualEMAttention(
            dim, num_bases=d.num_bases, n_iters=d.n_iters, lam=d.lam, output=d.ema_output,
            grad_last_only=d.grad_last_only, normalize_input=d.normalize_input,
            bases_from=d.bases_from,
        )
        neighbours = context
    targets = None
    if d.lambda_dw > 0:
        targets = DistinctiveWordTargets(parts.tokenizer, parts.decoder.output_vocab_size, context)
    captioner = ADCaptioner(parts.decoder, em_attention=em_attention, frame_adapter=frame_adapter,
                            lambda_dw=float(d.lambda_dw))
    collator = CaptioningCollator(parts.tokenizer, max_text_tokens=cap.decoder.max_text_tokens,
                                  max_item_tokens=cap.decoder.max_item_tokens, neighbour_clips=neighbours,
                                  distinctive=targets)
    needs = context_requirements(cfg, neighbour_clips=neighbours)
    return Recipe(METHOD, captioner, parts.tokenizer, parts.stop_ids, collator, needs)
