"""GPU benchmark (issue "Performance", item 6): the Stage-I PME step and the Stage-II captioner step at the papers'
shapes, with tokens/s, peak memory and model FLOPs utilisation (MFU). Run it with ``bash bench/gpu.sh``.

Parts (each with its own time budget; the whole run stays under 8 minutes, ``bench/gpu.sh`` enforces it):

1. **pme**: one Stage-I training step of the PME at BERT-base width (12 layers, 768, 32 queries, dropout 0.1) as
   ``PMELoss(model, batch)`` computes it (VTC + VTM with hard negatives over 3B pairs + VTG), backward, AdamW.
   Batch 64 (``configs/stage1/pme.yaml``), 40 frames of 768-d, text 32 tokens, nothing padded.
2. **opt-1.3b**, 3. **opt-2.7b**: one LoCo-MAD Stage-II training step (``configs/stage2/loco_mad.yaml``): frozen
   BERT-base PME behind the recipe's ``FrozenEncoderCache`` (filled in the warm-up, so a measured step reads cached
   query outputs, as every epoch after the first), DSM (2 layers, L_c = 10 items, top-3), ``VisualPrefixDecoder``
   around a random-weight OPT of the hub model's shape (``OPTConfig`` sizes written in ``stage2_step.OPT_SHAPES``,
   no download), LM weights bf16 and frozen, trained projector + special rows + DSM;
   ``CaptioningLoss`` (½ (CCL + GEN)), backward, AdamW. Batch 16 (the recipe's), ≈ 190 positions per sample.

On CUDA everything runs under ``torch.autocast(bfloat16)``. Per part: ``--warmup`` steps, then up to ``--steps``
timed steps or until the part's budget is spent (at least 2). Reported: median step time, tokens/s, peak memory
(``torch.cuda.max_memory_allocated`` over the part's steps, after building; on the CPU the process's peak RSS),
model FLOPs per step and MFU = model FLOPs per step / median step time / the device's dense bf16 peak
(``PEAK_BF16_TFLOPS``; an unknown device prints "unknown peak" and no MFU; ``--peak-tflops`` overrides).

Model FLOPs (the usual 6·N·tokens convention; attention score/value products, norms and softmax not counted):

- a trained matrix of N parameters costs 6·N per token it is applied to (2 forward, 2 grad-input, 2 grad-weight);
- a frozen one 4·N per token when gradient must flow through it to something trained before it (2 forward + 2
  grad-input: the LoCo-MAD LM, whose input holds the trained visual prefix), 2·N when none does;
- embedding lookups are free; a tied LM head is a V×H matrix applied at the positions whose logits are computed.

PME: 6 × (N_q·query positions + N_t·text positions + N_kv·frames + N_head·VTG target positions), summed over the
four passes ``PMELoss`` runs (VTC queries: B·Nq and the B·T frames, projected once for the step; VTC text: B·L; VTM:
3B·(Nq, L), reusing the frames' projections; VTG: B·L text positions over the query pass's cached keys/values, LM
head on the B·(L-1) positions that predict a token), with N_q = self-attention + cross-attention query/output +
query feed-forward, N_t = self-attention + text feed-forward, N_kv = cross-attention key/value, N_head = transform +
V×H. Tokens/step = B·(T + L).
Stage-II: 4·N_lm·tokens + 4·V·H'·logit positions (6· for both when the LM is trained) + 6·N_proj·visual tokens +
6·N_dsm·proposal items (B·L_c; its cross-attention keys/values per frame instead), with N_lm = the LM without its
embedding tables, tokens = real (unpadded) positions (padded ones are computed but not counted), logit positions =
B × the span ``logits_to_keep`` keeps; the frozen PME costs nothing (cached). A second figure, "counted", is
``torch.utils.flop_counter.FlopCounterMode`` on one extra step (every matmul, attention and padding included):
the two should agree to within ~25 % (attention is the difference; it grows with the sequence length).

``--dry-run``: tiny shapes (``configs/stage1/pme_tiny.yaml``'s PME, the toy Stage-II captioner), CPU, fp32, batch
4, the same code path and table; writes nothing. Without it the run needs CUDA and replaces the "GPU figures"
section of ``bench/README.md`` with the table.

    bash bench/gpu.sh [--dry-run]          # = python bench/gpu.py [--dry-run] under an 8-minute timeout
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from stage1_step import PeakRSS  # noqa: E402
from stage2_step import (  # noqa: E402
    PME_BASE,
    PME_TINY,
    VISUAL_DIM,
    build_captioner,
    make_caption_batch,
)

from moviead.data.collate import BatchKey  # noqa: E402
from moviead.losses.captioning import CaptioningLoss  # noqa: E402
from moviead.losses.pme import PMELoss  # noqa: E402
from moviead.models.decoder import IGNORE_INDEX  # noqa: E402
from moviead.models.qformer import PMEConfig, PretrainedMovieEncoder  # noqa: E402

README = HERE / "README.md"
SECTION = "## GPU figures"
# Dense (no sparsity) bf16 tensor-core peaks in TFLOPS from NVIDIA's data sheets; the first pattern that matches
# torch.cuda.get_device_name() wins (so the PCIe/NVL H100s come before the SXM one).
PEAK_BF16_TFLOPS: list[tuple[str, float]] = [
    (r"H100.*PCIe", 756.0),
    (r"H100.*NVL", 835.0),
    (r"H100|H200|GH200|H800", 989.4),
    (r"A100|A800", 312.0),
    (r"L40S", 362.1),
    (r"\bL4\b", 121.0),
]


def peak_tflops(device_name: str) -> float | None:
    """The device's dense bf16 peak (TFLOPS) from ``PEAK_BF16_TFLOPS``, None when unknown."""
    for pattern, peak in PEAK_BF16_TFLOPS:
        if re.search(pattern, device_name):
            return peak
    return None


