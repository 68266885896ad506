"""Benchmark: one Stage-I PME training step (VTC + VTM + VTG), tiny and BERT-base widths, SDPA vs eager attention.

The step is ``PMELoss``, the objective ``stages/alignment_pme.py`` trains, on one process: query and [CLS]
features, max-over-queries similarities, InfoNCE (VTC); hard negatives sampled from the similarities, a 3B-pair
bidirectional pass and the 2-way ITM head (VTM); the causal text pass over the query pass's cached keys/values with
the tied LM head and label smoothing 0.1 (VTG); then backward (and, with ``--adamw``, an AdamW step: by default the
loop is the LAVIS anchor's, forward + backward + ``zero_grad``, no optimizer; an AdamW step between the timed
passes sweeps 2.9 GB of optimizer state and slowed the next forward + backward by 0.5-1 s at base width). Inputs: batch 8, T=40 frames of
768-d features, text length 32; ``--batch anchor`` (the default) times what ``../shared/anchors/lavis_step.py``
feeds LAVIS (every frame real, texts of 13 real tokens, padded to the longest as moviead's collator pads them;
LAVIS pads to 32), ``--batch mixed`` a batch of
mixed lengths (20-40 real frames, 16-32 real tokens). Reported per configuration: median forward+backward
time over the timed steps after warm-up (and every timed step), median AdamW step time (with ``--adamw``), and peak memory: on CPU the
peak RSS of the process sampled every 5 ms, on CUDA ``torch.cuda.max_memory_allocated``. Each configuration runs in
its own subprocess, so that RSS peaks do not carry over (an earlier version that interleaved the steps of two
BERT-base models in one process gave erratic times, 12-55 s for the same step). ``--rounds 2`` repeats everything
in the opposite order, to see drift from other load on a shared machine (the 1-min load average is recorded). The
eval-mode (no dropout) loss of the mixed batch before training is recorded so that SDPA and eager, and versions of
the code, can be compared (13.28462 at base width).

    .venv/bin/python bench/stage1_step.py [--device cpu|cuda] [--sizes tiny base] [--attn sdpa eager]
        [--warmup 3] [--steps 5] [--rounds 1] [--amp bf16] [--threads N] [--profile] [--batch anchor|mixed]
        [--adamw]

``--profile`` runs one more training step of each configuration under ``torch.profiler`` after the timed steps
and prints its top operators by self CPU time (the table in bench/README.md). ``--flops`` counts the FLOPs of one
forward+backward with ``torch.utils.flop_counter.FlopCounterMode`` (no timing; independent of the machine's load).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from contextlib import nullcontext
from typing import Any

import psutil
import torch

from moviead.losses import PMELoss
from moviead.models.qformer import PMEConfig, PretrainedMovieEncoder

BATCH, FRAMES, DIM, TEXT_LEN, VOCAB = 8, 40, 768, 32, 30522
SIZES: dict[str, dict[str, Any]] = {
    # configs/stage1/pme_tiny.yaml
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                 num_query_tokens=8, embed_dim=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
    # configs/stage1/pme.yaml: BERT-base, 32 queries, dropout 0.1
    "base": dict(num_query_tokens=32),
}


class PeakRSS:
    """Samples this process's RSS in a background thread; ``peak`` in bytes."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, me.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


ANCHOR_TEXT_TOKENS = 13  # the anchor's caption, [CLS] + 11 word pieces + [SEP], padded to 32 as LAVIS pads


