"""``moviead ablate``: run a spec's sweep, write ``summary.json``/``summary.md`` and one plot per paper table."""

from __future__ import annotations

import re
import time
from pathlib import Path

from moviead.ablation.runner import AblationRunner
from moviead.ablation.spec import load_spec
from moviead.ablation.summary import summarise, write_summary
from moviead.plots import plot_ablation_rows


def plot_tables(summary: dict, out_dir: Path) -> list[Path]:
    """``out_dir/<paper>_<table>.png`` from a ``summary.json`` payload: one figure per (paper, table), a panel per
    row."""
    tables: dict[tuple[str, str], list[dict]] = {}
    for row in summary["rows"]:
        tables.setdefault((row["paper"], row["table"]), []).append(row)
    world = summary.get("world") or {}
    written = []
    for (paper, table), members in tables.items():
        slug = re.sub(r"[^a-z0-9]+", "_", f"{paper}_{table}".lower()).strip("_")
        title = f"{paper} {table}: toy world {world.get('version', '?')}, seeds {summary.get('seeds')}"
        written.append(plot_ablation_rows(members, Path(out_dir) / f"{slug}.png", title))
    return written


def run_ablations(spec_path: str | Path, out: str | Path, quick: bool = False, jobs: int = 2) -> int:
    """Train and evaluate every (seed, run), summarise the rows, plot them; 1 when a run failed, else 0 (a row
    that does not hold is a result, not a failure)."""
    spec = load_spec(spec_path)
    if quick:
        spec = spec.restricted()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"ablations: {len(spec.rows)} rows, {len(spec.runs)} runs x {len(spec.seeds)} seed(s), {jobs} at a time; "
          f"logs in {out / 'logs'}")
    started = time.monotonic()
    results = AblationRunner(spec, out, jobs=jobs).run()
    minutes = (time.monotonic() - started) / 60
    rows = summarise(spec, results)
    plots = plot_tables(write_summary(spec, rows, out, minutes), out / "plots")
    print((out / "summary.md").read_text(encoding="utf-8"))
    print(f"wrote {out / 'summary.json'}, {out / 'summary.md'} and {len(plots)} plot(s) in {out / 'plots'} "
          f"({minutes:.1f} min)")
    failed = sorted(f"seed {seed} {run}" for (seed, run), result in results.items() if result.error)
    if failed:
        print(f"{len(failed)} run(s) failed: {', '.join(failed)} (their logs say why; a rerun resumes)")
    return 1 if failed else 0