@dataclass
class Part:
    """One benchmark row: how to build it and how long it may take."""

    name: str
    shape: str
    batch: int
    budget_s: float


def gpu_parts() -> list[Part]:
    return [Part("pme", "bert-base", 64, 90.0), Part("opt-1.3b", "opt1.3b", 16, 120.0),
            Part("opt-2.7b", "opt2.7b", 16, 150.0)]


def dry_parts() -> list[Part]:
    return [Part("pme", "tiny", 4, 30.0), Part("opt-1.3b", "tiny", 4, 30.0), Part("opt-2.7b", "tiny", 4, 30.0)]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------------- the PME step
PME_FRAMES, PME_TEXT = 40, 32


def pme_path_params(model: PretrainedMovieEncoder) -> dict[str, int]:
    """Parameters applied per query position (q), text position (t), frame (kv) and VTG text position (head)."""
    n = {"q": 0, "t": 0, "kv": 0, "head": 0}
    for name, p in model.qformer.encoder.named_parameters():
        if p.dim() < 2:
            continue  # biases and norms: not matrices
        if ".crossattention.attention.key." in name or ".crossattention.attention.value." in name:
            n["kv"] += p.numel()
        elif ".crossattention." in name or "_query." in name:
            n["q"] += p.numel()
        elif ".attention." in name:
            n["q"] += p.numel()
            n["t"] += p.numel()
        else:  # intermediate / output: the text feed-forward
            n["t"] += p.numel()
    n["head"] = model.lm_head.transform.dense.weight.numel() + model.embeddings.word_embeddings.weight.numel()
    return n


def pme_case(part: Part, device: torch.device) -> tuple[Callable[[], None], dict[str, float], torch.nn.Module]:
    spec = PME_TINY if part.shape == "tiny" else PME_BASE
    frames, text = (8, 16) if part.shape == "tiny" else (PME_FRAMES, PME_TEXT)
    torch.manual_seed(0)
    model = PretrainedMovieEncoder(PMEConfig(**spec, vision_width=VISUAL_DIM)).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    criterion = PMELoss(seed=0)
    b, vocab = part.batch, model.config.vocab_size
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1000 if vocab > 2000 else 5, vocab, (b, text), generator=gen)
    ids[:, 0] = 101 if vocab > 2000 else 2  # [CLS]
    batch = {BatchKey.FRAMES: torch.randn(b, frames, VISUAL_DIM, generator=gen).to(device),
             BatchKey.FRAME_MASK: torch.ones(b, frames, dtype=torch.bool, device=device),
             BatchKey.TEXT_IDS: ids.to(device),
             BatchKey.TEXT_MASK: torch.ones(b, text, dtype=torch.bool, device=device)}

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device):
            total, _ = criterion(model, batch)
        total.backward()
        optimizer.step()

    n, nq = pme_path_params(model), model.config.num_query_tokens
    queries, texts, frame_rows = (1 + 3) * b * nq, (1 + 3 + 1) * b * text, b * frames
    flops = 6 * (n["q"] * queries + n["t"] * texts + n["kv"] * frame_rows + n["head"] * b * (text - 1))
    return step, {"tokens": b * (frames + text), "flops": float(flops)}, model


