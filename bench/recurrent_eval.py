"""Benchmark: recurrent vs oracle evaluation throughput (ADs/s) at the same batch size, and B = 8 vs B = 1.

The whole ``moviead evaluate`` loop (:func:`moviead.evaluation.decode.decode_split`), timed from outside: frames read
from the h5 file, DSM proposals (ground-truth ADs in *oracle* mode; the model's own earlier predictions in
*recurrent* mode), their MiniLM sentence features (oracle: every proposal text encoded up front, in batches;
recurrent: the subtitles up front, each new AD as it is generated), greedy decoding with the KV cache, rows streamed
to ``predictions.jsonl``. Data: a 16-movie toy data set, the first ``--ads`` ADs (0: all) of its first ``--movies``
training movies (its training split has 11, of 30–48 ADs: more than B = 8, so the batches stay full). Models:
untrained Stage-II captioners (random weights: only the shape matters for speed, and an untrained model rarely
stops early, so every AD costs about ``max_new_tokens`` decoding steps) around the toy tiny PME and

- *tiny*: the toy decoder (OPT, hidden 128, 2 layers, 4 heads);
- *opt125m*: OPT-125m's body (hidden 768, 12 layers, 12 heads, FFN 3,072) with the toy tokenizer's 1,030-token
  vocabulary (the real 50,272-token head would add about a third to each step's compute).

Every timed run loads the checkpoint afresh (an empty sentence-feature bank and frozen-PME cache; the encoder is
loaded outside the timing) and writes to a fresh folder; one untimed run warms up first. Each round runs every
(B, mode) pair once, the modes alternating in order from round to round; wall time (``perf_counter``) and the
process's CPU time (``process_time``, which other workers' load does not stretch) are both reported, as medians
over the rounds. Targets: recurrent ≥ 0.9 × oracle ADs/s at the same B (issue "Performance", item 2); recurrent
B = 8 ≥ 0.7 · 8 × B = 1 (issue #5). ``--profile`` adds a table of where each mode's time goes
(:mod:`bench.recurrent_profile`); ``--control`` adds a third mode, recurrent decoding with each AD's ground truth
fed back as its context (:func:`ground_truth_fed_back`); ``--checkpoint`` times a trained checkpoint instead.

    .venv/bin/python bench/recurrent_eval.py [--sizes tiny opt125m] [--ads 6] [--movies 16] [--batches 1 8]
        [--rounds 2] [--max-new-tokens 36] [--beams 1] [--threads 1] [--profile] [--control]
        [--checkpoint runs/demo/toy_stage2_loco_mad/checkpoints/best.ckpt --split train] [--schedule fifo]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import yaml  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / ".work" / "recurrent_eval"
sys.path.insert(0, str(REPO))

from bench.recurrent_profile import StageTimers  # noqa: E402
from moviead.config import ContextMode, load_config  # noqa: E402
from moviead.data.context import PredictionContext  # noqa: E402
from moviead.data.sources import load_split  # noqa: E402
from moviead.evaluation.decode import DecodeSettings, decode_split  # noqa: E402
from moviead.evaluation.schedule import RecurrentPolicy  # noqa: E402
from moviead.recipes.checkpoint import load_captioner_checkpoint  # noqa: E402
from moviead.toy.decoders import write_tiny_causal_lm  # noqa: E402
from moviead.toy.generator import write_toy_dataset  # noqa: E402
from tests.stages._stage2 import write_tiny_stage1_export, write_untrained_stage2_checkpoint  # noqa: E402

CONFIGS = REPO / "configs"
SIZES = {"tiny": None, "opt125m": dict(hidden_size=768, num_layers=12, num_heads=12)}
RECURRENT, ORACLE, FED_BACK = "recurrent", "oracle", "recurrent, GT fed back"


@contextmanager
def ground_truth_fed_back() -> Iterator[None]:
    """Recurrent decoding whose context gets each AD's ground truth instead of its prediction: the recurrent machinery
    (one AD per movie in flight, features encoded as ADs are decoded) with the oracle's prompts, a control that
    separates the cost of the schedule from that of the model's own (here: long, untrained) outputs."""
    original = PredictionContext.set_prediction

    def set_ground_truth(self: PredictionContext, movie: str, index: int, text: str) -> None:
        original(self, movie, index, self.movies[movie].ads[index].text)

    PredictionContext.set_prediction = set_ground_truth  # type: ignore[method-assign]
    try:
        yield
    finally:
        PredictionContext.set_prediction = original  # type: ignore[method-assign]


