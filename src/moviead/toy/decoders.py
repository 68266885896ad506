"""Tiny random causal language models for toy Stage-II runs: OPT, GPT-2 or Qwen2 layout, toy-sized.

:func:`write_tiny_causal_lm` writes a folder that ``AutoModelForCausalLM.from_pretrained`` and
``AutoTokenizer.from_pretrained`` both load: ``config.json``, ``model.safetensors`` (what ``save_pretrained``
writes for these families, tied input and output embeddings) and a copy of the tokenizer's files. The weights
are drawn with numpy, with the families' own initialisation (normal, std 0.02; zero biases; unit norms; the
padding row of the embedding zeroed for OPT and Qwen2; GPT-2's residual projections scaled by
1/sqrt(2 · layers)), so writing one needs neither torch nor the transformers model code, whose import alone
costs several seconds: ``moviead make-toy-data`` stays fast. The same arguments give byte-identical files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

FAMILIES = ("opt", "gpt2", "qwen2")
INIT_STD = 0.02
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt")

# name → (shape, init); init: "normal", "zeros", "ones", "residual" (GPT-2's scaled normal), "embedding"
# (normal with the padding row zeroed)
ParamTable = dict[str, tuple[tuple[int, ...], str]]


def _linear(table: ParamTable, name: str, out_dim: int, in_dim: int, bias: bool = True, init: str = "normal") -> None:
    table[f"{name}.weight"] = ((out_dim, in_dim), init)
    if bias:
        table[f"{name}.bias"] = ((out_dim,), "zeros")


def _conv1d(table: ParamTable, name: str, in_dim: int, out_dim: int, init: str = "normal") -> None:
    """GPT-2's Conv1D: weight stored (in, out), bias (out,)."""
    table[f"{name}.weight"] = ((in_dim, out_dim), init)
    table[f"{name}.bias"] = ((out_dim,), "zeros")


def _norm(table: ParamTable, name: str, dim: int, bias: bool = True) -> None:
    table[f"{name}.weight"] = ((dim,), "ones")
    if bias:
        table[f"{name}.bias"] = ((dim,), "zeros")


def _opt(vocab: int, hidden: int, layers: int, positions: int) -> ParamTable:
    table: ParamTable = {"model.decoder.embed_tokens.weight": ((vocab, hidden), "embedding"),
                         "model.decoder.embed_positions.weight": ((positions + 2, hidden), "normal")}  # fmt: skip
    for i in range(layers):
        layer = f"model.decoder.layers.{i}"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            _linear(table, f"{layer}.self_attn.{proj}", hidden, hidden)
        _norm(table, f"{layer}.self_attn_layer_norm", hidden)
        _linear(table, f"{layer}.fc1", 4 * hidden, hidden)
        _linear(table, f"{layer}.fc2", hidden, 4 * hidden)
        _norm(table, f"{layer}.final_layer_norm", hidden)
    _norm(table, "model.decoder.final_layer_norm", hidden)
    return table


def _gpt2(vocab: int, hidden: int, layers: int, positions: int) -> ParamTable:
    table: ParamTable = {"transformer.wte.weight": ((vocab, hidden), "normal"),
                         "transformer.wpe.weight": ((positions, hidden), "normal")}  # fmt: skip
    for i in range(layers):
        block = f"transformer.h.{i}"
        _norm(table, f"{block}.ln_1", hidden)
        _conv1d(table, f"{block}.attn.c_attn", hidden, 3 * hidden)
        _conv1d(table, f"{block}.attn.c_proj", hidden, hidden, init="residual")
        _norm(table, f"{block}.ln_2", hidden)
        _conv1d(table, f"{block}.mlp.c_fc", hidden, 4 * hidden)
        _conv1d(table, f"{block}.mlp.c_proj", 4 * hidden, hidden, init="residual")
    _norm(table, "transformer.ln_f", hidden)
    return table


def _qwen2(vocab: int, hidden: int, layers: int, heads: int, kv_heads: int) -> ParamTable:
    head_dim = hidden // heads
    table: ParamTable = {"model.embed_tokens.weight": ((vocab, hidden), "embedding")}
    for i in range(layers):
        layer = f"model.layers.{i}"
        _norm(table, f"{layer}.input_layernorm", hidden, bias=False)
        _linear(table, f"{layer}.self_attn.q_proj", heads * head_dim, hidden)
        _linear(table, f"{layer}.self_attn.k_proj", kv_heads * head_dim, hidden)
        _linear(table, f"{layer}.self_attn.v_proj", kv_heads * head_dim, hidden)
        _linear(table, f"{layer}.self_attn.o_proj", hidden, heads * head_dim, bias=False)
        _norm(table, f"{layer}.post_attention_layernorm", hidden, bias=False)
        _linear(table, f"{layer}.mlp.gate_proj", 4 * hidden, hidden, bias=False)
        _linear(table, f"{layer}.mlp.up_proj", 4 * hidden, hidden, bias=False)
        _linear(table, f"{layer}.mlp.down_proj", hidden, 4 * hidden, bias=False)
    _norm(table, "model.norm", hidden, bias=False)
    return table