# ---------------------------------------------------------------------------------------------- the Stage-II step
def dsm_params(dsm: torch.nn.Module) -> tuple[int, int]:
    """The DSM's matrix parameters applied per proposal item and per frame (the cross-attention keys/values)."""
    per_frame = 0
    for layer in dsm.layers:
        attn = layer.cross_attn
        if attn._qkv_same_embed_dim:  # packed (3·D, D): query rows on the items, key/value rows on the frames
            per_frame += attn.in_proj_weight.numel() * 2 // 3
        else:
            per_frame += attn.k_proj_weight.numel() + attn.v_proj_weight.numel()
    total = sum(p.numel() for name, p in dsm.named_parameters() if p.dim() >= 2 and not name.startswith("recency"))
    return total - per_frame, per_frame


def stage2_case(part: Part, device: torch.device) -> tuple[Callable[[], None], dict[str, float], torch.nn.Module]:
    lm_dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    captioner = build_captioner(part.shape, device, lm_dtype)
    decoder = captioner.decoder
    batch = make_caption_batch(part.shape, decoder.base_vocab_size, device, batch=part.batch)
    optimizer = torch.optim.AdamW([p for p in captioner.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.05)
    criterion = CaptioningLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device):
            loss = criterion(captioner, batch).loss
        loss.backward()
        optimizer.step()

    with torch.no_grad():
        selected, _ = captioner.select(batch)
        inputs = captioner.decoder_inputs(batch, selected, with_target=True)
    tokens = int(inputs.attention_mask.sum())
    cols = (inputs.labels != IGNORE_INDEX).any(0).nonzero().squeeze(1)
    logit_positions = part.batch * (int(cols.max()) - int(cols.min()) + 1)
    lm = decoder.lm
    embeddings = {id(m.weight) for m in lm.modules() if isinstance(m, torch.nn.Embedding)}
    n_lm = sum(p.numel() for p in lm.parameters() if id(p) not in embeddings and p.dim() >= 2)
    head = lm.get_output_embeddings().weight.numel()
    factor = 6 if any(p.requires_grad for p in lm.parameters()) else 4
    n_items, n_frames = dsm_params(captioner.dsm) if captioner.dsm is not None else (0, 0)
    visual_tokens = part.batch * captioner.pme.config.num_query_tokens
    flops = (factor * (n_lm * tokens + head * logit_positions) + 6 * decoder.projector.weight.numel() * visual_tokens
             + 6 * n_items * batch.proposal_valid.numel() + 6 * n_frames * int(batch.frame_mask.sum()))
    return step, {"tokens": tokens, "flops": float(flops)}, captioner


def autocast(device: torch.device) -> Any:
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


