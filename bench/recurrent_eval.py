"""Benchmark: recurrent evaluation throughput (ADs/s) with B = 1 and B = 8 movies per batch.

The whole ``moviead evaluate --mode recurrent`` loop (:func:`moviead.evaluation.decode.decode_split`): frames read
from the h5 file, DSM proposals built from the model's own earlier predictions, their sentence features encoded by
the MiniLM bank as they appear, greedy decoding with the KV cache, rows streamed to ``predictions.jsonl``. Data: a
16-movie toy data set; the first ``--ads`` ADs of 8 training movies. Models: untrained Stage-II captioners (random
weights: only the shape matters for speed, and an untrained model rarely stops early, so every AD costs about
``max_new_tokens`` decoding steps) around the toy tiny PME and

- *tiny*: the toy decoder (OPT, hidden 128, 2 layers, 4 heads);
- *opt125m*: OPT-125m's body (hidden 768, 12 layers, 12 heads, FFN 3,072) with the toy tokenizer's 1,030-token
  vocabulary (the real 50,272-token head would add about a third to each step's compute).

Each timed run starts with an empty sentence-feature bank (encoder loaded beforehand), in a fresh output folder;
one untimed B = 1 run warms up first. The speed-up target (issue #5) is ≥ 0.7 · B.

    .venv/bin/python bench/recurrent_eval.py [--sizes tiny opt125m] [--ads 12] [--movies 8] [--max-new-tokens 36]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / ".work" / "recurrent_eval"
sys.path.insert(0, str(REPO))

from moviead.config import ContextMode, load_config  # noqa: E402
from moviead.data.sources import load_split  # noqa: E402
from moviead.evaluation.decode import DecodeSettings, decode_split  # noqa: E402
from moviead.recipes.checkpoint import load_captioner_checkpoint
from moviead.toy.decoders import write_tiny_causal_lm  # noqa: E402
from moviead.toy.generator import write_toy_dataset  # noqa: E402
from tests.stages._stage2 import write_tiny_stage1_export, write_untrained_stage2_checkpoint  # noqa: E402

CONFIGS = REPO / "configs"
SIZES = {"tiny": None, "opt125m": dict(hidden_size=768, num_layers=12, num_heads=12)}


def setup(size: str, max_new_tokens: int) -> Path:
    """Toy data (16 movies), a tiny PME export, the decoder of ``size`` and an untrained Stage-II checkpoint."""
    toy = WORK / "toy"
    if not (toy / "mad" / "mad_split.json").exists():
        write_toy_dataset(toy, movies=16, seed=0)
    stage1 = WORK / "stage1"
    if not (stage1 / "pme_config.json").exists():
        write_tiny_stage1_export(toy, stage1)
    lm = toy / "decoders" / "tiny-opt"
    if SIZES[size] is not None:
        lm = WORK / f"lm-{size}"
        if not (lm / "config.json").exists():
            write_tiny_causal_lm(lm, toy / "tokenizers" / "byte-bpe", "opt", **SIZES[size])
    files = [CONFIGS / "stage2" / "loco_mad.yaml", CONFIGS / "stage2" / "loco_mad_tiny.yaml",
             CONFIGS / "data" / "toy.yaml"]
    cfg = load_config(files, [f"data.root={toy / 'mad'}", f"captioning.stage1={stage1}", f"captioning.decoder.lm={lm}",
                              "captioning.generation.num_beams=1",
                              f"captioning.generation.max_new_tokens={max_new_tokens}",
                              f"trainer.default_root_dir={WORK / 'runs'}"])
    return write_untrained_stage2_checkpoint(cfg, WORK / "runs" / size / "checkpoints" / "last.ckpt")


def timed_run(checkpoint: Path, batch_movies: int, movies: int, ads: int, out: Path) -> tuple[float, int]:
    """Seconds and ADs of one recurrent decoding of the first ``ads`` ADs of ``movies`` training movies."""
    parts, cfg = load_captioner_checkpoint(checkpoint)
    if parts.data.sentence_bank is not None:
        parts.data.sentence_bank.precompute(["warm the encoder up."])  # load the encoder outside the timing
    data = load_split(cfg.data, "train")
    keep = list(data.movies)[:movies]
    data = replace(data, movies={m: data.movies[m] for m in keep},
                   items=[i for i in data.items if i.record.movie in keep and i.record.index < ads])
    shutil.rmtree(out, ignore_errors=True)
    settings = DecodeSettings(mode=ContextMode.recurrent, batch_movies=batch_movies, progress=False)
    result = decode_split(parts, cfg, data, out, settings, {"bench": True})
    return result.seconds, result.decoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--ads", type=int, default=12, help="first ADs of each movie")
    parser.add_argument("--movies", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=36)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.movies} movies x {args.ads} ADs, "
          f"greedy, max {args.max_new_tokens} new tokens")
    print("| decoder | B | ADs | seconds | ADs/s | speed-up | target 0.7·B |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        checkpoint = setup(size, args.max_new_tokens)
        timed_run(checkpoint, 1, 1, 3, WORK / "out" / "warmup")
        base = None
        for b in (1, 8):
            seconds, count = timed_run(checkpoint, b, args.movies, args.ads, WORK / "out" / f"{size}-b{b}")
            rate = count / seconds
            base = base or rate
            speedup = rate / base
            print(f"| {size} | {b} | {count} | {seconds:.1f} | {rate:.2f} | {speedup:.2f}x | "
                  f"{'met' if speedup >= 0.7 * b else 'missed'} ({0.7 * b:.1f}x) |", flush=True)


if __name__ == "__main__":
    main()
