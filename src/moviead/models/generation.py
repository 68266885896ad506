"""Decoding for :class:`~moviead.models.decoder.VisualPrefixDecoder` through transformers' ``generate``.

:func:`generate` hands the left-padded prefix of a batch to ``lm.generate(inputs_embeds=..., attention_mask=...,
position_ids=...)`` (greedy when ``num_beams == 1``, beam search otherwise, KV cache on) and returns, per sample,
the new token ids up to and including the first stop token (or ``max_new_tokens`` ids).

The stop-at-first-sentence rule is transformers' own: every stop id (tokens holding "." or a newline, and EOS)
is passed as one of the ``eos_token_id`` ids, so a greedy row ends at its first one and a beam hypothesis is
finished by it (scored ``sum log p / len ** length_penalty``, transformers' ``early_stopping=False``).
Ids without an LM vocabulary entry (>= ``base_vocab_size``) are suppressed. Callers wrap the call in
``torch.inference_mode()``.

Per-row budgets (``GenerationSettings.row_token_limits``, one new-token limit per sample, e.g. from the word budget
of each AD's cue): the batch is decoded with the largest limit (capped by ``max_new_tokens``). A greedy row is then
cut to its own limit (greedy rows are independent, so this is the row decoded alone with that limit). Beam search
returns all ``num_beams`` finished hypotheses of each row (``num_return_sequences = num_beams``) and
:func:`pick_within_budget` takes the best-scoring one that fits the row's budget (``GenerationSettings.fits``, by
default "at most the row's token limit"), else the shortest one (fewest tokens, the better score on a tie): beams
over the budget lose to beams within it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import torch
from transformers import GenerationConfig, LogitsProcessorList
from transformers.generation.logits_process import NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor

from moviead.models.decoder import DecoderInputs, VisualPrefixDecoder


@dataclass
class GenerationSettings:
    """Decoding settings. ``num_beams == 1`` is greedy; ``eos_token_id`` joins ``stop_token_ids``.

    ``row_token_limits``: per sample of the batch, its own new-token limit (None: ``max_new_tokens`` for all);
    ``fits(row, ids)``: whether a hypothesis of that row is within its budget (None: ``len(ids) <= limit``).
    """

    num_beams: int = 5
    max_new_tokens: int = 36
    stop_token_ids: tuple[int, ...] = ()
    eos_token_id: int | None = None
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    length_penalty: float = 1.0
    row_token_limits: tuple[int, ...] | None = None
    fits: Callable[[int, list[int]], bool] | None = None

    def stops(self) -> tuple[int, ...]:
        """The ids that end a sample: ``stop_token_ids`` plus ``eos_token_id``."""
        extra = () if self.eos_token_id is None else (int(self.eos_token_id),)
        return tuple(dict.fromkeys([*map(int, self.stop_token_ids), *extra]))


def _repetition_controls(settings: GenerationSettings) -> LogitsProcessorList:
    """The repetition penalty and n-gram ban over the generated tokens only.

    Built here rather than set in the generation config: given ``repetition_penalty`` with left-padded
    ``inputs_embeds``, transformers skips as many generated tokens as the row has pads (its
    ``prompt_ignore_length`` counts the pads of a prompt that is not in ``input_ids``), so batched decoding would
    differ from one sample at a time. Without ``input_ids`` the ids the processors see are the new tokens only.
    """
    processors = LogitsProcessorList()
    if settings.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(settings.repetition_penalty))
    if settings.no_repeat_ngram_size > 0:
        processors.append(NoRepeatNGramLogitsProcessor(settings.no_repeat_ngram_size))
    return processors


def generation_config(decoder: VisualPrefixDecoder, settings: GenerationSettings) -> GenerationConfig:
    """The transformers :class:`GenerationConfig` of ``settings`` for ``decoder.lm`` (deterministic search).

    transformers fills the fields left ``None`` from the LM's own ``generation_config``: every field that a
    pretrained LM's config may set to change the search or the output (sampling, beams, repetition controls, eos,
    dict output) is set here.
    """
    stops = list(settings.stops())
    vocab = int(decoder.lm.get_output_embeddings().weight.shape[0])
    beam = settings.num_beams > 1
    return GenerationConfig(
        do_sample=False,
        num_beams=settings.num_beams,
        max_new_tokens=settings.max_new_tokens,
        eos_token_id=stops,  # [] (not None) when there is none: the LM's own eos then does not end a sample
        pad_token_id=decoder.pad_token_id,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        suppress_tokens=list(range(decoder.base_vocab_size, vocab)),
        length_penalty=settings.length_penalty if beam else 1.0,
        early_stopping=False,
        temperature=1.0, top_k=50, top_p=1.0, min_length=0,  # transformers' defaults: no warning on a sampling LM
        num_return_sequences=1,
        use_cache=True,
        return_dict_in_generate=False,
        output_scores=False,
        output_logits=False,
    )


def _check_inputs(inputs: DecoderInputs) -> None:
    if not bool(inputs.attention_mask[:, -1].all()):
        raise ValueError("generation needs left-padded inputs (assemble(..., padding_side='left'))")


def _cut_at_first_stop(rows: list[list[int]], stops: tuple[int, ...]) -> list[list[int]]:
    """Each row up to and including its first id in ``stops`` (the whole row when there is none)."""
    stop_set = set(stops)
    return [next((row[: i + 1] for i, t in enumerate(row) if t in stop_set), row) for row in rows]


def pick_within_budget(candidates: Sequence[list[int]], scores: Sequence[float], fits: Callable[[list[int]], bool]) \
        -> list[int]:
    """The best-scoring candidate that ``fits``; when none does, the shortest (the better score on a tie)."""
    if not candidates:
        raise ValueError("no candidate to pick from")
    order = sorted(range(len(candidates)), key=lambda k: -float(scores[k]))
    within = [k for k in order if fits(candidates[k])]
    if within:
        return candidates[within[0]]
    return candidates[min(order, key=lambda k: (len(candidates[k]), -float(scores[k])))]


def _row_limits(settings: GenerationSettings, batch: int) -> list[int] | None:
    if settings.row_token_limits is None:
        return None
    limits = [min(int(n), settings.max_new_tokens) for n in settings.row_token_limits]
    if len(limits) != batch:
        raise ValueError(f"row_token_limits has {len(limits)} limits for a batch of {batch}")
    if min(limits) < 1:
        raise ValueError(f"every row token limit must be >= 1, got {min(limits)}")
    return limits


def generate(decoder: VisualPrefixDecoder, inputs: DecoderInputs, settings: GenerationSettings) -> list[list[int]]:
    """Decode a left-padded batch with ``decoder.lm.generate``: greedy when ``settings.num_beams == 1``, beam
    search otherwise.

    Args:
        decoder: the decoder whose ``lm`` is used (new tokens are embedded by the LM's own input embeddings:
            the special ids, which have no LM row, are never generated).
        inputs: :meth:`VisualPrefixDecoder.assemble` output with ``padding_side="left"`` (labels ignored):
            inputs_embeds (B, L, E), attention_mask (B, L), position_ids (B, L).
        settings: :class:`GenerationSettings`.

    Returns:
        Per sample, the new token ids, ending at (and including) the first stop/eos token, at most
        ``max_new_tokens`` of them (with ``row_token_limits``: see the module's docstring).
    """
    if settings.num_beams < 1:
        raise ValueError(f"num_beams must be >= 1, got {settings.num_beams}")
    _check_inputs(inputs)
    batch = inputs.inputs_embeds.shape[0]
    if settings.max_new_tokens <= 0:
        return [[] for _ in range(batch)]
    limits = _row_limits(settings, batch)
    if limits is not None:
        settings = replace(settings, max_new_tokens=max(limits))
    config = generation_config(decoder, settings)
    ranked = limits is not None and settings.num_beams > 1
    if ranked:
        config.num_return_sequences = settings.num_beams
        config.return_dict_in_generate = True
        config.output_scores = True
    with torch.no_grad():
        output = decoder.lm.generate(
            inputs_embeds=inputs.inputs_embeds,
            attention_mask=inputs.attention_mask,
            position_ids=inputs.position_ids,
            generation_config=config,
            logits_processor=_repetition_controls(settings),
        )  # (B [x beams], <= max_new_tokens): with inputs_embeds alone, only the new tokens, padded after the stop
    sequences = output.sequences if ranked else output
    rows = _cut_at_first_stop(sequences[:, -settings.max_new_tokens :].tolist(), settings.stops())
    if limits is None:
        return rows
    if not ranked:
        return [row[:limit] for row, limit in zip(rows, limits)]
    beams = settings.num_beams
    scores = output.sequences_scores.tolist()
    picked = []
    for b, limit in enumerate(limits):
        def fits(ids: list[int], b: int = b, limit: int = limit) -> bool:
            return len(ids) <= limit and (settings.fits is None or settings.fits(b, ids))

        picked.append(pick_within_budget(rows[b * beams:(b + 1) * beams], scores[b * beams:(b + 1) * beams], fits))
    return [row[:limit] for row, limit in zip(picked, limits)]
