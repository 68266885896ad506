"""``moviead ablate``: run a spec's sweep, write ``summary.json``/``summary.md`` and one plot per paper table; with
Storyboard-v2 runs also FocusedAD's recognition of the test faces by the best-query and actor banks per τ
(``recognition.json``, ``plots/focusedad_recognition_tau.png``, a section of the summary)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from pathlib import Path

from moviead.ablation.recognition import PLOT_NAME, focused_recognition, plot_recognition_sweep
from moviead.ablation.runner import AblationPaths, AblationRunner
from moviead.ablation.spec import AblationSpec, load_spec
from moviead.ablation.summary import summarise, write_summary
from moviead.atomic_files import write_text_atomically
from moviead.plots import plot_ablation_rows


def plot_tables(summary: dict, out_dir: Path) -> list[Path]:
    """``out_dir/<paper>_<table>.png`` from a ``summary.json`` payload: one figure per (paper, table), a panel per
    row; and, when the payload has FocusedAD's recognition report, ``out_dir/focusedad_recognition_tau.png``
    (accuracy against τ for the best-query and actor banks)."""
    tables: dict[tuple[str, str], list[dict]] = {}
    for row in summary["rows"]:
        tables.setdefault((row["paper"], row["table"]), []).append(row)
    world = summary.get("world") or {}
    written = []
    for (paper, table), members in tables.items():
        slug = re.sub(r"[^a-z0-9]+", "_", f"{paper}_{table}".lower()).strip("_")
        title = f"{paper} {table}: toy world {world.get('version', '?')}, seeds {summary.get('seeds')}"
        written.append(plot_ablation_rows(members, Path(out_dir) / f"{slug}.png", title))
    recognition = summary.get("recognition")
    if recognition:
        title = (f"FocusedAD recognition: toy world {world.get('version', '?')}, {recognition['faces']} test faces")
        written.append(plot_recognition_sweep(recognition, Path(out_dir) / PLOT_NAME, title))
    return written


def recognise_test_faces(spec: AblationSpec, out: Path) -> dict | None:
    """FocusedAD's recognition report on the sweep's world (:func:`focused_recognition`), also written to
    ``out/recognition.json``; None when the spec has no Storyboard-v2 run or the world's files cannot be read (said
    on stdout: the rows are still summarised)."""
    try:
        report = focused_recognition(spec, AblationPaths(out).data)
    except (OSError, ValueError, KeyError) as err:
        print(f"FocusedAD recognition not measured: {err}")
        return None
    if report is not None:
        write_text_atomically(out / "recognition.json", json.dumps(report, indent=1) + "\n")
    return report


def run_ablations(spec_path: str | Path, out: str | Path, quick: bool = False, jobs: int = 2,
                  rows: Sequence[str] = (), seeds: Sequence[int] = ()) -> int:
    """Train and evaluate every (seed, run), summarise the rows, plot them; 1 when a run failed, else 0 (a row
    that does not hold is a result, not a failure). ``quick``: the spec's quick subset; ``rows``: only the rows
    these names or ``prefix*`` patterns name (:meth:`AblationSpec.only`); ``seeds``: only these of the spec's
    seeds (:meth:`AblationSpec.with_seeds`)."""
    spec = load_spec(spec_path)
    if quick:
        spec = spec.restricted()
    if rows:
        spec = spec.only(rows)
    if seeds:
        spec = spec.with_seeds(seeds)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"ablations: {len(spec.rows)} rows, {len(spec.runs)} runs x {len(spec.seeds)} seed(s), {jobs} at a time; "
          f"logs in {out / 'logs'}")
    started = time.monotonic()
    results = AblationRunner(spec, out, jobs=jobs).run()
    minutes = (time.monotonic() - started) / 60
    rows = summarise(spec, results)
    recognition = recognise_test_faces(spec, out)
    plots = plot_tables(write_summary(spec, rows, out, minutes, recognition), out / "plots")
    print((out / "summary.md").read_text(encoding="utf-8"))
    print(f"wrote {out / 'summary.json'}, {out / 'summary.md'} and {len(plots)} plot(s) in {out / 'plots'} "
          f"({minutes:.1f} min)")
    failed = sorted(f"seed {seed} {run}" for (seed, run), result in results.items() if result.error)
    if failed:
        print(f"{len(failed)} run(s) failed: {', '.join(failed)} (their logs say why; a rerun resumes)")
    return 1 if failed else 0
