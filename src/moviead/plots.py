"""Figures: runs compared metric by metric (grouped bars), and the DSM's selection scores as a heatmap.

Metrics come from a run's ``metrics.json`` (the evaluator's flat ``{name: number}`` object, with optional string
entries such as ``mode`` and ``checkpoint``) or from the CSV logger's ``metrics.csv`` (the last value of each
``val/`` column). DSM scores come from a ``.npy`` array (N, P) (NaN marks padding) or from a validation-samples
JSONL (``val_samples/epoch-NNN.jsonl``, one row per AD with its ``dsm_scores`` over the proposal, oldest first).
Rendering uses matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

STRING_KEYS = ("mode", "checkpoint", "split", "data", "features", "movie")  # run identity in `moviead evaluate`'s file
INFO_KEYS = ("num_ads", "unavailable")  # counts and reasons, not scores
HASH_SUFFIX = "_sha256"  # content hashes of the evaluated checkpoint, data and config (null when absent)


def read_metrics(path: str | Path) -> dict[str, float]:
    """The numeric metrics of a run folder, a ``metrics.json`` or a ``metrics.csv``.

    A folder is read through its ``metrics.json`` when it has one, else its ``metrics.csv``.

    Raises:
        FileNotFoundError: the path does not exist, or a folder holds neither file.
        ValueError: a JSON that is not a flat object of numbers (plus string ``mode``/``checkpoint``), a CSV with
            no ``val/`` column, or a file of another kind.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist (expected a run folder, a metrics.json or a metrics.csv)")
    if path.is_dir():
        for name in ("metrics.json", "metrics.csv"):
            if (path / name).is_file():
                return read_metrics(path / name)
        raise FileNotFoundError(f"{path} holds neither metrics.json (from evaluation) nor metrics.csv (from training)")
    if path.suffix == ".json":
        return _read_metrics_json(path)
    if path.suffix == ".csv":
        return _read_metrics_csv(path)
    raise ValueError(f"{path}: expected a .json or .csv metrics file")


def _read_metrics_json(path: Path) -> dict[str, float]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object {{metric: number}}, got {type(data).__name__}")
    metrics: dict[str, float] = {}
    for key, value in data.items():
        if (key in STRING_KEYS and isinstance(value, str)) or key in INFO_KEYS or key.endswith(HASH_SUFFIX):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{path}: metric {key!r} is {value!r}, not a number")
        metrics[key] = float(value)
    return metrics


def _read_metrics_csv(path: Path) -> dict[str, float]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    columns = [c for c in (rows[0].keys() if rows else []) if c.startswith("val/")]
    if not columns:
        raise ValueError(f"{path}: no val/ column (is it the CSV logger's metrics.csv of a run with validation?)")
    metrics: dict[str, float] = {}
    for column in columns:
        values = [row[column] for row in rows if row.get(column) not in (None, "")]
        if values:
            metrics[column] = float(values[-1])
    return metrics


