"""PME Q-Former: task masks, padding, parity with transformers.BertModel, tied LM head."""

from __future__ import annotations

import re

import pytest
import torch
from transformers import BertConfig, BertModel

from moviead.models.qformer import PMEConfig, PretrainedMovieEncoder, task_attention_mask

B, T, L, DV, NQ, VOCAB = 2, 6, 7, 24, 4, 100


def tiny_config(**overrides: object) -> PMEConfig:
    sizes = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        num_query_tokens=NQ,
        vision_width=DV,
        embed_dim=16,
        vocab_size=VOCAB,
        max_position_embeddings=32,
        max_frames=12,
    )
    sizes.update(overrides)
    return PMEConfig(**sizes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def pme() -> PretrainedMovieEncoder:
    torch.manual_seed(0)
    return PretrainedMovieEncoder(tiny_config()).eval()


@pytest.fixture(scope="module")
def inputs() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    frame_mask = torch.ones(B, T, dtype=torch.bool)
    frame_mask[1, 4:] = False
    text_mask = torch.ones(B, L, dtype=torch.long)
    text_mask[0, 5:] = 0
    return {
        "frames": torch.randn(B, T, DV, generator=gen),
        "frame_mask": frame_mask,
        "text_ids": torch.randint(1, VOCAB, (B, L), generator=gen),
        "text_mask": text_mask,
    }


def other_text(text_ids: torch.Tensor) -> torch.Tensor:
    return (text_ids * 7 + 3) % (VOCAB - 1) + 1  # every token changed, still in [1, VOCAB)


def other_frames(frames: torch.Tensor) -> torch.Tensor:
    return frames + torch.randn(frames.shape, generator=torch.Generator().manual_seed(5))  # not a constant shift


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, atol=1e-6, rtol=0)


def test_shapes_and_normalised_features(pme: PretrainedMovieEncoder, inputs: dict[str, torch.Tensor]) -> None:
    frames, fmask, ids, tmask = inputs["frames"], inputs["frame_mask"], inputs["text_ids"], inputs["text_mask"]
    with torch.no_grad():
        assert pme(frames, fmask).shape == (B, NQ, 32)
        q = pme.query_features(frames, fmask)
        t = pme.text_features(ids, tmask)
        assert q.shape == (B, NQ, 16) and t.shape == (B, 16)
        assert torch.allclose(q.norm(dim=-1), torch.ones(B, NQ)) and torch.allclose(t.norm(dim=-1), torch.ones(B))
        assert pme.itm_logits(frames, fmask, ids, tmask).shape == (B, NQ, 2)
        assert pme.lm_logits(frames, fmask, ids, tmask).shape == (B, L, VOCAB)
    assert pytest.approx(pme.temp.item()) == 0.07


def test_task_mask_layout() -> None:
    text_mask = torch.tensor([[1, 1, 0]])
    vtg = task_attention_mask("vtg", 2, text_mask)[0].int().tolist()
    assert vtg == [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 0]]
    vtc = task_attention_mask("vtc", 2, text_mask)[0].int().tolist()
    assert vtc == [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 1, 0], [0, 0, 1, 1, 0], [0, 0, 1, 1, 0]]
    assert task_attention_mask("vtm", 2, text_mask)[0].int().tolist() == [[1, 1, 1, 1, 0]] * 5


@pytest.mark.parametrize("task", ["vtc", "vtg"])
def test_queries_do_not_see_text(pme: PretrainedMovieEncoder, inputs: dict[str, torch.Tensor], task: str) -> None:
    frames, fmask, ids, tmask = inputs["frames"], inputs["frame_mask"], inputs["text_ids"], inputs["text_mask"]
    with torch.no_grad():
        q1, t1 = pme.joint_outputs(frames, fmask, ids, tmask, task)  # type: ignore[arg-type]
        q2, t2 = pme.joint_outputs(frames, fmask, other_text(ids), tmask, task)  # type: ignore[arg-type]
        assert close(q1, q2)
        assert close(q1, pme.query_outputs(frames, fmask))  # same as the query-only branch
        assert not close(t1, t2)


def test_vtc_text_does_not_see_queries(pme: PretrainedMovieEncoder, inputs: dict[str, torch.Tensor]) -> None:
    frames, fmask, ids, tmask = inputs["frames"], inputs["frame_mask"], inputs["text_ids"], inputs["text_mask"]
    with torch.no_grad():
        _, t1 = pme.joint_outputs(frames, fmask, ids, tmask, "vtc")
        _, t2 = pme.joint_outputs(other_frames(frames), fmask, ids, tmask, "vtc")
        assert close(t1, t2)
        assert close(t1, pme.text_outputs(ids, tmask))  # same as the text-only branch