def _tokenizer_info(tokenizer_dir: Path) -> dict[str, int | None]:
    """Vocabulary size (largest id + 1) and the pad/bos/eos ids, read from ``tokenizer.json`` + its config."""
    spec = json.loads((tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))
    config_file = tokenizer_dir / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.exists() else {}
    ids = dict(spec["model"]["vocab"])
    ids.update({added["content"]: added["id"] for added in spec.get("added_tokens", [])})

    def token_id(key: str) -> int | None:
        token = config.get(key)
        token = token.get("content") if isinstance(token, dict) else token
        return ids.get(token) if token is not None else None

    return {"vocab_size": max(ids.values()) + 1, "pad_token_id": token_id("pad_token"),
            "bos_token_id": token_id("bos_token"), "eos_token_id": token_id("eos_token")}  # fmt: skip


def _config(family: str, info: dict[str, int | None], hidden: int, layers: int, heads: int, positions: int) -> dict:
    common = {**info, "tie_word_embeddings": True, "dtype": "float32"}
    if family == "opt":
        return {"architectures": ["OPTForCausalLM"], "model_type": "opt", "hidden_size": hidden,
                "word_embed_proj_dim": hidden, "ffn_dim": 4 * hidden, "num_hidden_layers": layers,
                "num_attention_heads": heads, "max_position_embeddings": positions, "do_layer_norm_before": True,
                "init_std": INIT_STD, **common}  # fmt: skip
    if family == "gpt2":
        return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": hidden, "n_layer": layers,
                "n_head": heads, "n_positions": positions, "initializer_range": INIT_STD, **common}  # fmt: skip
    return {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": hidden,
            "intermediate_size": 4 * hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
            "num_key_value_heads": _kv_heads(heads), "max_position_embeddings": positions,
            "initializer_range": INIT_STD, "rms_norm_eps": 1e-6, **common}  # fmt: skip


def _kv_heads(heads: int) -> int:
    """Grouped-query attention as in Qwen2: half as many key/value heads when the count is even."""
    return heads // 2 if heads % 2 == 0 else heads


def _draw(table: ParamTable, seed: int, layers: int, pad_id: int | None) -> dict[str, np.ndarray]:
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed])))
    out = {}
    for name, (shape, init) in table.items():  # insertion order: the same draws for the same arguments
        if init == "zeros":
            out[name] = np.zeros(shape, dtype=np.float32)
        elif init == "ones":
            out[name] = np.ones(shape, dtype=np.float32)
        else:
            std = INIT_STD / math.sqrt(2 * layers) if init == "residual" else INIT_STD
            out[name] = (std * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
            if init == "embedding" and pad_id is not None:
                out[name][pad_id] = 0.0
    return out


def write_tiny_causal_lm(
    out_dir: str | Path,
    tokenizer_dir: str | Path,
    family: str = "opt",
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    seed: int = 0,
    max_positions: int = 1024,
) -> Path:
    """Write a randomly initialised causal LM of ``family`` sized to the tokenizer in ``tokenizer_dir``.

    Args:
        out_dir: the model folder (created); ``AutoModelForCausalLM`` / ``AutoTokenizer.from_pretrained`` load it.
        tokenizer_dir: a saved fast tokenizer (``tokenizer.json``); its files are copied into ``out_dir`` and the
            model's vocabulary has one row per tokenizer id (added tokens included).
        family: ``"opt"``, ``"gpt2"`` or ``"qwen2"`` (Qwen2 with half as many key/value heads when even).
        hidden_size: model width H; feed-forward width 4H.
        num_layers: transformer blocks.
        num_heads: attention heads (must divide ``hidden_size``).
        seed: weights come from ``numpy`` PCG64 seeded with it; the same arguments give byte-identical files.
        max_positions: longest sequence (learned position tables of OPT and GPT-2; Qwen2 uses RoPE).
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    if hidden_size % num_heads or num_layers < 1:
        raise ValueError(f"need num_heads dividing hidden_size and num_layers >= 1; got {hidden_size}, "
                         f"{num_heads}, {num_layers}")  # fmt: skip
    from safetensors.numpy import save_file

    source, out = Path(tokenizer_dir), Path(out_dir)
    info = _tokenizer_info(source)
    vocab = int(info["vocab_size"])  # type: ignore[arg-type]
    if family == "opt":
        table = _opt(vocab, hidden_size, num_layers, max_positions)
    elif family == "gpt2":
        table = _gpt2(vocab, hidden_size, num_layers, max_positions)
    else:
        table = _qwen2(vocab, hidden_size, num_layers, num_heads, _kv_heads(num_heads))
    pad_id = info["pad_token_id"] if family != "gpt2" else None
    weights = _draw(table, seed, num_layers, pad_id)
    out.mkdir(parents=True, exist_ok=True)
    config = _config(family, info, hidden_size, num_layers, num_heads, max_positions)
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            (out / name).write_bytes((source / name).read_bytes())
    return out