def setup(size: str, max_new_tokens: int, beams: int) -> Path:
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
                              f"captioning.generation.num_beams={beams}",
                              f"captioning.generation.max_new_tokens={max_new_tokens}",
                              f"trainer.default_root_dir={WORK / 'runs'}"])
    return write_untrained_stage2_checkpoint(cfg, WORK / "runs" / f"{size}-beam{beams}" / "checkpoints" / "last.ckpt")


@dataclass
class Timing:
    """One timed decoding: ADs decoded, wall seconds, CPU seconds of this process."""

    ads: int
    wall: float
    cpu: float
    bound: float = 1.0  # the dependency's bound on recurrent/oracle: oracle batches / fewest recurrent steps


def timed_run(checkpoint: Path, mode: str, batch: int, movies: int, ads: int, out: Path,
              timers: StageTimers | None = None, schedule: RecurrentPolicy = "longest_first",
              split: str = "train", overrides: Sequence[str] = ()) -> Timing:
    """Decode the first ``ads`` ADs of ``movies`` training movies in ``mode``, ``batch`` ADs (oracle) or movies
    (recurrent) per batch, timed around the whole :func:`decode_split` call."""
    parts, cfg = load_captioner_checkpoint(checkpoint)
    for key, _, value in (item.partition("=") for item in overrides):
        OmegaConf.update(cfg, key, yaml.safe_load(value))
    if parts.data.sentence_bank is not None:
        parts.data.sentence_bank.precompute(["warm the encoder up."])  # load the encoder outside the timing
    data = load_split(cfg.data, split)
    keep = list(data.movies)[:movies]
    data = replace(data, movies={m: data.movies[m] for m in keep},
                   items=[i for i in data.items if i.record.movie in keep and (ads <= 0 or i.record.index < ads)])
    shutil.rmtree(out, ignore_errors=True)
    context = ContextMode.oracle if mode == ORACLE else ContextMode.recurrent
    settings = DecodeSettings(mode=context, batch_size=batch, batch_movies=batch, progress=False, schedule=schedule)
    if timers is not None:
        timers.start()
    with ground_truth_fed_back() if mode == FED_BACK else contextlib.nullcontext():
        wall, cpu = time.perf_counter(), time.process_time()
        result = decode_split(parts, cfg, data, out, settings, {"bench": True})
        timing = Timing(result.decoded, time.perf_counter() - wall, time.process_time() - cpu,
                        dependency_bound([i.record.movie for i in data.items], batch))
    if timers is not None:
        timers.stop()
    return timing


