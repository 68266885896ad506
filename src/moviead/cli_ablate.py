"""``moviead ablate``: the papers' ablation rows on the toy world, by seed, with whether each holds.

Registered by :func:`moviead.cli.build_parser`; the sweep's imports stay inside the command function.
"""

from __future__ import annotations

import argparse

DEFAULT_SPEC = "configs/ablations/toy.yaml"


def cmd_ablate(args: argparse.Namespace) -> int:
    from moviead.ablation.command import run_ablations

    rows = [r.strip() for r in (args.rows or "").split(",") if r.strip()]
    seeds = [int(s) for s in (args.seeds or "").split(",") if s.strip()]
    return run_ablations(args.spec, args.out, quick=args.quick, jobs=args.jobs, rows=rows, seeds=seeds)


def add_ablate_command(sub: argparse._SubParsersAction) -> None:
    """Register ``ablate`` on the ``moviead`` sub-command parser."""
    ablate = sub.add_parser(
        "ablate", help="train and evaluate the ablation rows of a spec by seed; write summary.json/.md and plots",
        description="Each (seed, run) is a `moviead train` (+ `moviead evaluate` on the test split) subprocess; "
                    "finished runs are kept, so a rerun resumes. A row holds when every seed shows the paper's sign.")
    ablate.add_argument("spec", nargs="?", default=DEFAULT_SPEC, help=f"ablation spec (default {DEFAULT_SPEC})")
    ablate.add_argument("--out", default="runs/ablations", help="output folder (default runs/ablations)")
    ablate.add_argument("--quick", action="store_true", help="the spec's quick subset: one seed, its quick rows")
    ablate.add_argument("--rows", help="only these rows, comma-separated names or prefix* patterns (e.g. "
                        "'focused_*': FocusedAD Table 1), with the runs they need; finished runs are kept")
    ablate.add_argument("--seeds", help="only these of the spec's seeds, comma-separated (e.g. 0); a later run "
                        "with more seeds reuses them")
    ablate.add_argument("--jobs", type=int, default=2, help="runs trained at a time (default 2; CPU threads are "
                        "shared between them)")
    ablate.set_defaults(func=cmd_ablate)
