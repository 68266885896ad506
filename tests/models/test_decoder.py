"""VisualPrefixDecoder: prompt layout, frozen/trainable parameters, LoRA, the three LM families, loading."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from transformers import GPT2Config, GPT2LMHeadModel, OPTConfig, OPTForCausalLM, Qwen2Config, Qwen2ForCausalLM

from moviead.models.decoder import IGNORE_INDEX, VisualPrefixDecoder, fit_context_items, load_causal_lm

LORA_A, LORA_B = "lora_A.default.weight", "lora_B.default.weight"  # peft's parameter names

VOCAB = 64
SPECIAL = {"b_q": 64, "e_q": 65, "b_t": 66, "e_t": 67, "b_s": 68, "e_s": 69}
PAD = 1
VISUAL_DIM = 8


def tiny_lm(kind: str) -> torch.nn.Module:
    """A random 2-layer causal LM with a 64-token vocabulary (OPT with word_embed_proj_dim != hidden_size)."""
    torch.manual_seed(0)
    if kind == "opt":
        config = OPTConfig(
            vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, ffn_dim=64, num_attention_heads=4,
            max_position_embeddings=128, word_embed_proj_dim=16, dropout=0.0, pad_token_id=PAD,
        )  # fmt: skip
        return OPTForCausalLM(config).eval()
    if kind == "gpt2":
        config = GPT2Config(
            vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=128, bos_token_id=0, eos_token_id=0,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        )  # fmt: skip
        return GPT2LMHeadModel(config).eval()
    config = Qwen2Config(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    return Qwen2ForCausalLM(config).eval()


def make_decoder(kind: str = "opt", **kwargs) -> VisualPrefixDecoder:
    options = {
        "visual_dim": VISUAL_DIM, "special_ids": SPECIAL, "base_vocab_size": VOCAB, "pad_token_id": PAD,
        "prompt_ids": (2, 3), "instruction_ids": (4,),
    }  # fmt: skip
    options.update(kwargs)
    decoder = VisualPrefixDecoder(tiny_lm(kind), **options)
    torch.manual_seed(1)
    with torch.no_grad():  # distinct special rows, so every special position can be identified
        decoder.special_embeddings.normal_()
    return decoder


def hand_batch() -> dict[str, torch.Tensor]:
    """Two samples, three proposal items each (see the expected layouts in test_assemble_layout)."""
    ad_ids = torch.tensor([[[10, 11, 0, 0], [0, 0, 0, 0], [12, 0, 0, 0]], [[13, 14, 15, 0], [16, 0, 0, 0], [0] * 4]])
    ad_mask = ad_ids != 0
    sub_ids = torch.tensor([[[20, 0, 0], [21, 22, 0], [0, 0, 0]], [[23, 0, 0], [24, 25, 26], [0, 0, 0]]])
    sub_mask = sub_ids != 0
    torch.manual_seed(2)
    return {
        "visual": torch.randn(2, 3, VISUAL_DIM),
        "visual_mask": torch.tensor([[True, True, True], [True, False, True]]),
        "proposal_ad_ids": ad_ids,
        "proposal_ad_mask": ad_mask,
        "proposal_sub_ids": sub_ids,
        "proposal_sub_mask": sub_mask,
        "selected": torch.tensor([[True, True, False], [False, True, False]]),
        "target_ids": torch.tensor([[30, 31, 32], [33, 0, 0]]),
        "target_mask": torch.tensor([[True, True, True], [True, False, False]]),
    }


V = -1  # a visual position in the expected layouts
CONTEXT_0 = [66, 10, 11, 67, 68, 20, 69, 66, 67, 68, 21, 22, 69]  # item 0 (AD, subtitle), item 1 (no AD)
CONTEXT_1 = [66, 16, 67, 68, 24, 25, 26, 69]  # item 1 only (item 0 not selected)


# with max_context_tokens = 7: sample 0 keeps item 1 whole (6 tokens; item 0 would make 13) and sample 1's only item
# (8 tokens) keeps its markers and AD, and the last 2 subtitle tokens
CUT_CONTEXT = {7: ([66, 67, 68, 21, 22, 69], [66, 16, 67, 68, 25, 26, 69]), 200: (CONTEXT_0, CONTEXT_1)}


def expected_layout(max_context: int) -> list[tuple[list[int], list[int], list[int]]]:
    """Per sample: (ids with V at visual positions, kept visual rows, target)."""
    ctx0, ctx1 = CUT_CONTEXT[max_context]
    return [
        ([2, 3, 64, V, V, V, 65, *ctx0, 4, 30, 31, 32], [0, 1, 2], [30, 31, 32]),
        ([2, 3, 64, V, V, 65, *ctx1, 4, 33], [0, 2], [33]),
    ]


@pytest.mark.parametrize("max_context", [200, 7])
@pytest.mark.parametrize("side", ["right", "left"])
def test_assemble_layout(max_context: int, side: str) -> None:
    decoder = make_decoder(max_context_tokens=max_context)
    batch = hand_batch()
    with torch.no_grad():
        inputs = decoder.assemble(**batch, padding_side=side)
        projected = decoder.projector(batch["visual"])  # (B, Q, E)
    layouts = expected_layout(max_context)
    length = max(len(ids) for ids, _, _ in layouts)
    assert inputs.inputs_embeds.shape == (2, length, decoder.embed_dim)
    for b, (ids, rows, target) in enumerate(layouts):
        n = len(ids)
        start = length - n if side == "left" else 0
        real = slice(start, start + n)
        expected_mask = torch.zeros(length, dtype=torch.long)
        expected_mask[real] = 1
        assert torch.equal(inputs.attention_mask[b], expected_mask)
        expected_pos = torch.zeros(length, dtype=torch.long)
        expected_pos[real] = torch.arange(n)
        assert torch.equal(inputs.position_ids[b], expected_pos)
        expected_labels = torch.full((length,), IGNORE_INDEX)
        expected_labels[start + n - len(target) : start + n] = torch.tensor(target)
        assert torch.equal(inputs.labels[b], expected_labels)
        embeds = inputs.inputs_embeds[b, real]
        token_pos = [i for i, t in enumerate(ids) if t != V]
        token_rows = decoder.embed_tokens(torch.tensor([[ids[i] for i in token_pos]]))[0]
        assert torch.equal(embeds[token_pos], token_rows)
        visual_pos = [i for i, t in enumerate(ids) if t == V]
        assert torch.equal(embeds[visual_pos], projected[b, rows])
    # special rows really are the table rows (looked up by id - base_vocab_size), LM rows the LM's
    assert torch.equal(decoder.embed_tokens(torch.tensor([[66]]))[0, 0], decoder.special_embeddings[2])
    assert torch.equal(decoder.embed_tokens(torch.tensor([[4]]))[0, 0], decoder.lm.get_input_embeddings().weight[4])


def _balanced(ids: list[int]) -> bool:
    """The context markers alternate b_t, e_t, b_s, e_s, ... and close."""
    marks = [t for t in ids if t in (66, 67, 68, 69)]
    return marks == [66, 67, 68, 69] * (len(marks) // 4)


def test_context_truncation_drops_whole_oldest_items() -> None:
    """Items overflowing the budget: only whole items, markers balanced, the newest kept."""
    items = [([10, 11, 12], [20, 21]), ([13], []), ([14, 15], [22, 23, 24])]  # 9, 5 and 9 tokens
    marks = (66, 67, 68, 69)
    whole = [66, 10, 11, 12, 67, 68, 20, 21, 69, 66, 13, 67, 68, 69, 66, 14, 15, 67, 68, 22, 23, 24, 69]
    assert fit_context_items(items, 200, marks) == whole
    assert fit_context_items(items, 23, marks) == whole
    for budget in (14, 22):  # the newest two fit, the oldest (9 tokens) does not
        assert fit_context_items(items, budget, marks) == whole[9:]
    for budget in (9, 13):
        assert fit_context_items(items, budget, marks) == whole[14:]
    # the newest alone overflows: its AD whole, the subtitles' last tokens, inside the markers
    assert fit_context_items(items, 8, marks) == [66, 14, 15, 67, 68, 23, 24, 69]
    assert fit_context_items(items, 5, marks) == [66, 15, 67, 68, 69]  # the AD's last token only
    assert fit_context_items(items, 3, marks) == []  # no room for the markers
    for budget in range(0, 30):
        cut = fit_context_items(items, budget, marks)
        assert len(cut) <= budget and _balanced(cut)
        assert budget < 4 or cut[-1] == 69 and (24 in cut) == (budget >= 7)  # the newest item always kept


def test_decoder_context_is_cut_at_item_boundaries() -> None:
    batch = hand_batch()
    for budget in range(0, 16):
        decoder = make_decoder(max_context_tokens=budget)
        for b in range(2):
            sel = batch["selected"][b].tolist()
            ids = decoder.context_ids(batch["proposal_ad_ids"][b].tolist(), batch["proposal_ad_mask"][b].tolist(),
                                      batch["proposal_sub_ids"][b].tolist(), batch["proposal_sub_mask"][b].tolist(),
                                      sel)
            assert len(ids) <= budget and _balanced(ids)
            full = CONTEXT_0 if b == 0 else CONTEXT_1
            if len(full) <= budget:
                assert ids == full


def test_prompt_state_is_the_hidden_state_before_the_first_target_token() -> None:
    """The bag-of-words head's input: the last prompt position (after the context), from the same LM pass."""
    decoder = make_decoder()
    batch = hand_batch()
    with torch.no_grad():
        inputs = decoder.assemble(**batch, padding_side="right")
        gen, state = decoder.loss_and_prompt_state(inputs)
        hidden = decoder.lm(inputs_embeds=inputs.inputs_embeds, attention_mask=inputs.attention_mask,
                            position_ids=inputs.position_ids, output_hidden_states=True).hidden_states[-1]
        # sample 0: 2 prompt + b_q + 3 visual + e_q + 13 context + instruction = 21 tokens, target from 21
        # sample 1: 2 + 1 + 2 + 1 + 8 + 1 = 15 tokens
        assert state.shape == (2, hidden.shape[-1])
        assert torch.equal(state, torch.stack([hidden[0, 20], hidden[1, 14]]))
        assert gen.item() == pytest.approx(decoder.loss(inputs).item(), rel=1e-6)
        other = dict(batch, selected=torch.tensor([[False, True, False], [True, True, False]]))
        _, changed = decoder.loss_and_prompt_state(decoder.assemble(**other, padding_side="right"))
    assert not torch.allclose(changed, state)  # it has seen the context


