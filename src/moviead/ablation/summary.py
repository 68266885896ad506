"""Rows of an ablation sweep: per seed, the two sides' values; over seeds, means, ranges and whether the row holds.

A row *holds* when every seed has both results and, paired by seed, each shows the paper's sign (``better`` above
``worse``, or below with ``lower_is_better``); a tie is not the paper's sign. Missing results (a failed run, a
metric the run did not produce) make the row ``holds: null`` with the reason, never a pass.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from moviead.ablation.spec import STAGE1_PREFIX, AblationSpec, RowSpec, RunResult, Side
from moviead.atomic_files import write_text_atomically


@dataclass(frozen=True)
class SideSummary:
    run: str
    mode: str
    values: dict[int, float]  # seed -> value
    mean: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class RowSummary:
    name: str
    paper: str
    table: str
    row: str
    metric: str
    direction: str
    lower_is_better: bool
    better: SideSummary
    worse: SideSummary
    seeds_holding: int
    seeds: int
    holds: bool | None
    missing: str | None


def _value(results: dict[tuple[int, str], RunResult], seed: int, side: Side, metric: str) -> float | str:
    """The value of ``metric`` for one side in one seed, or a string saying why there is none."""
    result = results.get((seed, side.run))
    if result is None:
        return f"seed {seed} {side.run}: not run"
    if result.error:
        return f"seed {seed} {side.run}: {result.error}"
    mode = "-" if metric.startswith(STAGE1_PREFIX) else side.mode
    value = result.metrics.get(mode, {}).get(metric)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"seed {seed} {side.run}/{mode}: no {metric}"
    return float(value)


def _side(run: str, mode: str, values: dict[int, float]) -> SideSummary:
    numbers = list(values.values())
    if not numbers:
        return SideSummary(run, mode, values, None, None, None)
    return SideSummary(run, mode, values, sum(numbers) / len(numbers), min(numbers), max(numbers))


def summarise_row(row: RowSpec, seeds: tuple[int, ...], results: dict[tuple[int, str], RunResult]) -> RowSummary:
    """One row over ``seeds``: see the module docstring for ``holds``."""
    better: dict[int, float] = {}
    worse: dict[int, float] = {}
    missing: list[str] = []
    for seed in seeds:
        for side, store in ((row.better, better), (row.worse, worse)):
            value = _value(results, seed, side, row.metric)
            if isinstance(value, str):
                missing.append(value)
            else:
                store[seed] = value
    paired = [s for s in seeds if s in better and s in worse]
    sign = -1.0 if row.lower_is_better else 1.0
    holding = sum(sign * (better[s] - worse[s]) > 0 for s in paired)
    holds = None if missing else holding == len(seeds)
    return RowSummary(row.name, row.paper, row.table, row.row, row.metric, row.direction,
                      row.lower_is_better, _side(row.better.run, row.better.mode, better), _side(row.worse.run, row.worse.mode, worse),
                      holding, len(seeds), holds, "; ".join(missing) or None)


def summarise(spec: AblationSpec, results: dict[tuple[int, str], RunResult]) -> list[RowSummary]:
    """Every row of ``spec``, in the spec's order."""
    return [summarise_row(row, spec.seeds, results) for row in spec.rows.values()]


def _fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "—"
    scale = 1.0 if metric.startswith(STAGE1_PREFIX) else 100.0  # evaluator metrics are fractions; Stage-I R@k is %
    return f"{value * scale:.2f}"


def format_markdown(spec: AblationSpec, rows: list[RowSummary], minutes: float | None = None,
                    recognition: dict | None = None) -> str:
    """The summary table (values ×100 except Stage-I recall, already in %), then the rows that do not hold, then
    (with ``recognition``, :mod:`moviead.ablation.recognition`) FocusedAD's recognition accuracy per bank."""
    lines = [f"# Ablations on toy world {spec.world.version} ({spec.world.movies} movies, data seed {spec.world.seed})",
             "", f"Spec: `{spec.source}`; seeds {list(spec.seeds)}"
             + (f"; {minutes:.1f} min" if minutes is not None else "") + ".",
             "Stage-II metrics on the test split (checkpoints selected on val); Stage-I metrics on val after the last "
             "epoch. `holds`: paired by seed, every seed shows the paper's sign.", "",
             "| paper | table | row | metric | better: mean [min, max] | worse: mean [min, max] | seeds | holds |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        def side(s: SideSummary) -> str:
            label = s.run if r.metric.startswith(STAGE1_PREFIX) else f"{s.run}/{s.mode}"  # Stage-I: no decoding mode
            return f"{label}: {_fmt(s.mean, r.metric)} [{_fmt(s.low, r.metric)}, {_fmt(s.high, r.metric)}]"
        holds = "n/a" if r.holds is None else ("yes" if r.holds else "**no**")
        arrow = " (lower is better)" if r.lower_is_better else ""
        lines.append(f"| {r.paper} | {r.table} | {r.row} | {r.metric}{arrow} | {side(r.better)} | {side(r.worse)} "
                     f"| {r.seeds_holding}/{r.seeds} | {holds} |")
    failing = [r for r in rows if r.holds is not True]
    lines.append("")
    if failing:
        lines.append("Rows that do not hold (reported as measured; nothing was tuned to change them):")
        lines.extend(f"- {r.name}: {r.missing or f'{r.seeds_holding} of {r.seeds} seeds show the sign'}"
                     for r in failing)
    else:
        lines.append("Every row holds.")
    if recognition is not None:
        from moviead.ablation.recognition import PLOT_NAME, recognition_markdown

        lines += ["", recognition_markdown(recognition, f"plots/{PLOT_NAME}").rstrip("\n")]
    return "\n".join(lines) + "\n"


def write_summary(spec: AblationSpec, rows: list[RowSummary], out: Path, minutes: float | None = None,
                  recognition: dict | None = None) -> dict:
    """``out/summary.json`` (every value per seed, and ``recognition`` when given) and ``out/summary.md``, each
    written atomically; returns the JSON payload (what ``moviead plot`` reads back from ``summary.json``)."""
    payload = {"spec": spec.source, "world": asdict(spec.world), "seeds": list(spec.seeds), "minutes": minutes,
               "rows": [asdict(r) for r in rows]}
    if recognition is not None:
        payload["recognition"] = recognition
    write_text_atomically(out / "summary.json", json.dumps(payload, indent=1) + "\n")
    write_text_atomically(out / "summary.md", format_markdown(spec, rows, minutes, recognition))
    return payload
