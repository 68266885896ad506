"""The PME's own layer loop (qformer_passes) against transformers' Blip2QFormerModel.forward on the same weights,
and the shortcuts it allows (cached query keys/values for VTG, last-layer positions, the VTG loss at label
positions only) against the full computation."""

from __future__ import annotations

import pytest
import torch

from moviead.losses.pme import PMELoss, lm_labels, vtg_loss
from moviead.models.layers import additive_mask
from moviead.models.qformer import PMEConfig, PretrainedMovieEncoder, task_attention_mask

B, T, L, DV, NQ, VOCAB = 3, 6, 7, 24, 4, 100


def build(attn: str, dropout: float = 0.0) -> PretrainedMovieEncoder:
    torch.manual_seed(0)
    config = PMEConfig(
        hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64, num_query_tokens=NQ,
        vision_width=DV, embed_dim=16, vocab_size=VOCAB, max_position_embeddings=32, max_frames=12,
        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout, attn_implementation=attn,
    )
    return PretrainedMovieEncoder(config).eval()


@pytest.fixture(scope="module")
def inputs() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    frame_mask = torch.ones(B, T, dtype=torch.bool)
    frame_mask[1, 4:] = False
    text_mask = torch.ones(B, L, dtype=torch.bool)
    text_mask[0, 5:] = False
    text_mask[2, 3:] = False
    return {
        "frames": torch.randn(B, T, DV, generator=gen),
        "frame_mask": frame_mask,
        "text_ids": torch.randint(1, VOCAB, (B, L), generator=gen),
        "text_mask": text_mask,
    }


def reference_joint(pme: PretrainedMovieEncoder, x: dict[str, torch.Tensor], task: str) -> torch.Tensor:
    """transformers' own Blip2QFormerModel.forward on the joint sequence: (B, Nq+L, H)."""
    encoded, cross_bias = pme.encode_frames(x["frames"]), additive_mask(x["frame_mask"], torch.float32)
    queries = pme.query_tokens.expand(B, -1, -1)
    joint = pme.embeddings(input_ids=x["text_ids"], query_embeds=queries)
    allowed = task_attention_mask(task, NQ, x["text_mask"])  # type: ignore[arg-type]
    return pme.qformer(
        query_embeds=joint, query_length=NQ, attention_mask=additive_mask(allowed, torch.float32),
        encoder_hidden_states=encoded, encoder_attention_mask=cross_bias,
    ).last_hidden_state


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, rtol=0, atol=1e-5 * float(b.abs().max()))