def test_left_and_right_padding_hold_the_same_samples() -> None:
    decoder = make_decoder()
    batch = hand_batch()
    with torch.no_grad():
        right = decoder.assemble(**batch, padding_side="right")
        left = decoder.assemble(**batch, padding_side="left")
    for b in range(2):
        r, lft = right.attention_mask[b].bool(), left.attention_mask[b].bool()
        assert torch.equal(right.inputs_embeds[b, r], left.inputs_embeds[b, lft])
        assert torch.equal(right.position_ids[b, r], left.position_ids[b, lft])
        assert torch.equal(right.labels[b, r], left.labels[b, lft])
    no_target = decoder.assemble(**{k: v for k, v in batch.items() if not k.startswith("target")}, padding_side="left")
    assert no_target.labels is None and no_target.inputs_embeds.shape[1] == 21  # 24 - the 3 target tokens of sample 0


def test_special_rows_start_at_the_mean_embedding() -> None:
    lm = tiny_lm("opt")
    decoder = VisualPrefixDecoder(lm, visual_dim=4, special_ids=SPECIAL, base_vocab_size=VOCAB, pad_token_id=PAD)
    mean = lm.get_input_embeddings().weight.mean(0)
    assert decoder.special_embeddings.shape == (6, 16)
    torch.testing.assert_close(decoder.special_embeddings.detach(), mean.expand(6, -1), rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match="base_vocab_size"):
        VisualPrefixDecoder(lm, visual_dim=4, special_ids={**SPECIAL, "b_q": 5}, base_vocab_size=VOCAB, pad_token_id=1)


