"""Decoding for :class:`~moviead.models.decoder.VisualPrefixDecoder`: greedy and beam search with a KV cache.

Both run on left-padded :class:`~moviead.models.decoder.DecoderInputs` (all samples end at the last column, so
every new token is appended in one column), feed the LM one token per step through ``past_key_values`` and
return, per sample, the new token ids up to and including the first stop token (or ``max_new_tokens`` ids).

Scoring follows transformers' ``generate``: greedy applies the repetition controls to the raw logits; beam search
applies them to the log-probabilities, ranks hypotheses by the sum of log-probabilities, and scores a finished
hypothesis as ``sum / len ** length_penalty`` (len counts the new tokens, the stop token included). A sample's
beam search ends once it holds ``num_beams`` finished hypotheses and its best running beam, normalised by the
current length, cannot beat the worst of them (transformers' ``early_stopping=False``). At ``max_new_tokens``
the running beams are finished as they are. Callers wrap the call in ``torch.inference_mode()``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from moviead.models.decoder import DecoderInputs, VisualPrefixDecoder

_CLOSED = -1.0e9  # the score of an impossible beam (as transformers: finite, so sums stay ordered)


@dataclass
class GenerationSettings:
    """Decoding settings. ``num_beams == 1`` is greedy; ``eos_token_id`` joins ``stop_token_ids``."""

    num_beams: int = 5
    max_new_tokens: int = 36
    stop_token_ids: tuple[int, ...] = ()
    eos_token_id: int | None = None
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    length_penalty: float = 1.0

    def stops(self) -> tuple[int, ...]:
        """The ids that end a sample: ``stop_token_ids`` plus ``eos_token_id``."""
        extra = () if self.eos_token_id is None else (int(self.eos_token_id),)
        return tuple(dict.fromkeys([*map(int, self.stop_token_ids), *extra]))


def apply_repetition_penalty(scores: torch.Tensor, generated: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's rule (Keskar et al. 2019): a score of a token already generated is divided by ``penalty`` when
    positive and multiplied by it when negative. scores (R, V), generated (R, t) long -> (R, V)."""
    if penalty == 1.0 or generated.shape[1] == 0:
        return scores
    seen = scores.gather(1, generated)
    return scores.scatter(1, generated, torch.where(seen < 0, seen * penalty, seen / penalty))


def ban_repeated_ngrams(scores: torch.Tensor, generated: torch.Tensor, size: int) -> torch.Tensor:
    """Set to -inf every token that would complete an n-gram (n = ``size``) already present in ``generated``.

    scores (R, V), generated (R, t) long -> (R, V).
    """
    length = generated.shape[1]
    if size <= 0 or length < size:
        return scores
    windows = generated.unfold(1, size, 1)  # (R, t - n + 1, n)
    prefix = generated[:, length - size + 1 :]  # (R, n - 1), the n-gram the next token would end
    match = (windows[:, :, :-1] == prefix[:, None, :]).all(-1)  # (R, W)
    rows, cols = match.nonzero(as_tuple=True)
    scores = scores.clone()
    scores[rows, windows[rows, cols, -1]] = float("-inf")
    return scores


def _process(
    decoder: VisualPrefixDecoder, scores: torch.Tensor, generated: torch.Tensor, settings: GenerationSettings
) -> torch.Tensor:
    """Mask ids without an LM vocabulary entry (>= base_vocab_size), then the repetition controls."""
    if scores.shape[1] > decoder.base_vocab_size:
        scores = scores.clone()
        scores[:, decoder.base_vocab_size :] = float("-inf")
    scores = apply_repetition_penalty(scores, generated, settings.repetition_penalty)
    return ban_repeated_ngrams(scores, generated, settings.no_repeat_ngram_size)


def _check_inputs(inputs: DecoderInputs) -> None:
    if not bool(inputs.attention_mask[:, -1].all()):
        raise ValueError("generation needs left-padded inputs (assemble(..., padding_side='left'))")


