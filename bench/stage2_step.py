"""Benchmark: Stage-II decoder throughput, one training step and generation (greedy, beam 5), tiny and OPT-125m shapes.

A :class:`VisualPrefixDecoder` around a random-weight OPT (no download: only the shape matters for speed):
*tiny* = the toy decoder that ``moviead make-toy-data`` writes (hidden 128, 2 layers, 4 heads, vocabulary
1,024); *opt125m* = ``OPTConfig()``'s defaults, the shape of facebook/opt-125m (hidden 768, 12 layers, 12 heads,
vocabulary 50,272). Batch 8 samples, each: 32 visual tokens of 768-d (a PME's query outputs), 3 selected context
items of 16 AD tokens and 24 subtitle tokens (with the six special tokens around them), a 4-token instruction and
a 20-token target; one sample in two has one item fewer (padding).

- **train step**: forward (target cross-entropy) + backward + AdamW on the trainable parameters, LM frozen
  (the LoCo-MAD default) and, for the tiny shape, also unfrozen (the toy recipe). Tokens/s = real (unpadded)
  input tokens of the batch / median step time.
- **generation**: 36 new tokens per sample (no stop token, random weights would stop anywhere), greedy and beam
  5, KV cache, left padding. Tokens/s = 8 × 36 / time (beam: generated tokens per sample, not per beam).
Peak memory: RSS of the process sampled every 5 ms (``torch.cuda.max_memory_allocated`` on CUDA). Each shape
runs in its own subprocess.

    .venv/bin/python bench/stage2_step.py [--device cpu|cuda] [--sizes tiny opt125m] [--steps 5] [--warmup 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage1_step import PeakRSS  # noqa: E402

from moviead.models.decoder import VisualPrefixDecoder  # noqa: E402
from moviead.models.generation import GenerationSettings, generate  # noqa: E402

BATCH, QUERIES, VISUAL_DIM, ITEMS, AD_LEN, SUB_LEN, TARGET_LEN, NEW_TOKENS = 8, 32, 768, 3, 16, 24, 20, 36
SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(vocab_size=1024, hidden_size=128, num_hidden_layers=2, ffn_dim=512, num_attention_heads=4,
                 word_embed_proj_dim=128, max_position_embeddings=1024),
    "opt125m": dict(),  # OPTConfig defaults: facebook/opt-125m's shape
}
SPECIALS = ("b_q", "e_q", "b_t", "e_t", "b_s", "e_s")


def build(size: str, freeze_lm: bool, device: torch.device) -> VisualPrefixDecoder:
    from transformers import OPTConfig, OPTForCausalLM

    torch.manual_seed(0)
    lm = OPTForCausalLM(OPTConfig(**SIZES[size], dropout=0.0))
    vocab = lm.config.vocab_size
    special_ids = {name: vocab + i for i, name in enumerate(SPECIALS)}
    decoder = VisualPrefixDecoder(lm, visual_dim=VISUAL_DIM, special_ids=special_ids, base_vocab_size=vocab,
                                  pad_token_id=1, prompt_ids=[2], instruction_ids=[100, 101, 102, 103],
                                  freeze_lm=freeze_lm)
    return decoder.to(device)


def make_batch(vocab: int, device: torch.device) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    valid = torch.ones(BATCH, ITEMS, dtype=torch.bool)
    valid[1::2, 0] = False
    batch = {
        "visual": torch.randn(BATCH, QUERIES, VISUAL_DIM, generator=gen),
        "ad_ids": torch.randint(10, vocab, (BATCH, ITEMS, AD_LEN), generator=gen),
        "ad_mask": valid[..., None].expand(BATCH, ITEMS, AD_LEN).clone(),
        "sub_ids": torch.randint(10, vocab, (BATCH, ITEMS, SUB_LEN), generator=gen),
        "sub_mask": valid[..., None].expand(BATCH, ITEMS, SUB_LEN).clone(),
        "selected": valid,
        "target_ids": torch.randint(10, vocab, (BATCH, TARGET_LEN), generator=gen),
        "target_mask": torch.ones(BATCH, TARGET_LEN, dtype=torch.bool),
    }
    return {k: v.to(device) for k, v in batch.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_one(size: str, freeze_lm: bool, device: torch.device, steps: int, warmup: int, generate_too: bool) -> dict:
    decoder = build(size, freeze_lm, device)
    b = make_batch(decoder.base_vocab_size, device)
    args = (b["visual"], None, b["ad_ids"], b["ad_mask"], b["sub_ids"], b["sub_mask"], b["selected"])
    tokens = int(decoder.assemble(*args, b["target_ids"], b["target_mask"]).attention_mask.sum())
    params = [p for p in decoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    times = []
    with PeakRSS() as rss:
        for step in range(warmup + steps):
            _sync(device)
            began = time.perf_counter()
            loss = decoder(*args, b["target_ids"], b["target_mask"])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            _sync(device)
            if step >= warmup:
                times.append(time.perf_counter() - began)
        out: dict[str, Any] = {
            "size": size, "lm": "frozen" if freeze_lm else "trained", "input_tokens": tokens,
            "trainable_params": sum(p.numel() for p in params),
            "step_s": statistics.median(times), "train_tokens_per_s": tokens / statistics.median(times),
        }
        if generate_too:
            decoder.eval()
            inputs = decoder.assemble(*args, padding_side="left")
            for beams in (1, 5):
                settings = GenerationSettings(num_beams=beams, max_new_tokens=NEW_TOKENS, stop_token_ids=())
                generate(decoder, inputs, settings)  # warm-up
                _sync(device)
                began = time.perf_counter()
                with torch.inference_mode():
                    ids = generate(decoder, inputs, settings)
                _sync(device)
                elapsed = time.perf_counter() - began
                out[f"gen_beam{beams}_tokens_per_s"] = sum(len(x) for x in ids) / elapsed
    out["peak_mb"] = (torch.cuda.max_memory_allocated() if device.type == "cuda" else rss.peak) / 2**20
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--one", nargs=2, metavar=("SIZE", "LM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.one:
        size, lm = args.one
        print(json.dumps(run_one(size, lm == "frozen", device, args.steps, args.warmup, lm == "frozen")))
        return
    runs = [(size, "frozen") for size in args.sizes] + [("tiny", "trained")] * ("tiny" in args.sizes)
    print("| size | LM | input tokens | trainable params | step | train tokens/s | greedy tokens/s | "
          "beam-5 tokens/s | peak memory |\n|---|---|---|---|---|---|---|---|---|")
    for size, lm in runs:
        cmd = [sys.executable, __file__, "--one", size, lm, "--device", args.device, "--steps", str(args.steps),
               "--warmup", str(args.warmup)]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        gen = (f"{r['gen_beam1_tokens_per_s']:,.0f} | {r['gen_beam5_tokens_per_s']:,.0f}"
               if "gen_beam1_tokens_per_s" in r else "– | –")
        print(f"| {size} | {r['lm']} | {r['input_tokens']:,} | {r['trainable_params'] / 1e6:.2f} M | "
              f"{r['step_s'] * 1000:,.0f} ms | {r['train_tokens_per_s']:,.0f} | {gen} | {r['peak_mb']:,.0f} MB |",
              flush=True)


if __name__ == "__main__":
    main()