def make_batch(device: torch.device, seed: int = 0, kind: str = "mixed") -> dict[str, torch.Tensor]:
    """frames (B, T, 768), frame_mask (B, T) bool, text_ids / text_mask (B, L).

    ``kind="mixed"``: 20-40 real frames and 16-32 real text tokens per sample (the first sample full), the batch
    whose eval-mode loss is the bench's regression check. ``kind="anchor"``: what ``../shared/anchors/lavis_step.py``
    feeds LAVIS, every frame real and every text :data:`ANCHOR_TEXT_TOKENS` real tokens (random ids, so that the texts
    differ and VTM has negatives to draw), padded as moviead's collator pads text: to the batch's longest
    (``tokenize(..., padding="longest")``), not to 32 as LAVIS's tokenizer call does.
    """
    gen = torch.Generator().manual_seed(seed)
    frame_len = torch.randint(FRAMES // 2, FRAMES + 1, (BATCH,), generator=gen)
    frame_len[0] = FRAMES
    text_len = torch.randint(TEXT_LEN // 2, TEXT_LEN + 1, (BATCH,), generator=gen)
    text_len[0] = TEXT_LEN
    if kind == "anchor":
        frame_len[:], text_len[:] = FRAMES, ANCHOR_TEXT_TOKENS
    text_ids = torch.randint(1000, VOCAB, (BATCH, TEXT_LEN), generator=gen)
    text_ids[:, 0] = 101  # [CLS]
    longest = int(text_len.max())  # the collator pads to the batch's longest text
    batch = {
        "frames": torch.randn(BATCH, FRAMES, DIM, generator=gen),
        "frame_mask": torch.arange(FRAMES)[None] < frame_len[:, None],
        "text_ids": text_ids[:, :longest],
        "text_mask": torch.arange(longest)[None] < text_len[:, None],
    }
    return {key: value.to(device) for key, value in batch.items()}


def stage1_loss(model: PretrainedMovieEncoder, batch: dict[str, torch.Tensor], gen: torch.Generator) -> torch.Tensor:
    """L_s1 = L_VTC + L_VTM + L_VTG on one process: ``PMELoss``, the objective PMEAlignmentStage trains (scalar);
    its VTM negatives are drawn from ``gen``."""
    total, _ = PMELoss(generator=gen)(model, batch)
    return total


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(size: str, attn: str, device: torch.device) -> tuple[PretrainedMovieEncoder, torch.optim.Optimizer]:
    """The PME of ``size`` (weights from seed 0, so identical for every ``attn``) and its AdamW."""
    torch.manual_seed(0)
    config = PMEConfig(**SIZES[size], max_frames=64, vocab_size=VOCAB, attn_implementation=attn)
    model = PretrainedMovieEncoder(config).to(device)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)


def train_step(
    model: PretrainedMovieEncoder, optimizer: torch.optim.Optimizer | None, batch: dict[str, torch.Tensor],
    gen: torch.Generator, amp: str | None,
) -> tuple[float, float]:
    """One step; returns (forward+backward seconds, AdamW step seconds)."""
    device = batch["frames"].device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if amp == "bf16" else nullcontext()
    if optimizer is None:  # --no-adamw: forward + backward only, as the LAVIS anchor's loop
        model.zero_grad(set_to_none=True)
    else:
        optimizer.zero_grad(set_to_none=True)
    sync(device)
    began = time.perf_counter()
    with autocast:
        loss = stage1_loss(model, batch, gen)
    loss.backward()
    sync(device)
    middle = time.perf_counter()
    if optimizer is not None:
        optimizer.step()
    sync(device)
    return middle - began, time.perf_counter() - middle


@torch.no_grad()
def eval_loss(model: PretrainedMovieEncoder, batch: dict[str, torch.Tensor], amp: str | None) -> float:
    """L_s1 in eval mode (no dropout), fixed negatives: equal for SDPA and eager up to rounding."""
    model.eval()
    autocast = torch.autocast(batch["frames"].device.type, dtype=torch.bfloat16) if amp == "bf16" else nullcontext()
    with autocast:
        value = stage1_loss(model, batch, torch.Generator().manual_seed(1)).item()
    model.train()
    return value


def profile_step(
    model: PretrainedMovieEncoder, optimizer: torch.optim.Optimizer | None, batch: dict[str, torch.Tensor],
    gen: torch.Generator, amp: str | None, rows: int = 15,
) -> str:
    """One more training step under ``torch.profiler``: its top ``rows`` operators by self CPU time (a table)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_step(model, optimizer, batch, gen, amp)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def count_flops(size: str, attn: str, device: torch.device, batch_kind: str = "anchor") -> dict[str, Any]:
    """FLOPs of one forward+backward of ``stage1_loss`` on the bench's batch, by operator (TFLOP)."""
    from torch.utils.flop_counter import FlopCounterMode

    model, _ = build(size, attn, device)
    counter = FlopCounterMode(display=False)
    with counter:
        stage1_loss(model, make_batch(device, kind=batch_kind), torch.Generator().manual_seed(0)).backward()
    by_op = {str(op): round(n / 1e12, 4) for op, n in counter.get_flop_counts()["Global"].items()}
    return {"size": size, "attn": attn, "batch": batch_kind, "tflop_fwd_bwd": round(counter.get_total_flops() / 1e12, 4), "by_op": by_op}


def measure(
    size: str, attn: str, device: torch.device, warmup: int, steps: int, amp: str | None, profile: bool = False,
    no_adamw: bool = False, batch_kind: str = "anchor",
) -> dict[str, Any]:
    """Times ``warmup + steps`` training steps of one configuration and records the peak memory (call it in a
    fresh process: RSS does not shrink back, and a second model in the same process distorts both)."""
    rss_before = psutil.Process().memory_info().rss
    with PeakRSS() as rss:
        model, optimizer = build(size, attn, device)
        optimizer = None if no_adamw else optimizer
        loss = eval_loss(model, make_batch(device), amp)  # the regression check: always the mixed batch
        batch, gen = make_batch(device, kind=batch_kind), torch.Generator().manual_seed(0)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = [train_step(model, optimizer, batch, gen, amp) for _ in range(warmup + steps)][warmup:]
        if profile:
            print(profile_step(model, optimizer, batch, gen, amp), flush=True)
    fwd_bwd = [t[0] for t in times]
    row: dict[str, Any] = {
        "size": size, "attn": attn, "batch": batch_kind, "device": device.type, "amp": amp or "fp32", "threads": torch.get_num_threads(),
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "eval_loss": round(loss, 6),
        "fwd_bwd_ms": round(1000 * statistics.median(fwd_bwd), 1),
        "fwd_bwd_min_ms": round(1000 * min(fwd_bwd), 1),
        "fwd_bwd_each_ms": [round(1000 * t) for t in fwd_bwd],
        "adamw_ms": None if optimizer is None else round(1000 * statistics.median(t[1] for t in times), 1),
        "steps": steps, "warmup": warmup, "load_1min": round(os.getloadavg()[0], 1),
    }
    if device.type == "cuda":
        row.update(peak_mb=round(torch.cuda.max_memory_allocated(device) / 2**20), peak_over_start_mb=None)
    else:
        row.update(peak_mb=round(rss.peak / 2**20), peak_over_start_mb=round((rss.peak - rss_before) / 2**20))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["tiny", "base"])
    parser.add_argument("--attn", nargs="+", choices=["sdpa", "eager"], default=["sdpa", "eager"])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    parser.add_argument("--rounds", type=int, default=1, help="repeat all configurations (order alternates)")
    parser.add_argument("--amp", choices=["bf16"], default=None, help="autocast dtype (default: fp32)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--profile", action="store_true", help="print the top operators of one more step")
    parser.add_argument("--flops", action="store_true", help="count the FLOPs of one step instead of timing")
    parser.add_argument("--adamw", action="store_true", help="an AdamW step after each timed forward + backward")
    parser.add_argument("--no-adamw", action="store_true", help="no optimizer (the default; kept for old commands)")
    parser.add_argument("--batch", choices=["anchor", "mixed"], default="anchor",
                        help="timed inputs: the LAVIS anchor's (every frame real, 13-token texts) or mixed lengths")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child: one configuration
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    extra_args = (["--amp", args.amp] if args.amp else []) + (["--threads", str(args.threads)] if args.threads else [])
    extra_args += (["--profile"] if args.profile else []) + (["--no-adamw"] if not args.adamw else ["--adamw"])
    extra_args += ["--batch", args.batch]
    if args.flops:
        for size in args.sizes:
            print(json.dumps(count_flops(size, args.attn[0], device, args.batch)), flush=True)
        return
    if args.one:
        row = measure(args.sizes[0], args.attn[0], device, args.warmup, args.steps, args.amp, args.profile,
                      not args.adamw, args.batch)
        print("RESULT " + json.dumps(row), flush=True)
        return
    rows = []
    for round_ in range(args.rounds):
        for size in args.sizes:
            for attn in args.attn if round_ % 2 == 0 else args.attn[::-1]:  # alternate the order between rounds
                cmd = [sys.executable, __file__, "--one", "--device", args.device, "--sizes", size, "--attn", attn,
                       "--warmup", str(args.warmup), "--steps", str(args.steps), *extra_args]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ.copy()).stdout
                if args.profile:
                    print(out.split("RESULT ")[0], flush=True)
                row = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
                print(json.dumps(row), flush=True)
                rows.append(row)
    mem = "peak CUDA allocated" if args.device == "cuda" else "peak RSS (growth)"
    print(f"\n| size | attention | params | fwd+bwd median (min) | AdamW step | {mem} | eval loss (mixed) | load "
          "| timed batch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        extra = "" if r["peak_over_start_mb"] is None else f" (+{r['peak_over_start_mb']:,} MB)"
        print(f"| {r['size']} | {r['attn']} | {r['params_m']} M | {r['fwd_bwd_ms']:,} ms ({r['fwd_bwd_min_ms']:,}) | "
              f"{'–' if r['adamw_ms'] is None else format(r['adamw_ms'], ',') + ' ms'} | {r['peak_mb']:,} MB{extra} | {r['eval_loss']:.5f} | {r['load_1min']} | "
              f"{r['batch']} |")


if __name__ == "__main__":
    main()
