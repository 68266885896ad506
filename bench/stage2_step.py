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

``--overhead`` (issue "Performance", item 3) instead times, side by side in one process and in alternating rounds,
(i) the LoCo-MAD captioner's training step as ``CaptioningLoss`` computes it (frozen-PME query outputs through the
recipe's ``FrozenEncoderCache`` as visual tokens, DSM selection, CCL, decoder loss, backward) and (ii) a bare
``AutoModelForCausalLM(inputs_embeds=..., attention_mask=..., labels=...)`` forward + backward on the very inputs the
captioner assembled (same batch, same padded length, same LM module and trainable LM parameters; the input
embeddings are a leaf that requires grad, so the backward runs through every layer as the captioner's does), in
two forms: *lean* (``logits_to_keep`` from the first target position, as the decoder does) and *full* (logits at
every position, the plain HF call). Overhead = captioner / bare-lean - 1; "from pieces" = (DSM + CCL forward and
backward alone + prompt assembly alone) / bare-lean, the same quantity from parts timed on their own. Shapes
(``CAPTIONER_SHAPES``): *tiny* = the toy recipe (``loco_mad_tiny.yaml``: tiny PME, 8 frames, the toy text tower's
768-d sentence features, a DSM 128 wide (``BENCH_TINY_DSM_HIDDEN=0``: as wide as the features), L_c = 5, LM trained), *opt125m* = the LoCo-MAD recipe at OPT-125m width (BERT-base PME, 40
frames, 768-d sentence features, L_c = 10, top-3, LM frozen). ``--profile`` adds ``torch.profiler`` top ops by self
time for one step of each (captioner, bare lean, DSM + CCL alone). Each step is timed by the wall
clock and by the process's CPU time (``time.process_time``); on a shared CPU, ``--threads 1`` and the CPU-time column
are the steadier comparison (other workers' load stretches wall time, not the CPU time the step uses).

    .venv/bin/python bench/stage2_step.py [--device cpu|cuda] [--sizes tiny opt125m] [--steps 5] [--warmup 2]
    .venv/bin/python bench/stage2_step.py --overhead [--sizes tiny opt125m] [--rounds 5] [--warmup 1] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage1_step import PeakRSS  # noqa: E402

from moviead.losses.captioning import CaptioningLoss  # noqa: E402
from moviead.losses.contextual import dsm_contextual_loss  # noqa: E402
from moviead.models.captioner import ADCaptioner, CaptionBatch  # noqa: E402
from moviead.models.decoder import IGNORE_INDEX, DecoderInputs, VisualPrefixDecoder  # noqa: E402
from moviead.models.dsm import DynamicSelectionModule  # noqa: E402
from moviead.models.frozen_cache import FrozenEncoderCache  # noqa: E402
from moviead.models.generation import GenerationSettings, generate  # noqa: E402
from moviead.models.qformer import PMEConfig, PretrainedMovieEncoder  # noqa: E402

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


# ---------------------------------------------------------------------------------------------- captioner vs bare LM
OPT_SHAPES: dict[str, dict[str, Any]] = {
    **SIZES,
    # the hub models' config.json sizes, written here (no download): random weights, same shape
    "opt1.3b": dict(hidden_size=2048, num_hidden_layers=24, ffn_dim=8192, num_attention_heads=32,
                    word_embed_proj_dim=2048, max_position_embeddings=2048),
    "opt2.7b": dict(hidden_size=2560, num_hidden_layers=32, ffn_dim=10240, num_attention_heads=32,
                    word_embed_proj_dim=2560, max_position_embeddings=2048),
}
PME_TINY = dict(vocab_size=256, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                num_query_tokens=8, embed_dim=64, max_frames=32, hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0)  # configs/stage1/pme_tiny.yaml
PME_BASE = dict(num_query_tokens=32)  # configs/stage1/pme.yaml: BERT-base, 32 queries
CAPTIONER_SHAPES: dict[str, dict[str, Any]] = {
    # configs/stage2/loco_mad_tiny.yaml: toy decoder trained whole, the toy text tower's 768-d sentence features,
    # a DSM of width dsm.hidden_dim, L_c = 5, 8 frames
    "tiny": dict(lm="tiny", pme=PME_TINY, frames=8, text_dim=768, dsm_heads=4, dsm_dropout=0.0, proposal=5,
                 freeze_lm=False, dsm_hidden=int(os.environ.get("BENCH_TINY_DSM_HIDDEN", 128)) or None),
    # configs/stage2/loco_mad.yaml at OPT-125m width: BERT-base PME, CLIP-L text features, L_c = 10, LM frozen
    "opt125m": dict(lm="opt125m", pme=PME_BASE, frames=40, text_dim=768, dsm_heads=8, dsm_dropout=0.1,
                    proposal=10, freeze_lm=True, dsm_hidden=None),
}
for _name in ("opt1.3b", "opt2.7b"):  # the papers' Stage-II shapes (bench/gpu.py)
    CAPTIONER_SHAPES[_name] = {**CAPTIONER_SHAPES["opt125m"], "lm": _name}


def build_captioner(
    shape: str, device: torch.device, lm_dtype: torch.dtype = torch.float32, dsm: bool = True
) -> ADCaptioner:
    """The LoCo-MAD captioner of ``CAPTIONER_SHAPES[shape]`` with random weights: frozen PME behind a
    ``FrozenEncoderCache`` (as the recipe), DSM (top-3), ``VisualPrefixDecoder`` around a random OPT of that shape,
    whose weights are in ``lm_dtype`` (the recipe's ``decoder.dtype``)."""
    from transformers import OPTConfig, OPTForCausalLM

    spec = CAPTIONER_SHAPES[shape]
    torch.manual_seed(0)
    pme = PretrainedMovieEncoder(PMEConfig(**spec["pme"], vision_width=VISUAL_DIM)).to(device)
    with torch.device(device):  # build big LMs on the device directly
        lm = OPTForCausalLM(OPTConfig(**OPT_SHAPES[spec["lm"]], dropout=0.0)).to(lm_dtype)
    vocab = lm.config.vocab_size
    decoder = VisualPrefixDecoder(lm, visual_dim=pme.config.hidden_size,
                                  special_ids={name: vocab + i for i, name in enumerate(SPECIALS)},
                                  base_vocab_size=vocab, pad_token_id=1, prompt_ids=[2],
                                  instruction_ids=[100, 101, 102, 103], freeze_lm=spec["freeze_lm"])
    selection = DynamicSelectionModule(text_dim=spec["text_dim"], visual_dim=VISUAL_DIM, n_layers=2,
                                       n_heads=spec["dsm_heads"], top_k=3, dropout=spec["dsm_dropout"],
                                       max_proposal=max(32, spec["proposal"] + 1),
                                       hidden_dim=spec["dsm_hidden"]) if dsm else None
    captioner = ADCaptioner(decoder, pme=pme, dsm=selection, frozen_cache=FrozenEncoderCache(int(4e9)))
    return captioner.to(device).train()


def make_caption_batch(shape: str, vocab: int, device: torch.device, batch: int = BATCH) -> CaptionBatch:
    """B clips of ``frames`` 768-d frames (all real), a proposal of ``proposal`` items (16 AD + 24 subtitle tokens
    each; one sample in two has one item fewer) with unit sentence features, a 20-token target."""
    spec = CAPTIONER_SHAPES[shape]
    gen = torch.Generator().manual_seed(0)
    items, frames = spec["proposal"], spec["frames"]
    valid = torch.ones(batch, items, dtype=torch.bool)
    valid[1::2, 0] = False
    features = torch.nn.functional.normalize(torch.randn(batch, items, spec["text_dim"], generator=gen), dim=-1)
    out = CaptionBatch(
        frames=torch.randn(batch, frames, VISUAL_DIM, generator=gen).to(device),
        frame_mask=torch.ones(batch, frames, dtype=torch.bool, device=device),
        proposal_ad_ids=torch.randint(10, vocab, (batch, items, AD_LEN), generator=gen).to(device),
        proposal_ad_mask=valid[..., None].expand(batch, items, AD_LEN).to(device),
        proposal_sub_ids=torch.randint(10, vocab, (batch, items, SUB_LEN), generator=gen).to(device),
        proposal_sub_mask=valid[..., None].expand(batch, items, SUB_LEN).to(device),
        proposal_valid=valid.to(device),
        proposal_features=features.to(device),
        target_ids=torch.randint(10, vocab, (batch, TARGET_LEN), generator=gen).to(device),
        target_mask=torch.ones(batch, TARGET_LEN, dtype=torch.bool, device=device),
    )
    return out


def bare_inputs(captioner: ADCaptioner, batch: CaptionBatch) -> DecoderInputs:
    """The LM input the captioner assembles for ``batch`` (its DSM's selection), detached: the bare LM's input."""
    with torch.no_grad():
        selected, _ = captioner.select(batch)
        inputs = captioner.decoder_inputs(batch, selected, with_target=True)
    return DecoderInputs(inputs.inputs_embeds.detach(), inputs.attention_mask, inputs.position_ids, inputs.labels)


def bare_step(lm: torch.nn.Module, inputs: DecoderInputs, lean: bool) -> torch.Tensor:
    """``lm(inputs_embeds=..., attention_mask=..., labels=...)`` + backward; the embeddings are a fresh leaf that
    requires grad (a projector's output). ``lean``: logits only from the position before the first target on
    (``logits_to_keep``, labels cut to match: HF shifts them inside), as the decoder computes them."""
    embeds = inputs.inputs_embeds.detach().requires_grad_(True)
    labels = inputs.labels
    kwargs: dict[str, Any] = {}
    if lean:
        first = int((labels != IGNORE_INDEX).any(0).nonzero().min())
        keep = labels.shape[1] - first + 1
        labels, kwargs = labels[:, -keep:], {"logits_to_keep": keep}
    loss = lm(inputs_embeds=embeds, attention_mask=inputs.attention_mask, labels=labels, use_cache=False,
              **kwargs).loss
    loss.backward()
    return loss


def captioner_step(captioner: ADCaptioner, criterion: CaptioningLoss, batch: CaptionBatch) -> torch.Tensor:
    """One LoCo-MAD training step without the optimizer: ``CaptioningLoss`` (½ (CCL + GEN)) and backward."""
    loss = criterion(captioner, batch).loss
    loss.backward()
    return loss


def captioner_phases(captioner: ADCaptioner, batch: CaptionBatch, device: torch.device) -> dict[str, float]:
    """Seconds of each piece of one captioner step, taken the way ``CaptioningLoss`` takes them."""
    marks = [("start", time.perf_counter())]

    def mark(name: str) -> None:
        _sync(device)
        marks.append((name, time.perf_counter()))

    selected, dsm = captioner.select(batch)
    mark("dsm")
    visual, visual_mask = captioner.visual_prefix(batch)
    mark("visual tokens")
    inputs = captioner.decoder.assemble(visual, visual_mask, batch.proposal_ad_ids, batch.proposal_ad_mask,
                                        batch.proposal_sub_ids, batch.proposal_sub_mask, selected, batch.target_ids,
                                        batch.target_mask)
    mark("assemble")
    gen = captioner.decoder.loss(inputs)
    mark("LM forward + loss")
    loss = 0.5 * (dsm_contextual_loss(dsm) + gen)
    mark("CCL")
    loss.backward()
    mark("backward")
    captioner.zero_grad(set_to_none=True)
    return {name: t - marks[i][1] for i, (name, t) in enumerate(marks[1:])}


def overhead_one(
    shape: str, device: torch.device, rounds: int, warmup: int, profile: bool, batch_size: int = BATCH
) -> dict[str, Any]:
    """Times the captioner step and the two bare LM steps, alternating their order every round."""
    captioner = build_captioner(shape, device)
    lm = captioner.decoder.lm
    batch = make_caption_batch(shape, captioner.decoder.base_vocab_size, device, batch_size)
    criterion = CaptioningLoss()
    _sync(device)
    began = time.perf_counter()
    with torch.no_grad():
        captioner.pme.query_outputs(batch.frames, batch.frame_mask)
    _sync(device)
    pme_ms = 1000 * (time.perf_counter() - began)  # a cache miss: what the first epoch pays per batch
    inputs = bare_inputs(captioner, batch)  # fills the frozen cache too
    with torch.no_grad():
        selected = captioner.select(batch)[0]
    steps = {
        "captioner": lambda: captioner_step(captioner, criterion, batch),
        "bare_lean": lambda: bare_step(lm, inputs, lean=True),
        "bare_full": lambda: bare_step(lm, inputs, lean=False),
        # the captioner's pieces outside the LM, alone: the DSM + CCL (forward + backward) and the prompt assembly
        "dsm_ccl": lambda: dsm_contextual_loss(captioner.select(batch)[1]).backward(),
        "assemble": lambda: captioner.decoder_inputs(batch, selected, with_target=True),  # visual tokens included
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    cpu_times: dict[str, list[float]] = {name: [] for name in steps}
    order = list(steps)
    for round_ in range(warmup + rounds):
        for name in order if round_ % 2 == 0 else order[::-1]:
            captioner.zero_grad(set_to_none=True)
            _sync(device)
            began, began_cpu = time.perf_counter(), time.process_time()
            steps[name]()
            _sync(device)
            if round_ >= warmup:
                times[name].append(time.perf_counter() - began)
                cpu_times[name].append(time.process_time() - began_cpu)
    phases = [captioner_phases(captioner, batch, device) for _ in range(2)]
    out: dict[str, Any] = {
        "shape": shape, "lm": "frozen" if CAPTIONER_SHAPES[shape]["freeze_lm"] else "trained",
        "batch": batch_size, "length": int(inputs.attention_mask.shape[1]), "tokens": int(inputs.attention_mask.sum()),
        "rounds": rounds, "pme_miss_ms": round(pme_ms, 1), "load_1min": round(os.getloadavg()[0], 1),
        **{f"{name}_ms": round(1000 * statistics.median(t), 1) for name, t in times.items()},
        **{f"{name}_min_ms": round(1000 * min(t), 1) for name, t in times.items()},
        **{f"{name}_cpu_ms": round(1000 * statistics.median(t), 1) for name, t in cpu_times.items()},
        "threads": torch.get_num_threads(),
        **{f"{name}_each_ms": [round(1000 * x) for x in t] for name, t in times.items()},
        "phases_ms": {k: round(1000 * min(p[k] for p in phases), 1) for k in phases[0]},
    }
    out["overhead_lean_pct"] = round(100 * (out["captioner_ms"] / out["bare_lean_ms"] - 1), 1)
    out["overhead_full_pct"] = round(100 * (out["captioner_ms"] / out["bare_full_ms"] - 1), 1)
    out["overhead_lean_cpu_pct"] = round(100 * (out["captioner_cpu_ms"] / out["bare_lean_cpu_ms"] - 1), 1)
    for tag in ("", "_cpu"):  # the same overhead from the pieces timed alone: steadier than a difference of steps
        out[f"overhead_pieces{tag}_pct"] = round(
            100 * (out[f"dsm_ccl{tag}_ms"] + out[f"assemble{tag}_ms"]) / out[f"bare_lean{tag}_ms"], 1)
    out["overhead_full_cpu_pct"] = round(100 * (out["captioner_cpu_ms"] / out["bare_full_cpu_ms"] - 1), 1)
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        for name in ("captioner", "bare_lean", "dsm_ccl"):
            captioner.zero_grad(set_to_none=True)
            with torch_profile(activities=activities) as prof:
                steps[name]()
                _sync(device)
            print(f"\n### profile: {shape} {name} (top ops by self time)\n"
                  + prof.key_averages().table(sort_by=key, row_limit=15), flush=True)
    return out


def overhead_table(rows: list[dict[str, Any]]) -> str:
    header = ("| shape | LM | B × L (real tokens) | clock | captioner median (min) | bare LM, lean | bare LM, full "
              "logits | overhead vs lean | vs full | DSM + CCL alone | assembly alone | overhead from pieces "
              "| frozen PME, cache miss | threads | load |")
    lines = [header, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for clock, tag in (("CPU time", "_cpu"), ("wall", "")):
            ms = [f"{r[f'{n}{tag}_ms']:,.1f} ms" + (f" ({r[f'{n}_min_ms']:,.1f})" if not tag else "")
                  for n in ("captioner", "bare_lean", "bare_full")]
            lines.append(f"| {r['shape']} | {r['lm']} | {r['batch']} × {r['length']} ({r['tokens']:,}) | {clock} | "
                         f"{ms[0]} | {ms[1]} | {ms[2]} | "
                         f"**{r[f'overhead_lean{tag}_pct']:+.1f} %** | {r[f'overhead_full{tag}_pct']:+.1f} % | "
                         f"{r[f'dsm_ccl{tag}_ms']:,.1f} ms | {r[f'assemble{tag}_ms']:,.1f} ms | "
                         f"{r[f'overhead_pieces{tag}_pct']:+.1f} % | "
                         f"{r['pme_miss_ms']:,.1f} ms | {r['threads']} | {r['load_1min']} |")
    lines.append("\nCaptioner step, by piece (ms, best of 2): ")
    for r in rows:
        lines.append(f"- {r['shape']}: " + ", ".join(f"{k} {v:,.1f}" for k, v in r["phases_ms"].items()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--one", nargs=2, metavar=("SIZE", "LM"), help=argparse.SUPPRESS)
    parser.add_argument("--overhead", action="store_true", help="captioner step vs a bare LM step (see the docstring)")
    parser.add_argument("--rounds", type=int, default=5, help="--overhead: timed rounds (order alternates)")
    parser.add_argument("--profile", action="store_true", help="--overhead: torch.profiler top ops of one step")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--batch-size", type=int, default=BATCH,
                        help="--overhead: samples per step (the recipes train with 16)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.overhead:
        rows = []
        for size in args.sizes:
            rows.append(overhead_one(size, device, args.rounds, args.warmup, args.profile, args.batch_size))
            print(json.dumps(rows[-1]), flush=True)
        print("\n" + overhead_table(rows), flush=True)
        return
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