def test_vtm_is_bidirectional(pme: PretrainedMovieEncoder, inputs: dict[str, torch.Tensor]) -> None:
    frames, fmask, ids, tmask = inputs["frames"], inputs["frame_mask"], inputs["text_ids"], inputs["text_mask"]
    with torch.no_grad():
        q1, t1 = pme.joint_outputs(frames, fmask, ids, tmask, "vtm")
        q2, _ = pme.joint_outputs(frames, fmask, other_text(ids), tmask, "vtm")
        _, t3 = pme.joint_outputs(other_frames(frames), fmask, ids, tmask, "vtm")
    assert not close(q1, q2)  # queries see the text
    assert not close(t1, t3)  # text sees the (frame-reading) queries


def test_vtg_is_causal(pme: PretrainedMovieEncoder, inputs: dict[str, torch.Tensor]) -> None:
    frames, fmask, ids = inputs["frames"], inputs["frame_mask"], inputs["text_ids"]
    tmask = torch.ones_like(ids)
    with torch.no_grad():
        _, base = pme.joint_outputs(frames, fmask, ids, tmask, "vtg")
        for t in range(L - 1):
            changed = ids.clone()
            changed[:, t + 1] = other_text(ids[:, t + 1])
            _, out = pme.joint_outputs(frames, fmask, changed, tmask, "vtg")
            assert close(out[:, : t + 1], base[:, : t + 1]), f"position {t} sees position {t + 1}"
            assert not close(out[:, t + 1], base[:, t + 1])
        _, out = pme.joint_outputs(other_frames(frames), fmask, ids, tmask, "vtg")
        assert not close(out, base)  # text sees the queries


def test_padded_frames_are_ignored(pme: PretrainedMovieEncoder, inputs: dict[str, torch.Tensor]) -> None:
    frames, fmask, ids, tmask = inputs["frames"], inputs["frame_mask"], inputs["text_ids"], inputs["text_mask"]
    noisy = frames.clone()
    noisy[~fmask] = 100.0 * torch.randn(int((~fmask).sum()), DV)
    with torch.no_grad():
        assert close(pme(frames, fmask), pme(noisy, fmask))
        for task in ("vtc", "vtm", "vtg"):
            a = pme.joint_outputs(frames, fmask, ids, tmask, task)  # type: ignore[arg-type]
            b = pme.joint_outputs(noisy, fmask, ids, tmask, task)  # type: ignore[arg-type]
            assert close(a[0], b[0]) and close(a[1], b[1])
        # item 1 has 4 real frames: same as giving it only those 4 frames
        assert close(pme(frames[1:, :4])[0], pme(frames, fmask)[1])
        assert not close(pme(frames[1:, :5])[0], pme(frames, fmask)[1])


def test_too_many_frames_rejected(pme: PretrainedMovieEncoder) -> None:
    with pytest.raises(ValueError, match="max_frames"):
        pme(torch.zeros(1, 13, DV))


def test_lm_head_tied(pme: PretrainedMovieEncoder) -> None:
    assert pme.lm_head.decoder.weight is pme.embeddings.word_embeddings.weight
    assert pme.lm_head.decoder.bias is pme.lm_head.bias
    fresh = PretrainedMovieEncoder(tiny_config())
    fresh.load_state_dict(pme.state_dict(), strict=True)
    assert fresh.lm_head.decoder.weight is fresh.embeddings.word_embeddings.weight
    assert torch.equal(fresh.lm_head.decoder.weight, pme.embeddings.word_embeddings.weight)


def bert_key_to_pme(key: str) -> str:
    """BertModel key -> PME key (the Blip2 Q-Former names BERT's ``attention.self`` ``attention.attention``)."""
    if key.startswith("embeddings.LayerNorm."):
        return key.replace("embeddings.LayerNorm.", "qformer.layernorm.")
    if key.startswith("embeddings."):
        return key
    return "qformer." + re.sub(r"\.attention\.self\.", ".attention.attention.", key)


def test_text_branch_matches_bert() -> None:
    torch.manual_seed(0)
    config = tiny_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    bert_config = BertConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_position_embeddings,
        layer_norm_eps=config.layer_norm_eps,
        hidden_act=config.hidden_act,
    )
    bert = BertModel(bert_config, add_pooling_layer=False).eval()
    pme = PretrainedMovieEncoder(config).eval()
    ours = pme.state_dict()
    with torch.no_grad():
        bert.embeddings.token_type_embeddings.weight.zero_()
        for key, value in bert.state_dict().items():
            if key.startswith("embeddings.token_type_embeddings") or key.endswith("position_ids"):
                continue
            ours[bert_key_to_pme(key)].copy_(value)
    ids = torch.randint(1, VOCAB, (3, 9), generator=torch.Generator().manual_seed(2))
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    with torch.no_grad():
        expected = bert(input_ids=ids, attention_mask=mask).last_hidden_state
        got = pme.text_outputs(ids, mask)
    real = mask.bool()  # padded positions are not computed (they come back as zeros)
    diff = (got[real] - expected[real]).abs().max().item()
    print(f"PME text branch vs BertModel: max abs diff {diff:.3e}")
    assert diff < 1e-5 * expected.abs().max().item()  # relative to the activations' scale
    assert not got[~real].any()