def real(x: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
    """The text positions that are not padding: (B, L, X) -> (M, X)."""
    return x[text_mask.bool()]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("task", ["vtc", "vtm", "vtg"])
def test_joint_pass_equals_transformers_forward(attn: str, task: str, inputs: dict[str, torch.Tensor]) -> None:
    pme = build(attn)
    with torch.no_grad():
        query_out, text_out = pme.joint_outputs(
            inputs["frames"], inputs["frame_mask"], inputs["text_ids"], inputs["text_mask"], task  # type: ignore[arg-type]
        )
        expected = reference_joint(pme, inputs, task)
    mask = inputs["text_mask"]
    assert text_out is not None and text_out.shape == (B, L, 32)
    assert close(query_out, expected[:, :NQ]) and close(real(text_out, mask), real(expected[:, NQ:], mask))
    assert not text_out[~mask].any()  # padding comes back as zeros


def test_query_and_text_passes_equal_transformers_forward(inputs: dict[str, torch.Tensor]) -> None:
    pme = build("sdpa")
    with torch.no_grad():
        encoded = pme.encode_frames(inputs["frames"])
        cross_bias = additive_mask(inputs["frame_mask"], torch.float32)
        queries = pme.query_tokens.expand(B, -1, -1)
        expected_q = pme.qformer(query_embeds=queries, query_length=NQ, encoder_hidden_states=encoded,
                                 encoder_attention_mask=cross_bias).last_hidden_state
        text_bias = additive_mask(inputs["text_mask"], torch.float32)
        expected_t = pme.qformer(query_embeds=pme.embeddings(input_ids=inputs["text_ids"]), query_length=0,
                                 attention_mask=text_bias).last_hidden_state
        assert close(pme.query_outputs(inputs["frames"], inputs["frame_mask"]), expected_q)
        mask = inputs["text_mask"]
        assert close(real(pme.text_outputs(inputs["text_ids"], mask), mask), real(expected_t, mask))
        # the [CLS]-only last layer gives the same [CLS] output
        cls = pme.text_outputs(inputs["text_ids"], mask, cls_only=True)
        assert cls.shape == (B, 1, 32) and close(cls[:, 0], expected_t[:, 0])


def test_itm_logits_from_query_positions_only_equal_the_full_pass(inputs: dict[str, torch.Tensor]) -> None:
    pme = build("sdpa")
    with torch.no_grad():
        full = pme.itm_head(reference_joint(pme, inputs, "vtm")[:, :NQ])
        got = pme.itm_logits(inputs["frames"], inputs["frame_mask"], inputs["text_ids"], inputs["text_mask"])
    assert got.shape == (B, NQ, 2) and close(got, full)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_vtg_from_cached_query_states_equals_the_joint_causal_pass(attn: str, inputs: dict[str, torch.Tensor]) -> None:
    pme = build(attn)
    with torch.no_grad():
        expected = pme.lm_head(reference_joint(pme, inputs, "vtg")[:, NQ:])  # (B, L, V)
        got = pme.lm_logits(inputs["frames"], inputs["frame_mask"], inputs["text_ids"], inputs["text_mask"])
    mask = inputs["text_mask"]
    assert got.shape == (B, L, VOCAB) and close(real(got, mask), real(expected, mask))


def test_vtg_gradients_reach_the_query_pass_through_the_cache(inputs: dict[str, torch.Tensor]) -> None:
    pme = build("sdpa").train()
    logits = pme.lm_logits(inputs["frames"], inputs["frame_mask"], inputs["text_ids"], inputs["text_mask"])
    vtg_loss(logits, lm_labels(inputs["text_ids"], inputs["text_mask"])).backward()
    # the query tokens and the cross-attention (used only at query positions) get gradient, as in the joint pass
    assert pme.query_tokens.grad is not None and pme.query_tokens.grad.abs().sum() > 0
    cross = pme.qformer.encoder.layer[0].crossattention.attention.key.weight
    assert cross.grad is not None and cross.grad.abs().sum() > 0


def full_pme_loss(pme: PretrainedMovieEncoder, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """L_VTG the long way: a joint causal pass (transformers' forward) and the LM head at every position."""
    ids = batch["text_ids"]
    logits = pme.lm_head(reference_joint(pme, batch, "vtg")[:, NQ:])
    return {"vtg": vtg_loss(logits, lm_labels(ids, batch["text_mask"]), 0.1)}


def test_pme_loss_equals_the_full_computation_with_padding_columns_added(inputs: dict[str, torch.Tensor]) -> None:
    pme = build("sdpa")
    batch = {"frames": inputs["frames"], "frame_mask": inputs["frame_mask"],
             "text_ids": inputs["text_ids"], "text_mask": inputs["text_mask"]}
    # three all-padding columns at the end: the loss trims them and must not change
    padded = dict(batch)
    padded["text_ids"] = torch.cat([batch["text_ids"], torch.zeros(B, 3, dtype=torch.long)], 1)
    padded["text_mask"] = torch.cat([batch["text_mask"], torch.zeros(B, 3, dtype=torch.bool)], 1)
    loss = PMELoss(seed=3)
    with torch.no_grad():
        got = loss.parts(pme, padded)
        trimmed = PMELoss(seed=3).parts(pme, batch)
        expected = full_pme_loss(pme, batch)["vtg"]
    assert set(got) == {"vtc", "vtm", "vtg"}
    assert abs(float(got["vtg"]) - float(expected)) <= 1e-5 * float(expected)
    for name in ("vtc", "vtm", "vtg"):
        assert abs(float(got[name]) - float(trimmed[name])) <= 1e-5 * max(1.0, float(trimmed[name]))