def test_ids_past_base_vocab_use_the_new_table() -> None:
    """OPT-like: the LM has 64 rows but the tokenizer only 60; ids 60.. are the new tokens, not LM rows."""
    special = {name: 60 + i for i, name in enumerate(SPECIAL)}
    decoder = make_decoder(special_ids=special, base_vocab_size=60)
    assert decoder.special_embeddings.shape[0] == 6
    assert torch.equal(decoder.embed_tokens(torch.tensor([[62, 5]]))[0, 0], decoder.special_embeddings[2])


def _step(decoder: VisualPrefixDecoder, lr: float = 1e-2) -> None:
    optimizer = torch.optim.AdamW(decoder.parameters(), lr=lr, weight_decay=0.1)
    decoder(**hand_batch()).backward()
    optimizer.step()


def test_frozen_lm_is_bit_identical_after_an_adamw_step() -> None:
    decoder = make_decoder()
    lm_before = copy.deepcopy(decoder.lm.state_dict())
    projector_before = decoder.projector.weight.detach().clone()
    special_before = decoder.special_embeddings.detach().clone()
    trainable = {n for n, p in decoder.named_parameters() if p.requires_grad}
    assert trainable == {"special_embeddings", "projector.weight", "projector.bias"}
    assert {id(p) for p in decoder.trainable_parameters()} == {
        id(p) for n, p in decoder.named_parameters() if n in trainable
    }
    _step(decoder)
    for name, tensor in decoder.lm.state_dict().items():
        assert torch.equal(tensor, lm_before[name]), name
    assert not torch.equal(decoder.projector.weight, projector_before)
    assert not torch.equal(decoder.special_embeddings, special_before)