def dependency_bound(movies: Sequence[str], batch: int) -> float:
    """How close to the oracle recurrent decoding can come at batch ``batch`` if every step cost the same: the
    oracle's ⌈N / B⌉ batches over recurrent's fewest steps, max(⌈N / B⌉, ADs of the longest movie) (one AD per
    movie in flight). ``movies``: the movie of each decoded AD."""
    batches = math.ceil(len(movies) / batch)
    return batches / max(batches, max(Counter(movies).values(), default=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--ads", type=int, default=6, help="first ADs of each movie (0: all)")
    parser.add_argument("--movies", type=int, default=16)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="batch sizes B (first is the base)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=36)
    parser.add_argument("--beams", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--profile", action="store_true", help="also time the stages of each mode")
    parser.add_argument("--control", action="store_true", help=f"also time {FED_BACK!r}")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="time this Stage-II checkpoint (its own beams and data) instead of the --sizes")
    parser.add_argument("--split", default="train", help="the split decoded")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides of a --checkpoint (e.g. data.mad.val_split=null)")
    parser.add_argument("--schedule", default="longest_first", choices=["longest_first", "fifo"],
                        help="recurrent schedule policy")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.movies} movies x {args.ads} ADs, "
          f"beams {'of the checkpoint' if args.checkpoint else args.beams}, max {args.max_new_tokens} new tokens, "
          f"{args.rounds} rounds; "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    sizes = {"checkpoint": args.checkpoint} if args.checkpoint else {size: None for size in args.sizes}
    for size, given in sizes.items():
        checkpoint = given or setup(size, args.max_new_tokens, args.beams)
        timed_run(checkpoint, RECURRENT, 1, 1, 3, WORK / "out" / "warmup", split=args.split,
                  overrides=args.set)
        modes = (RECURRENT, ORACLE, FED_BACK) if args.control else (RECURRENT, ORACLE)
        runs: dict[tuple[int, str], list[Timing]] = {}
        timers = {mode: StageTimers() for mode in modes} if args.profile else {}
        for r in range(args.rounds):
            for b in args.batches:
                order = modes if (r + args.batches.index(b)) % 2 == 0 else modes[::-1]
                for mode in order:
                    folder = WORK / "out" / f"{size}-{mode.split(',')[0]}{'-gt' if mode == FED_BACK else ''}-b{b}"
                    t = timed_run(checkpoint, mode, b, args.movies, args.ads, folder,
                                  timers.get(mode) if b == max(args.batches) else None, args.schedule, args.split,
                                  args.set)
                    runs.setdefault((b, mode), []).append(t)
                    print(f"  round {r + 1}: {size} B={b} {mode}: {t.ads} ADs, {t.wall:.2f} s wall, "
                          f"{t.cpu:.2f} s CPU, load {os.getloadavg()[0]:.1f}", flush=True)
        report(size, args.batches, modes, runs)
        for mode, stage in timers.items():
            print(f"\nwhere the time goes, {size}, B={max(args.batches)}, {mode} (sum over rounds):")
            print(stage.table())


def report(size: str, batches: list[int], modes: tuple[str, ...], runs: dict[tuple[int, str], list[Timing]]) -> None:
    """The side-by-side table (medians over rounds) and the B = last / B = first ratios."""
    def rate(b: int, mode: str, clock: str) -> tuple[int, float, float]:
        ts = runs[(b, mode)]
        seconds = statistics.median(getattr(t, clock) for t in ts)
        return ts[0].ads, seconds, ts[0].ads / seconds

    print("\n| decoder | B | mode | ADs | wall s | ADs/s (wall) | CPU s | ADs/s (CPU) | recurrent/oracle (wall, CPU) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for b in batches:
        for mode in modes:
            ads, wall, wall_rate = rate(b, mode, "wall")
            _, cpu, cpu_rate = rate(b, mode, "cpu")
            ratio = ""
            if mode != ORACLE:
                oracle_wall, oracle_cpu = rate(b, ORACLE, "wall")[2], rate(b, ORACLE, "cpu")[2]
                ratio = f"{wall_rate / oracle_wall:.2f}×, **{cpu_rate / oracle_cpu:.2f}×**"
                ratio += f" (the dependency's bound: {runs[(b, mode)][0].bound:.2f}×)" if mode == RECURRENT else ""
            print(f"| {size} | {b} | {mode} | {ads} | {wall:.2f} | {wall_rate:.2f} | {cpu:.2f} | "
                  f"{cpu_rate:.2f} | {ratio} |")
    if len(batches) > 1:
        lo, hi = batches[0], batches[-1]
        for mode in modes:
            speedup = rate(hi, mode, "wall")[2] / rate(lo, mode, "wall")[2]
            cpu_speedup = rate(hi, mode, "cpu")[2] / rate(lo, mode, "cpu")[2]
            print(f"{size} {mode}: B={hi} / B={lo} = {speedup:.2f}× wall, {cpu_speedup:.2f}× CPU "
                  f"(target ≥ {0.7 * hi / lo:.1f}×)")
    print(flush=True)


if __name__ == "__main__":
    main()
