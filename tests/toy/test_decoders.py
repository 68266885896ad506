"""The toy decoder side: byte-level BPE tokenizer, prompt special tokens, tiny causal LMs of three families."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from moviead.data.prompt_tokens import (
    PROMPT_SPECIAL_TOKENS,
    add_prompt_special_tokens,
    ensure_pad_token,
    prompt_and_instruction_ids,
    stop_token_ids,
)
from moviead.toy import grammar as g
from moviead.toy.decoders import FAMILIES, write_tiny_causal_lm
from moviead.toy.tokenizers import write_toy_bpe_tokenizer


def _corpus() -> tuple[list[str], list[str], list[str]]:
    plans = [g.plan_movie(0, i) for i in range(3)]
    named = [g.ad_sentence(ad.sentence) for m in plans for ad in m.ads]
    unnamed = [g.replace_names(g.ad_sentence(ad.sentence), m.names()) for m in plans for ad in m.ads]
    return named, unnamed, [s.text for m in plans for s in m.subtitles]


@pytest.fixture(scope="module")
def bpe_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    named, unnamed, subtitles = _corpus()
    return write_toy_bpe_tokenizer(named + unnamed + subtitles, tmp_path_factory.mktemp("bpe"))


def _load(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def test_bpe_tokenizer_reloads_and_round_trips_the_toy_texts(bpe_dir: Path) -> None:
    tokenizer = _load(bpe_dir)
    assert (tokenizer.pad_token, tokenizer.bos_token, tokenizer.eos_token, tokenizer.unk_token) == (
        "<pad>", "</s>", "</s>", "<unk>")  # fmt: skip
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    named, unnamed, subtitles = _corpus()
    for text in named + unnamed + subtitles + ["Audio description: 3.5 km!\n"]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == " " + text  # the prefix space makes a first word the same token as later
        assert tokenizer(text)["input_ids"] == [1] + ids  # "</s>" starts a text, as in OPT
    for text in named:  # closed grammar: each word and punctuation mark is a single token
        pieces = re.findall(r"\w+|[^\w\s]", text)
        assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) == len(pieces)


def test_bpe_tokenizer_files_are_deterministic(bpe_dir: Path, tmp_path: Path) -> None:
    named, unnamed, subtitles = _corpus()
    again = write_toy_bpe_tokenizer(subtitles + unnamed + named, tmp_path / "again")  # order does not matter
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (again / name).read_bytes() == (bpe_dir / name).read_bytes()
    smaller = write_toy_bpe_tokenizer(named + unnamed + subtitles, tmp_path / "small", vocab_size=300)
    assert len(_load(smaller)) == 300 and len(_load(bpe_dir)) > 300


def test_prompt_special_tokens_are_added_once(bpe_dir: Path) -> None:
    tokenizer = _load(bpe_dir)
    size = len(tokenizer)
    ids = add_prompt_special_tokens(tokenizer)
    assert ids == {"b_q": size, "e_q": size + 1, "b_t": size + 2, "e_t": size + 3, "b_s": size + 4, "e_s": size + 5}
    assert add_prompt_special_tokens(tokenizer) == ids and len(tokenizer) == size + 6
    assert tokenizer.convert_ids_to_tokens(list(ids.values())) == list(PROMPT_SPECIAL_TOKENS)
    encoded = tokenizer("<b_t>Someone<e_t>", add_special_tokens=False)["input_ids"]
    assert encoded[0] == ids["b_t"] and encoded[-1] == ids["e_t"] and len(encoded) == 3
    assert tokenizer.decode(encoded, skip_special_tokens=True).strip() == "Someone"


def test_stop_ids_hold_every_token_with_a_full_stop_or_newline(bpe_dir: Path) -> None:
    tokenizer = _load(bpe_dir)
    add_prompt_special_tokens(tokenizer)
    stops = stop_token_ids(tokenizer)
    full_stop = tokenizer("attic.", add_special_tokens=False)["input_ids"][-1]  # after a word: no prefix space
    newline = tokenizer("attic\n", add_special_tokens=False)["input_ids"][-1]
    assert {full_stop, newline, tokenizer.eos_token_id} <= set(stops)
    texts = [tokenizer.decode([i]) for i in range(len(tokenizer))]
    assert set(stops) == {i for i, t in enumerate(texts) if "." in t or "\n" in t} | {tokenizer.eos_token_id}
    assert tokenizer("Someone", add_special_tokens=False)["input_ids"][0] not in stops


def test_pad_token_and_prompt_ids(bpe_dir: Path) -> None:
    tokenizer = _load(bpe_dir)
    tokenizer.pad_token = None
    assert ensure_pad_token(tokenizer) == 1 and tokenizer.pad_token == "</s>"
    assert ensure_pad_token(tokenizer) == 1
    instruction = tokenizer("Audio description:", add_special_tokens=False)["input_ids"]
    assert prompt_and_instruction_ids(tokenizer, "", "Audio description:") == ([1], instruction)
    prompt, _ = prompt_and_instruction_ids(tokenizer, "Describe", "")
    assert prompt == [1] + tokenizer("Describe", add_special_tokens=False)["input_ids"] and len(prompt) > 1


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_lm_loads_with_every_weight_and_vocabulary_logits(family: str, bpe_dir: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file
    from transformers import AutoModelForCausalLM

    folder = write_tiny_causal_lm(tmp_path / family, bpe_dir, family=family, hidden_size=32, num_heads=4, seed=0)
    model, info = AutoModelForCausalLM.from_pretrained(str(folder), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert model.config.model_type == family and model.config.hidden_size == 32
    tokenizer = _load(folder)
    text = "Someone hides the letter in the attic."
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]).lstrip(" ") == text
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], len(tokenizer)) and torch.isfinite(logits).all()
    saved = load_file(str(folder / "model.safetensors"))
    embedding = model.get_input_embeddings().weight.detach().numpy()
    (name,) = [k for k in saved if saved[k].shape == embedding.shape]
    assert np.array_equal(saved[name], embedding)
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    if family != "gpt2":  # OPT and Qwen2 zero the padding row, as their own initialisation does
        assert not embedding[tokenizer.pad_token_id].any() and embedding[1].any()


def test_tiny_lm_files_are_deterministic_per_seed(bpe_dir: Path, tmp_path: Path) -> None:
    first = write_tiny_causal_lm(tmp_path / "a", bpe_dir, family="opt", seed=0)
    again = write_tiny_causal_lm(tmp_path / "b", bpe_dir, family="opt", seed=0)
    other = write_tiny_causal_lm(tmp_path / "c", bpe_dir, family="opt", seed=1)
    names = sorted(p.name for p in first.iterdir())
    assert names == ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    assert all((first / n).read_bytes() == (again / n).read_bytes() for n in names)
    assert (first / "model.safetensors").read_bytes() != (other / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="family"):
        write_tiny_causal_lm(tmp_path / "d", bpe_dir, family="llama")


def test_a_name_is_one_token_wherever_it_stands(bpe_dir: Path) -> None:
    """A name opening a subtitle and the same name inside an AD are the same token, so it can be copied."""
    tokenizer = _load(bpe_dir)
    opening = tokenizer("Tamsin, over here!", add_special_tokens=False)["input_ids"][0]
    inside = tokenizer("In the attic, Tamsin opens the map.", add_special_tokens=False)["input_ids"]
    assert opening in inside