# ---------------------------------------------------------------------------------------------- measuring
def counted_flops(step: Callable[[], None]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return float(counter.get_total_flops())


def run_part(part: Part, device: torch.device, warmup: int, steps: int, peak: float | None) -> dict[str, Any]:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    began_part = time.perf_counter()
    with PeakRSS() as rss:
        case = pme_case if part.name == "pme" else stage2_case
        step, info, model = case(part, device)
        if device.type == "cuda":  # the training steps' peak, not the fp32 → bf16 cast while building
            torch.cuda.reset_peak_memory_stats(device)
        for _ in range(warmup):
            step()
        sync(device)
        times: list[float] = []
        while len(times) < steps and (len(times) < 2 or time.perf_counter() - began_part < part.budget_s):
            began = time.perf_counter()
            step()
            sync(device)
            times.append(time.perf_counter() - began)
        counted = counted_flops(step)
        sync(device)
    peak_bytes = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else rss.peak
    median = statistics.median(times)
    achieved = info["flops"] / median / 1e12
    row = {
        "part": part.name, "shape": part.shape, "batch": part.batch, "tokens": int(info["tokens"]),
        "step_ms": 1000 * median, "min_ms": 1000 * min(times), "steps": len(times),
        "tokens_per_s": info["tokens"] / median, "peak_gib": peak_bytes / 2**30,
        "tflop_step": info["flops"] / 1e12, "counted_tflop_step": counted / 1e12, "tflops": achieved,
        "mfu": None if peak is None else achieved / peak, "seconds": time.perf_counter() - began_part,
    }
    del model, step
    gc.collect()
    return row


def table(rows: Sequence[dict[str, Any]], peak: float | None, memory: str) -> str:
    header = (f"| part | shape | batch | tokens/step | step median (min) | tokens/s | {memory} | model TFLOP/step "
              "(counted) | achieved TFLOPS | MFU |")
    lines = [header, "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "skipped" in r:
            rest = " | ".join([f"skipped: {r['skipped']}"] + ["–"] * 5)
            lines.append(f"| {r['part']} | {r['shape']} | {r['batch']} | – | {rest} |")
            continue
        mfu = "unknown peak" if r["mfu"] is None else f"{100 * r['mfu']:.1f} %"
        lines.append(
            f"| {r['part']} | {r['shape']} | {r['batch']} | {r['tokens']:,} | {r['step_ms']:,.1f} ms "
            f"({r['min_ms']:,.1f}, {r['steps']} steps) | {r['tokens_per_s']:,.0f} | {r['peak_gib']:,.2f} GiB | "
            f"{r['tflop_step']:.4g} ({r['counted_tflop_step']:.4g}) | {r['tflops']:.4g} | {mfu} |")
    return "\n".join(lines)


def write_readme(text: str, path: Path = README) -> None:
    """Replace the ``## GPU figures`` section of the README (up to the next ``## `` heading) or append it."""
    old = path.read_text(encoding="utf-8")
    pattern = re.compile(rf"^{re.escape(SECTION)}.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    block = text.rstrip() + "\n\n"
    new = pattern.sub(lambda _: block, old, count=1) if pattern.search(old) else old.rstrip() + "\n\n" + block
    path.write_text(new.rstrip() + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny shapes, CPU, fp32, no README")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps per part (3 on CUDA, 1 dry)")
    parser.add_argument("--steps", type=int, default=None, help="most timed steps per part (20 on CUDA, 2 dry)")
    parser.add_argument("--parts", nargs="+", default=["pme", "opt-1.3b", "opt-2.7b"])
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's bf16 peak (overrides the table)")
    parser.add_argument("--total-budget", type=float, default=420.0, help="seconds; later parts are skipped past it")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.dry_run:
        device, parts, device_name = torch.device("cpu"), dry_parts(), "CPU (dry run)"
        warmup, steps = args.warmup if args.warmup is not None else 1, args.steps or 2
    else:
        if not torch.cuda.is_available():
            raise SystemExit("bench/gpu.py needs CUDA; use --dry-run to check it on a CPU")
        device, parts, device_name = torch.device("cuda"), gpu_parts(), torch.cuda.get_device_name(0)
        warmup, steps = args.warmup if args.warmup is not None else 3, args.steps or 20
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    peak = args.peak_tflops if args.peak_tflops is not None else (None if args.dry_run else peak_tflops(device_name))
    print(f"device: {device_name}; bf16 peak: {'unknown peak' if peak is None else f'{peak:g} TFLOPS'}; "
          f"torch {torch.__version__}", flush=True)
    rows: list[dict[str, Any]] = []
    for part in parts:
        if part.name not in args.parts:
            continue
        left = args.total_budget - (time.perf_counter() - started)
        if left < part.budget_s / 3:
            rows.append({"part": part.name, "shape": part.shape, "batch": part.batch, "skipped": "time budget"})
            continue
        part.budget_s = min(part.budget_s, left)
        try:
            rows.append(run_part(part, device, warmup, steps, peak))
        except torch.cuda.OutOfMemoryError:
            rows.append({"part": part.name, "shape": part.shape, "batch": part.batch, "skipped": "out of memory"})
        r = rows[-1]
        print(f"{part.name}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                          for k, v in r.items()), flush=True)
    memory = "peak CUDA allocated" if device.type == "cuda" else "peak RSS"
    out = table(rows, peak, memory)
    print("\n" + out, flush=True)
    total = time.perf_counter() - started
    print(f"\ntotal {total:.0f} s", flush=True)
    if not args.dry_run:
        date = datetime.date.today().isoformat()
        write_readme(
            f"{SECTION}\n\nWritten by `bash bench/gpu.sh` on {date}: {device_name} (bf16 peak "
            f"{'unknown' if peak is None else f'{peak:g} TFLOPS'}), torch {torch.__version__}, bf16 autocast, "
            f"{warmup} warm-up steps, median of up to {steps} timed steps per part, {total:.0f} s in all. "
            "What each part runs and how FLOPs are counted: `bench/gpu.py`'s docstring and the section above.\n\n"
            + out + "\n")
        print(f"wrote the '{SECTION}' section of {README}", flush=True)
    return rows


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