def test_unfrozen_lm_trains() -> None:
    decoder = make_decoder(freeze_lm=False)
    assert all(p.requires_grad for p in decoder.parameters())
    embed_before = decoder.lm.get_input_embeddings().weight.detach().clone()
    fc_before = decoder.lm.model.decoder.layers[0].fc1.weight.detach().clone()
    _step(decoder)
    assert not torch.equal(decoder.lm.get_input_embeddings().weight, embed_before)
    assert not torch.equal(decoder.lm.model.decoder.layers[0].fc1.weight, fc_before)


@pytest.mark.parametrize(("kind", "targets", "expected"), [("opt", ("q_proj", "v_proj"), 4), ("gpt2", ("c_attn",), 2)])
def test_lora_starts_at_the_base_model_and_trains_alone(kind: str, targets: tuple[str, ...], expected: int) -> None:
    base = make_decoder(kind)
    lora = make_decoder(kind, lora_rank=4, lora_targets=targets)
    assert len(lora.lora_modules) == expected
    assert sum(isinstance(m, LoraLayer) for m in lora.modules()) == expected
    lora.load_state_dict(base.state_dict(), strict=False)  # same projector and special rows
    with torch.no_grad():
        for m in lora.modules():
            if isinstance(m, LoraLayer):
                assert m.lora_A["default"].weight.abs().sum() > 0 and m.lora_B["default"].weight.abs().sum() == 0
        x = torch.randn(2, 5, base.embed_dim)
        assert torch.equal(lora.lm(inputs_embeds=x).logits, base.lm(inputs_embeds=x).logits)
        assert torch.equal(lora(**hand_batch()), base(**hand_batch()))
    trainable = {n for n, p in lora.named_parameters() if p.requires_grad}
    lora_names = {n for n in trainable if n.endswith((LORA_A, LORA_B))}
    assert len(lora_names) == 2 * expected
    assert trainable == lora_names | {"special_embeddings", "projector.weight", "projector.bias"}
    frozen_before = {n: p.detach().clone() for n, p in lora.named_parameters() if not p.requires_grad}
    b_before = {n: p.detach().clone() for n, p in lora.named_parameters() if n.endswith(LORA_B)}
    _step(lora)
    for name, p in lora.named_parameters():
        if name in frozen_before:
            assert torch.equal(p, frozen_before[name]), name
        if name in b_before:
            assert not torch.equal(p, b_before[name]), name


