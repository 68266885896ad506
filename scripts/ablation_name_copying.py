"""Per run and seed of a `moviead ablate` sweep: what the context held and what the model did with a name it held.

For the Table 6 runs (DSM top k vs the last k items), from each run's ``eval/test-oracle`` folder: name accuracy
(its ``metrics.json``) and, from its ``predictions.jsonl`` (:func:`moviead.ablation.runner.context_metrics`),
``context_name_recall`` and ``context_place_precision`` (how often the items given held the reference's name, and
the share of context ADs from the reference's storyline), ``name_acc_in_context``, ``context_several_names`` and
``name_acc_several_names`` (the name accuracy when the items held the name, how often their ADs named two or more
characters, and the accuracy then). Values ×100, a Markdown table on stdout.

Usage::

    .venv/bin/python scripts/ablation_name_copying.py runs/ablations [--runs loco_dsm_k2,loco_recent_2] [--split test]

``--split train`` reads ``eval/train-oracle`` instead, which ``moviead evaluate --checkpoint RUN --split train
--mode oracle`` writes: the same figures on the training movies.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from moviead.ablation.runner import context_metrics
from moviead.plots import read_metrics

RUNS = ("loco_dsm_k2", "loco_recent_2", "loco_dsm_k3", "loco_recent_3", "loco_dsm_k3_similarity")
COLUMNS = ("name_acc", "context_name_recall", "context_place_precision", "name_acc_in_context",
           "context_several_names", "name_acc_several_names")


def run_figures(folder: Path) -> dict[str, float]:
    """The :data:`COLUMNS` of one ``moviead evaluate`` folder: ``name_acc`` from its ``metrics.json``, the rest from
    its ``predictions.jsonl`` (:func:`moviead.ablation.runner.context_metrics`)."""
    lines = (folder / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    figures = {"name_acc": read_metrics(folder / "metrics.json")["name_acc"],
               **context_metrics([json.loads(line) for line in lines if line.strip()])}
    return {name: figures[name] for name in COLUMNS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweep", type=Path, help="a `moviead ablate --out` folder")
    parser.add_argument("--runs", default=",".join(RUNS), help="comma-separated run names")
    parser.add_argument("--split", default="test", choices=("test", "val", "train"))
    args = parser.parse_args()
    seeds = sorted(p for p in args.sweep.glob("seed*") if p.is_dir())
    if not seeds:
        parser.error(f"{args.sweep} holds no seed* folder: give the --out folder of `moviead ablate`")
    print("| run | seed | " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    for run in args.runs.split(","):
        for seed in seeds:
            folder = seed / run / "eval" / f"{args.split}-oracle"
            cells = ([f"{100 * value:.1f}" for value in run_figures(folder).values()]
                     if (folder / "predictions.jsonl").is_file() else ["–"] * len(COLUMNS))
            print(f"| {run} | {seed.name.removeprefix('seed')} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