def _step(decoder: VisualPrefixDecoder, tokens: torch.Tensor, attention: torch.Tensor, positions: torch.Tensor, cache):
    """Feed one token per row: tokens (R,), attention (R, L+1) long, positions (R,) -> model output."""
    return decoder.lm(
        inputs_embeds=decoder.embed_tokens(tokens[:, None]),
        attention_mask=attention,
        position_ids=positions[:, None],
        past_key_values=cache,
        use_cache=True,
    )


def _prefill(decoder: VisualPrefixDecoder, inputs: DecoderInputs):
    return decoder.lm(
        inputs_embeds=inputs.inputs_embeds,
        attention_mask=inputs.attention_mask,
        position_ids=inputs.position_ids,
        use_cache=True,
        logits_to_keep=1,
    )


@torch.no_grad()
def greedy_search(decoder: VisualPrefixDecoder, inputs: DecoderInputs, settings: GenerationSettings) -> list[list[int]]:
    """Greedy decoding of a left-padded batch (B samples) -> B lists of new token ids."""
    _check_inputs(inputs)
    batch, device = inputs.attention_mask.shape[0], inputs.attention_mask.device
    budget = settings.max_new_tokens
    stops = torch.tensor(settings.stops(), dtype=torch.long, device=device)
    tokens = torch.full((batch, budget), decoder.pad_token_id, dtype=torch.long, device=device)
    lengths = torch.full((batch,), budget, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    attention = inputs.attention_mask
    positions = inputs.position_ids[:, -1]
    out = _prefill(decoder, inputs) if budget > 0 else None
    for t in range(budget):
        scores = _process(decoder, out.logits[:, -1].float(), tokens[:, :t], settings)
        chosen = scores.argmax(-1).masked_fill(finished, decoder.pad_token_id)  # (B,)
        tokens[:, t] = chosen
        just = ~finished & torch.isin(chosen, stops)
        lengths = torch.where(just, t + 1, lengths)
        finished = finished | just
        if t == budget - 1 or bool(finished.all()):
            break
        attention = F.pad(attention, (0, 1), value=1)
        positions = positions + 1
        out = _step(decoder, chosen, attention, positions, out.past_key_values)
    return [row[:n].tolist() for row, n in zip(tokens.cpu(), lengths.tolist())]


def _gather(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values (B, N, ...) gathered along dim 1 by index (B, K) -> (B, K, ...)."""
    index = index.reshape(*index.shape, *([1] * (values.dim() - 2))).expand(-1, -1, *values.shape[2:])
    return values.gather(1, index)


@torch.no_grad()
def beam_search(decoder: VisualPrefixDecoder, inputs: DecoderInputs, settings: GenerationSettings) -> list[list[int]]:
    """Beam search (``settings.num_beams`` beams per sample) of a left-padded batch -> B lists of new token ids."""
    _check_inputs(inputs)
    batch, device = inputs.attention_mask.shape[0], inputs.attention_mask.device
    beams, budget, penalty = settings.num_beams, settings.max_new_tokens, settings.length_penalty
    stops = torch.tensor(settings.stops(), dtype=torch.long, device=device)
    if budget <= 0:
        return [[] for _ in range(batch)]
    out = _prefill(decoder, inputs)
    vocab = out.logits.shape[-1]
    # at most len(stops) of a beam's candidates finish, so 2 * beams (or more) candidates leave `beams` running
    n_candidates = min(max(2, 1 + len(settings.stops())) * beams, beams * vocab)
    cache = out.past_key_values
    cache.batch_repeat_interleave(beams)  # rows b * beams + k
    logits = out.logits[:, -1].float().repeat_interleave(beams, 0)  # (B*K, V)
    attention = inputs.attention_mask.repeat_interleave(beams, 0)
    positions = inputs.position_ids[:, -1].repeat_interleave(beams, 0)

    running = torch.full((batch, beams, budget), decoder.pad_token_id, dtype=torch.long, device=device)
    running_scores = torch.zeros(batch, beams, device=device)
    running_scores[:, 1:] = _CLOSED  # the beams start identical: expand the first one only
    done_tokens = running.clone()
    done_scores = torch.full((batch, beams), _CLOSED, device=device)
    done_lengths = torch.zeros(batch, beams, dtype=torch.long, device=device)
    done_full = torch.zeros(batch, beams, dtype=torch.bool, device=device)  # slot holds a finished hypothesis
    open_ = torch.ones(batch, dtype=torch.bool, device=device)  # may still improve its finished set
    row_offset = torch.arange(batch, device=device)[:, None] * beams
    for t in range(budget):
        log_probs = F.log_softmax(logits, dim=-1)
        log_probs = _process(decoder, log_probs, running.flatten(0, 1)[:, :t], settings)
        total = (log_probs.view(batch, beams, vocab) + running_scores[..., None]).view(batch, beams * vocab)
        cand_scores, cand_index = total.topk(n_candidates, dim=1)  # (B, C), best first
        cand_source = cand_index // vocab
        cand_token = cand_index % vocab
        cand_tokens = _gather(running, cand_source)  # (B, C, M)
        cand_tokens[:, :, t] = cand_token
        ends = torch.isin(cand_token, stops) | (t == budget - 1)  # (B, C)

        # finished: candidates ranked within the first `beams` that end here, merged with the kept ones
        top_rank = torch.arange(n_candidates, device=device)[None, :] < beams
        newly = ends & top_rank & open_[:, None]
        new_scores = torch.where(newly, cand_scores / float(t + 1) ** penalty, torch.full_like(cand_scores, _CLOSED))
        merged_scores = torch.cat([done_scores, new_scores], 1)
        best = merged_scores.topk(beams, dim=1).indices
        done_scores = merged_scores.gather(1, best)
        done_tokens = _gather(torch.cat([done_tokens, cand_tokens], 1), best)
        new_lengths = torch.full_like(cand_source, t + 1)
        done_lengths = torch.cat([done_lengths, new_lengths], 1).gather(1, best)
        done_full = torch.cat([done_full, newly], 1).gather(1, best)
        if t == budget - 1:
            break

        # running: the best `beams` candidates that did not end
        live_scores = cand_scores + ends.float() * _CLOSED
        keep = live_scores.topk(beams, dim=1).indices  # (B, K), best first
        running = _gather(cand_tokens, keep)
        running_scores = live_scores.gather(1, keep)
        source_rows = (cand_source.gather(1, keep) + row_offset).flatten()  # (B*K,) cache rows to continue

        best_possible = running_scores[:, 0] / float(t + 1) ** penalty
        worst_done = torch.where(done_full, done_scores.min(1, keepdim=True).values, _CLOSED)
        open_ = open_ & (best_possible[:, None] > worst_done).any(1)
        if not bool(open_.any()):
            break
        cache.reorder_cache(source_rows)
        attention = F.pad(attention, (0, 1), value=1)
        positions = positions + 1
        logits = _step(decoder, running[:, :, t].flatten(), attention, positions, cache).logits[:, -1].float()
    best_tokens, best_lengths = done_tokens[:, 0].cpu(), done_lengths[:, 0].tolist()
    return [row[:n].tolist() for row, n in zip(best_tokens, best_lengths)]


def generate(decoder: VisualPrefixDecoder, inputs: DecoderInputs, settings: GenerationSettings) -> list[list[int]]:
    """Decode a left-padded batch: greedy when ``settings.num_beams == 1``, beam search otherwise.

    Args:
        decoder: the decoder whose ``lm`` and ``embed_tokens`` are used.
        inputs: :meth:`VisualPrefixDecoder.assemble` output with ``padding_side="left"`` (labels ignored).
        settings: :class:`GenerationSettings`.

    Returns:
        Per sample, the new token ids, ending at (and including) the first stop/eos token, at most
        ``max_new_tokens`` of them.
    """
    if settings.num_beams < 1:
        raise ValueError(f"num_beams must be >= 1, got {settings.num_beams}")
    search = greedy_search if settings.num_beams == 1 else beam_search
    return search(decoder, inputs, settings)