@pytest.mark.parametrize(("kind", "targets"), [("opt", ("q_proj", "v_proj")), ("gpt2", ("c_attn",))])
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")  # peft's call
def test_lora_adapter_is_saved_in_peft_layout(tmp_path, kind: str, targets: tuple[str, ...]) -> None:
    """A trained adapter written by save_adapter, loaded by peft onto a fresh LM, gives the decoder's logits."""
    lora = make_decoder(kind, lora_rank=4, lora_targets=targets)
    _step(lora)
    folder = lora.save_adapter(tmp_path / "adapter")
    assert {p.name for p in folder.iterdir()} == {"adapter_config.json", "adapter_model.safetensors"}
    loaded = PeftModel.from_pretrained(tiny_lm(kind), folder).eval()
    x = torch.randn(2, 5, lora.embed_dim)
    with torch.no_grad():
        expected = lora.lm(inputs_embeds=x).logits
        assert not torch.equal(expected, tiny_lm(kind)(inputs_embeds=x).logits)  # the adapter changes the LM
        scale = expected.abs().max().item()
        torch.testing.assert_close(loaded(inputs_embeds=x).logits, expected, rtol=1e-5, atol=1e-5 * scale)
    with pytest.raises(ValueError, match="no LoRA adapter"):
        make_decoder(kind).save_adapter(tmp_path / "none")


def test_lora_checkpoints_of_the_former_wrapper_still_load() -> None:
    """Keys ``<m>.lora_A``/``<m>.lora_B``/``<m>.base.weight`` (before peft) load into peft's parameters."""
    lora = make_decoder(lora_rank=4, lora_targets=("q_proj", "v_proj"))
    state = {}
    for name, p in lora.state_dict().items():
        old = name.replace(f".{LORA_A}", ".lora_A").replace(f".{LORA_B}", ".lora_B").replace(".base_layer.", ".base.")
        state[old] = torch.randn_like(p) if old.endswith(("lora_A", "lora_B")) else p.clone()
    assert sum(k.endswith(".lora_B") for k in state) == 4 and any(".q_proj.base.weight" in k for k in state)
    lora.load_state_dict(state, strict=True)
    for name, p in lora.state_dict().items():
        if name.endswith((LORA_A, LORA_B)):
            old = name.replace(f".{LORA_A}", ".lora_A").replace(f".{LORA_B}", ".lora_B")
            assert torch.equal(p, state[old]), name


def test_lora_without_a_matching_module_fails() -> None:
    with pytest.raises(ValueError, match="no nn.Linear/Conv1D module named"):
        make_decoder("gpt2", lora_rank=4)  # GPT-2 has no q_proj/v_proj


@pytest.mark.parametrize("kind", ["opt", "gpt2", "qwen2"])
def test_loss_is_the_target_cross_entropy(kind: str) -> None:
    decoder = make_decoder(kind)
    batch = hand_batch()
    loss = decoder(**batch)
    assert torch.isfinite(loss)
    inputs = decoder.assemble(**batch)
    logits = decoder.lm(
        inputs_embeds=inputs.inputs_embeds, attention_mask=inputs.attention_mask, position_ids=inputs.position_ids
    ).logits
    reference = F.cross_entropy(logits[:, :-1].flatten(0, 1), inputs.labels[:, 1:].flatten(), ignore_index=-100)
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-6)
    assert abs(loss.item() - torch.log(torch.tensor(float(VOCAB))).item()) < 1.0  # random LM: close to log V
    loss.backward()
    assert decoder.projector.weight.grad.abs().sum() > 0


def test_load_causal_lm_roundtrip_and_missing_path(tmp_path) -> None:
    lm = tiny_lm("opt")
    lm.save_pretrained(tmp_path / "tiny-opt")
    loaded = load_causal_lm(tmp_path / "tiny-opt")
    assert torch.equal(loaded.get_input_embeddings().weight, lm.get_input_embeddings().weight)
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        VisualPrefixDecoder.from_pretrained(
            missing, visual_dim=4, special_ids=SPECIAL, base_vocab_size=VOCAB, pad_token_id=PAD
        )
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE"):
        load_causal_lm("nobody-here/no-such-model")
