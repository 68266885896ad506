"""Greedy and beam decoding of VisualPrefixDecoder (through transformers' generate): batching, stopping,
repetition controls, KV cache against full recomputation, parity with transformers run on each sample alone."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    GenerationConfig,
    GPT2Config,
    GPT2LMHeadModel,
    OPTConfig,
    OPTForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)
from transformers.generation.logits_process import NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor

from moviead.models.decoder import DecoderInputs, VisualPrefixDecoder
from moviead.models.generation import GenerationSettings, generate

VOCAB, PAD, VISUAL_DIM = 64, 1, 8
INIT_STD = 0.5  # peaked next-token distributions: no near-ties for float noise to flip
P, LA, LS = 2, 3, 3


def make_decoder(kind: str = "opt", base_vocab_size: int = VOCAB) -> VisualPrefixDecoder:
    """A random 2-layer causal LM (64 rows) behind a decoder whose 6 special ids follow ``base_vocab_size``."""
    torch.manual_seed(0)
    if kind == "opt":
        config = OPTConfig(
            vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, ffn_dim=64, num_attention_heads=4,
            max_position_embeddings=128, word_embed_proj_dim=16, dropout=0.0, pad_token_id=PAD, init_std=INIT_STD,
        )  # fmt: skip
        lm = OPTForCausalLM(config)
    elif kind == "gpt2":
        lm = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=128,
                                        bos_token_id=0, eos_token_id=0, initializer_range=INIT_STD))  # fmt: skip
    else:
        config = Qwen2Config(
            vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, bos_token_id=0, eos_token_id=0,
            initializer_range=INIT_STD,
        )  # fmt: skip
        lm = Qwen2ForCausalLM(config)
    special = {n: base_vocab_size + i for i, n in enumerate(("b_q", "e_q", "b_t", "e_t", "b_s", "e_s"))}
    decoder = VisualPrefixDecoder(
        lm.eval(), visual_dim=VISUAL_DIM, special_ids=special, base_vocab_size=base_vocab_size, pad_token_id=PAD,
        prompt_ids=(2, 3), instruction_ids=(4,),
    )  # fmt: skip
    torch.manual_seed(1)
    with torch.no_grad():
        decoder.special_embeddings.normal_()
    return decoder


def prefix_batch(lengths: list[int], seed: int = 3) -> dict[str, torch.Tensor]:
    """A batch whose samples have different context lengths (sample b: one AD of ``lengths[b]`` tokens)."""
    gen = torch.Generator().manual_seed(seed)
    batch = len(lengths)
    ad_mask = torch.zeros(batch, P, LA, dtype=torch.bool)
    for b, n in enumerate(lengths):
        ad_mask[b, 0, :n] = True
    sub_mask = torch.zeros(batch, P, LS, dtype=torch.bool)
    sub_mask[:, 1, :2] = True
    return {
        "visual": torch.randn(batch, 2, VISUAL_DIM, generator=gen),
        "visual_mask": None,
        "proposal_ad_ids": torch.randint(5, 60, (batch, P, LA), generator=gen),
        "proposal_ad_mask": ad_mask,
        "proposal_sub_ids": torch.randint(5, 60, (batch, P, LS), generator=gen),
        "proposal_sub_mask": sub_mask,
        "selected": torch.tensor([[True, True]] * batch),
    }


def left(decoder: VisualPrefixDecoder, batch: dict[str, torch.Tensor]) -> DecoderInputs:
    with torch.no_grad():
        return decoder.assemble(**batch, padding_side="left")


def one(batch: dict[str, torch.Tensor], b: int) -> dict[str, torch.Tensor]:
    return {k: (None if v is None else v[b : b + 1]) for k, v in batch.items()}


@pytest.fixture(scope="module")
def decoder() -> VisualPrefixDecoder:
    return make_decoder("opt")


LENGTHS = [3, 0, 1]


def apply_repetition_penalty(scores: torch.Tensor, generated: torch.Tensor, penalty: float) -> torch.Tensor:
    return RepetitionPenaltyLogitsProcessor(penalty)(generated, scores.clone())


def ban_repeated_ngrams(scores: torch.Tensor, generated: torch.Tensor, size: int) -> torch.Tensor:
    return NoRepeatNGramLogitsProcessor(size)(generated, scores.clone())  # (the processor writes in place)


def greedy_search(decoder: VisualPrefixDecoder, inputs: DecoderInputs, settings: GenerationSettings) -> list[list[int]]:
    """Reference greedy decoding without a cache: the whole prefix is recomputed for every new token."""
    embeds, mask, pos = inputs.inputs_embeds, inputs.attention_mask, inputs.position_ids
    rows: list[list[int]] = [[] for _ in range(embeds.shape[0])]
    done = [False] * len(rows)
    with torch.no_grad():
        for _ in range(settings.max_new_tokens):
            chosen = decoder.lm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos).logits[:, -1].argmax(-1)
            for b, token in enumerate(chosen.tolist()):
                if not done[b]:
                    rows[b].append(token)
                    done[b] = token in settings.stops()
            if all(done):
                break
            embeds = torch.cat([embeds, decoder.embed_tokens(chosen[:, None])], 1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
            pos = torch.cat([pos, pos[:, -1:] + 1], 1)
    return rows


def test_repetition_penalty_and_ngram_ban_values() -> None:
    """The library's rules, as we rely on them: CTRL's penalty (Keskar et al. 2019) and the n-gram ban."""
    scores = torch.tensor([[1.0, -1.0, 2.0, 0.5]])
    penalised = apply_repetition_penalty(scores, torch.tensor([[0, 1, 1]]), 2.0)
    assert torch.equal(penalised, torch.tensor([[0.5, -2.0, 2.0, 0.5]]))
    scores = torch.zeros(2, 8)
    generated = torch.tensor([[5, 6, 7, 5, 6], [5, 6, 5, 6, 1]])
    banned = ban_repeated_ngrams(scores, generated, 3)
    assert torch.isinf(banned[0]).nonzero().flatten().tolist() == [7]  # "5 6" was followed by 7
    assert torch.isinf(banned[1]).sum() == 0  # "6 1" never seen
    assert torch.isinf(ban_repeated_ngrams(scores, generated[:, :4], 3)[1]).nonzero().flatten().tolist() == [5]
    assert torch.equal(ban_repeated_ngrams(scores, generated[:, :2], 3), scores)


def test_greedy_equals_recomputed_argmax_cut_at_stops(decoder: VisualPrefixDecoder) -> None:
    """One beam is greedy decoding (transformers runs its greedy search): the cached, batched search equals the
    reference that recomputes the whole prefix per token, stop tokens included."""
    inputs = left(decoder, prefix_batch(LENGTHS))
    for stops in ((7, 9), (4, 14)):  # (4, 14): ids the model emits, so that rows stop at different steps
        settings = GenerationSettings(num_beams=1, max_new_tokens=8, stop_token_ids=stops)
        greedy = greedy_search(decoder, inputs, settings)
        assert greedy == generate(decoder, inputs, settings)
        assert generate(decoder, inputs, settings) == greedy
    assert sorted(len(tokens) for tokens in greedy) == [3, 6, 8]


@pytest.mark.parametrize("num_beams", [1, 3])
def test_batched_equals_one_by_one(decoder: VisualPrefixDecoder, num_beams: int) -> None:
    batch = prefix_batch(LENGTHS)
    inputs = left(decoder, batch)
    assert inputs.attention_mask.sum(1).tolist() == [20, 17, 18]  # different prefix lengths
    settings = GenerationSettings(num_beams=num_beams, max_new_tokens=8, stop_token_ids=(7, 9))
    batched = generate(decoder, inputs, settings)
    alone = [generate(decoder, left(decoder, one(batch, b)), settings)[0] for b in range(3)]
    assert batched == alone
    assert all(0 < len(tokens) <= 8 for tokens in batched)


@pytest.mark.parametrize("num_beams", [1, 3])
def test_repetition_controls_batched_equal_one_by_one(decoder: VisualPrefixDecoder, num_beams: int) -> None:
    """The penalty covers every generated token of a row whatever its left padding, and changes the output."""
    batch = prefix_batch(LENGTHS)
    inputs = left(decoder, batch)
    plain = GenerationSettings(num_beams=num_beams, max_new_tokens=12)
    settings = GenerationSettings(
        num_beams=num_beams, max_new_tokens=12, repetition_penalty=1.5, no_repeat_ngram_size=2
    )
    batched = generate(decoder, inputs, settings)
    assert batched == [generate(decoder, left(decoder, one(batch, b)), settings)[0] for b in range(3)]
    assert batched != generate(decoder, inputs, plain)
    for tokens in batched:  # no bigram twice
        bigrams = list(zip(tokens, tokens[1:]))
        assert len(set(bigrams)) == len(bigrams)


def test_stops_at_the_first_stop_token_and_respects_max_new_tokens(decoder: VisualPrefixDecoder) -> None:
    inputs = left(decoder, prefix_batch(LENGTHS))
    free = generate(decoder, inputs, GenerationSettings(num_beams=1, max_new_tokens=10))
    assert [len(t) for t in free] == [10, 10, 10]
    assert [len(t) for t in generate(decoder, inputs, GenerationSettings(num_beams=3, max_new_tokens=4))] == [4] * 3
    stop = next(t for t in free[0][2:] if t not in free[0][:2])  # a token sample 0 emits, not as its 1st/2nd one
    at = free[0].index(stop)
    for settings in (GenerationSettings(num_beams=1, max_new_tokens=10, stop_token_ids=(stop,)),
                     GenerationSettings(num_beams=1, max_new_tokens=10, eos_token_id=stop)):  # fmt: skip
        stopped = generate(decoder, inputs, settings)
        assert stopped[0] == free[0][: at + 1]
        for b in (1, 2):
            expected = free[b][: free[b].index(stop) + 1] if stop in free[b] else free[b]
            assert stopped[b] == expected
    for tokens in generate(decoder, inputs, GenerationSettings(num_beams=3, max_new_tokens=10, eos_token_id=stop)):
        assert stop not in tokens[:-1]


def test_kv_cache_decoding_equals_full_recomputation(decoder: VisualPrefixDecoder) -> None:
    inputs = left(decoder, prefix_batch(LENGTHS))
    tokens = generate(decoder, inputs, GenerationSettings(num_beams=1, max_new_tokens=5))
    embeds, mask, pos = inputs.inputs_embeds, inputs.attention_mask, inputs.position_ids
    with torch.no_grad():
        for t in range(5):
            logits = decoder.lm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos).logits[:, -1]
            chosen = logits.argmax(-1)
            assert chosen.tolist() == [row[t] for row in tokens]
            embeds = torch.cat([embeds, decoder.embed_tokens(chosen[:, None])], 1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
            pos = torch.cat([pos, pos[:, -1:] + 1], 1)


@pytest.mark.parametrize(
    "options",
    [
        {"num_beams": 1},
        {"num_beams": 1, "repetition_penalty": 1.5, "no_repeat_ngram_size": 2},
        {"num_beams": 3},
        {"num_beams": 3, "repetition_penalty": 1.3, "no_repeat_ngram_size": 2, "length_penalty": 0.6},
    ],
    ids=["greedy", "greedy-controls", "beam3", "beam3-controls"],
)
@pytest.mark.filterwarnings("ignore:Passing `(repetition_penalty|no_repeat_ngram_size)` with `inputs_embeds`")
def test_parity_with_transformers_generate(decoder: VisualPrefixDecoder, options: dict) -> None:
    """Our batched decoding gives the tokens of ``lm.generate(inputs_embeds=...)`` run on each sample alone.

    transformers is run unpadded: with left-padded ``inputs_embeds`` its repetition penalty skips as many generated
    tokens as the row has pads (``prompt_ignore_length`` counts pads of a prompt that is not in ``input_ids``).
    """
    batch = prefix_batch(LENGTHS)
    inputs = left(decoder, batch)
    free = generate(decoder, inputs, GenerationSettings(num_beams=1, max_new_tokens=12))
    stop = free[1][4]  # a token the model emits: in every variant some samples stop, others run to the end
    ours = generate(decoder, inputs, GenerationSettings(max_new_tokens=12, eos_token_id=stop, **options))
    for b, tokens in enumerate(ours):
        alone = left(decoder, one(batch, b))
        with torch.no_grad():
            row = decoder.lm.generate(
                inputs_embeds=alone.inputs_embeds, attention_mask=alone.attention_mask, do_sample=False,
                max_new_tokens=12, eos_token_id=stop, pad_token_id=decoder.pad_token_id, early_stopping=False,
                **options,
            )[0].tolist()  # fmt: skip
        assert tokens == (row[: row.index(stop) + 1] if stop in row else row)
    assert any(tokens[-1] == stop for tokens in ours) and any(len(tokens) == 12 for tokens in ours)


@pytest.mark.parametrize("kind", ["opt", "gpt2", "qwen2"])
def test_generation_runs_for_each_lm_family(kind: str) -> None:
    decoder = make_decoder(kind)
    batch = prefix_batch(LENGTHS)
    inputs = left(decoder, batch)
    for num_beams in (1, 3):
        settings = GenerationSettings(num_beams=num_beams, max_new_tokens=6)
        with torch.inference_mode():
            out = generate(decoder, inputs, settings)
        assert [len(t) for t in out] == [6, 6, 6] and all(0 <= i < 64 for t in out for i in t)
        assert out[1] == generate(decoder, left(decoder, one(batch, 1)), settings)[0]


def test_the_lms_own_generation_config_is_ignored() -> None:
    """A pretrained LM may ship sampling, its own eos, beams, penalties or dict output: none reaches our decoding."""
    decoder = make_decoder("qwen2")
    inputs = left(decoder, prefix_batch(LENGTHS))
    settings = [GenerationSettings(num_beams=n, max_new_tokens=10) for n in (1, 3)]
    expected = [generate(decoder, inputs, s) for s in settings]
    decoder.lm.generation_config = GenerationConfig(
        do_sample=True, temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.3, no_repeat_ngram_size=1,
        eos_token_id=[t for row in expected[0] for t in row[:2]], num_beams=4, length_penalty=2.0,
        return_dict_in_generate=True, output_scores=True,
    )  # fmt: skip
    assert [generate(decoder, inputs, s) for s in settings] == expected
    assert all(len(row) == 10 for rows in expected for row in rows)


def test_ids_without_an_lm_entry_are_never_generated() -> None:
    """The LM has 64 rows, the tokenizer 56: ids 56..63 (OPT's padding rows) are masked out."""
    decoder = make_decoder(base_vocab_size=56)
    inputs = left(decoder, prefix_batch(LENGTHS))
    for num_beams in (1, 3):
        out = generate(decoder, inputs, GenerationSettings(num_beams=num_beams, max_new_tokens=20))
        assert max(max(t) for t in out) < 56


def test_right_padded_inputs_are_refused(decoder: VisualPrefixDecoder) -> None:
    with torch.no_grad():
        inputs = decoder.assemble(**prefix_batch(LENGTHS), padding_side="right")
    with pytest.raises(ValueError, match="left-padded"):
        generate(decoder, inputs, GenerationSettings(num_beams=1))