def run_label(path: str | Path, parts: int = 1) -> str:
    """A short name for a run: the last ``parts`` names of its folder (the folder of a metrics file)."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    names = [n for n in folder.parts if n not in ("/", ".")][-parts:]
    return "/".join(names) or path.stem


def run_labels(paths: Sequence[str | Path]) -> list[str]:
    """Distinct short names for several runs: as many trailing folder names as it takes to tell them apart."""
    longest = max((len(Path(p).parts) for p in paths), default=1)
    for parts in range(1, longest + 1):
        labels = [run_label(p, parts) for p in paths]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]


def plot_metric_comparison(
    runs: Mapping[str, Mapping[str, float]], out: str | Path, metrics: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Grouped bars: one panel per metric (its own y scale: CIDEr ~1 and R@10 ~60 side by side stay readable), one
    bar per run in the same colour in every panel, the value printed on it; a run without the metric has no bar.

    Args:
        runs: run label → {metric: value}.
        out: the PNG to write (at most 4 panels a row, 3.2 x 2.6 inches each, 120 dpi).
        metrics: which metrics, in order; default every metric of any run, sorted.
    """
    if not runs:
        raise ValueError("no runs to compare")
    have = sorted({m for values in runs.values() for m in values})
    names = list(metrics) if metrics else have
    unknown = [m for m in names if m not in have]
    if unknown:
        raise ValueError(f"metrics {unknown} are in none of the runs; they have {have}")
    plt = _pyplot()
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    legend_rows = math.ceil(len(runs) / 3)
    height = 2.6 * rows + 0.5 + 0.2 * legend_rows
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, height), squeeze=False)
    colours = [plt.get_cmap("tab10")(i % 10) for i in range(len(runs))]
    x = np.arange(len(runs))
    for ax, name in zip(axes.flat, names):
        heights = np.array([values.get(name, math.nan) for values in runs.values()], dtype=float)
        bars = ax.bar(x, np.nan_to_num(heights), 0.7, color=colours)
        for bar, value in zip(bars, heights):
            if not math.isnan(value):
                ax.annotate(f"{value:.3g}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                            va="bottom", fontsize=7, xytext=(0, 1), textcoords="offset points")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.margins(y=0.15)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour) for colour in colours]
    fig.legend(handles, list(runs), loc="lower center", ncol=min(len(runs), 3), fontsize=8, frameon=False)
    fig.suptitle(title or f"{len(runs)} run(s), {len(names)} metric(s)", fontsize=10)
    fig.tight_layout(rect=(0, (0.15 + 0.2 * legend_rows) / height, 1, 1))
    return _save(fig, out, layout=False)


def read_dsm_scores(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """(N, P) selection scores (NaN where a row's proposal is shorter) and N row labels.

    Raises:
        FileNotFoundError: no such file.
        ValueError: an array that is not 2-D, a JSONL without ``dsm_scores`` rows, another file kind.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (expected a .npy (N, P) array or a val_samples .jsonl)")
    if path.suffix == ".npy":
        scores = np.load(path, allow_pickle=False).astype(float)
        if scores.ndim != 2:
            raise ValueError(f"{path}: expected a 2-D (samples, proposal items) array, got shape {scores.shape}")
        return scores, [str(i) for i in range(len(scores))]
    if path.suffix != ".jsonl":
        raise ValueError(f"{path}: expected .npy or .jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not any(row.get("dsm_scores") for row in rows):
        raise ValueError(f"{path}: no row has dsm_scores (written by Stage-II validation when the DSM is on)")
    return dsm_score_matrix(rows)


def dsm_score_matrix(samples: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, list[str]]:
    """(N, P) selection scores (NaN where a row's proposal is shorter) and N ``movie#index`` labels of the validation
    samples (as Stage-II validation writes them) that have ``dsm_scores``; N may be 0."""
    rows = [row for row in samples if row.get("dsm_scores")]
    width = max([0] + [len(row["dsm_scores"]) for row in rows])
    scores = np.full((len(rows), width), np.nan)
    for i, row in enumerate(rows):
        scores[i, : len(row["dsm_scores"])] = row["dsm_scores"]
    labels = [f"{row.get('movie', '?')}#{row.get('index', i)}" for i, row in enumerate(rows)]
    return scores, labels


def plot_dsm_heatmap(
    scores: np.ndarray, out: str | Path, row_labels: Sequence[str] | None = None, title: str | None = None,
    max_rows: int = 64,
) -> Path:
    """Heatmap of (N, P) DSM scores: rows are ADs, columns proposal items oldest → newest; NaN (padding) blank.

    Only the first ``max_rows`` rows are drawn.
    """
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.size == 0:
        raise ValueError(f"expected a non-empty (N, P) score array, got shape {scores.shape}")
    scores = scores[:max_rows]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * scores.shape[1] + 2.5), max(3.0, 0.22 * scores.shape[0] + 1.5)))
    image = ax.imshow(np.ma.masked_invalid(scores), aspect="auto", cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="selection score")
    ax.set_xlabel("proposal item (oldest → newest)")
    ax.set_ylabel("AD")
    if row_labels is not None and len(scores) <= 40:
        ax.set_yticks(range(len(scores)), list(row_labels)[: len(scores)], fontsize=6)
    ax.set_title(title or "DSM selection scores")
    return _save(fig, out)


def plot_ablation_rows(rows: Sequence[Mapping], out: str | Path, title: str) -> Path:
    """One panel per ablation row: the mean of its two sides as bars, the seed range as error bars, each seed a dot;
    the panel title says whether the row holds.

    Args:
        rows: rows of ``summary.json`` (``moviead ablate``): each with ``row``, ``metric``, ``holds``,
            ``seeds_holding``, ``seeds`` and ``better``/``worse`` sides holding ``run``, ``mode``, ``values``
            (seed → value), ``mean``, ``low`` and ``high``.
        out: the PNG to write (at most 3 panels a row).
    """
    if not rows:
        raise ValueError("no ablation rows to plot")
    plt = _pyplot()
    cols = min(3, len(rows))
    lines = math.ceil(len(rows) / cols)
    fig, axes = plt.subplots(lines, cols, figsize=(4.0 * cols, 3.0 * lines), squeeze=False)
    for ax, row in zip(axes.flat, rows):
        sides = [row["better"], row["worse"]]
        means = [math.nan if s["mean"] is None else s["mean"] for s in sides]
        low = [0.0 if s["mean"] is None else s["mean"] - s["low"] for s in sides]
        high = [0.0 if s["mean"] is None else s["high"] - s["mean"] for s in sides]
        ax.bar([0, 1], np.nan_to_num(means), 0.6, yerr=[low, high], capsize=4, color=["tab:green", "tab:gray"])
        for x, side in enumerate(sides):
            values = list(side["values"].values())
            ax.scatter([x] * len(values), values, color="black", s=10, zorder=3)
        ax.set_xticks([0, 1], [f"{s['run']}\n{s['mode']}" for s in sides], fontsize=7)
        verdict = {True: "holds", False: "does not hold", None: "incomplete"}[row["holds"]]
        ax.set_title(f"{row['row']}\n{row['metric']}: {verdict} ({row['seeds_holding']}/{row['seeds']})", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(rows):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    return _save(fig, out)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: str | Path, layout: bool = True) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if layout:
        fig.tight_layout()
    fig.savefig(out, dpi=120)
    _pyplot().close(fig)
    return out
