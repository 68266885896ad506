"""FocusedAD's character recognition in an ablation sweep: the best-query bank against the actor bank, per τ.

FocusedAD Table 1 compares the best-query bank (eqs. 1-3, row C2) with an actor bank (row B2) through the captions;
Fig. 7 sweeps the L2 threshold τ. On the toy world the recognition itself can be scored directly, since each
detection carries its face embedding and its true name: :func:`recognition_report` recognises every face of the
**test records** (the Storyboard-v2 split the FocusedAD runs are evaluated on) with each bank at each τ, as
``moviead sweep-recognition`` does, and :func:`plot_recognition_sweep` draws accuracy against τ for both banks.
``moviead ablate`` writes the report to ``recognition.json``, the figure to ``plots/focusedad_recognition_tau.png``
and both into the summary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from moviead.ablation.spec import AblationSpec
from moviead.config import load_config
from moviead.data.formats.storyboard import read_best_query_bank, read_storyboard_json
from moviead.data.val_split import storyboard_splits
from moviead.focused.face_sets import OTHER, FaceSet, make_face_set
from moviead.focused.recognition import sweep_thresholds

THRESHOLDS = tuple(round(0.7 + 0.05 * i, 2) for i in range(19))  # τ from 0.7 to 1.6
BANKS = {"best_query": "best-query bank (eqs. 1-3, C2)", "actor_query": "actor bank (B2)"}
PLOT_NAME = "focusedad_recognition_tau.png"


def faces_of_test_records(records_path: Path, val_fraction: float, bank: Mapping[str, Mapping[str, Any]]) -> FaceSet:
    """The faces of the test split's records: embeddings (N, D), labels (the true name, ``other`` when it is none of
    the movie's bank characters), movies and detector confidences.

    Raises:
        ValueError: no test record has a detection with an embedding and a ground-truth name.
    """
    records = read_storyboard_json(records_path)
    test = set(storyboard_splits((r.movie_id for r in records), val_fraction)["test"])
    rows = [(box.embedding, box.reference if box.reference in bank.get(r.movie_id, {}) else OTHER, r.movie_id,
             box.confidence)
            for r in records if r.movie_id in test for box in r.detections if box.embedding is not None]
    if not rows:
        raise ValueError(f"{records_path}: no test record has a face embedding to recognise")
    embeddings, labels, movies, confidences = zip(*rows)
    return make_face_set(np.asarray(embeddings), labels, movies, confidences)


def recognition_report(storyboard_root: Path, annotations: str = "storyboard_v2.json", val_fraction: float = 0.17,
                       tau: float = 1.3, min_confidence: float = 0.7,
                       thresholds: Sequence[float] = THRESHOLDS) -> dict[str, Any]:
    """Recognition accuracy of the test records' faces with each bank of :data:`BANKS` at ``tau`` and per threshold.

    Returns:
        ``{"tau", "min_confidence", "test_movies", "faces", "banks": {bank: {"label", "accuracy", "sweep":
        [[τ, accuracy], ...]}}}``, accuracies as fractions of the faces with confidence >= ``min_confidence``.
    """
    banks = {name: read_best_query_bank(storyboard_root / name) for name in BANKS}
    faces = faces_of_test_records(storyboard_root / annotations, val_fraction, banks["best_query"])
    grid = sorted({float(t) for t in thresholds} | {float(tau)})
    report: dict[str, Any] = {"tau": tau, "min_confidence": min_confidence,
                              "test_movies": sorted(set(faces.movies.tolist())),
                              "faces": int((faces.confidences >= min_confidence).sum()), "banks": {}}
    for name, bank in banks.items():
        points = sweep_thresholds(faces, bank, grid, min_confidence)
        at_tau = next(p.accuracy for p in points if p.threshold == float(tau))
        report["banks"][name] = {"label": BANKS[name], "accuracy": at_tau,
                                 "sweep": [[p.threshold, p.accuracy] for p in points]}
    return report


def focused_recognition(spec: AblationSpec, data_root: Path) -> dict[str, Any] | None:
    """:func:`recognition_report` on the world's Storyboard-v2 part (``data_root/storyboard``) with the settings of
    the spec's first Storyboard-v2 run (split fraction, τ, confidence); None when the spec has no such run."""
    runs = [run for run in spec.runs.values() if run.data == "storyboard"]
    if not runs:
        return None
    cfg = load_config(runs[0].files, spec.overrides_of(runs[0]))
    focused = cfg.captioning.focused
    return recognition_report(data_root / "storyboard", str(cfg.data.storyboard.annotations),
                              float(cfg.data.storyboard.val_fraction), float(focused.threshold),
                              float(focused.min_confidence))


def recognition_markdown(report: Mapping[str, Any], plot: str | None = None) -> str:
    """The summary's section: accuracy at τ per bank, the best τ of each, and the plot's link."""
    about = (f"{report['faces']} faces of the test movies {', '.join(report['test_movies'])} with detector "
             f"confidence >= {report['min_confidence']:g}, recognised from their embeddings (nearest query, L2 "
             "distance < τ; else `other`); a face is right when the name (or `other`) is its true one.")
    lines = ["## FocusedAD: character recognition on the test records", "", about, "",
             f"| bank | accuracy at τ = {report['tau']:g} | best τ (accuracy) |", "|---|---|---|"]
    for bank in report["banks"].values():
        best_tau, best = max(bank["sweep"], key=lambda p: (p[1], -p[0]))
        lines.append(f"| {bank['label']} | {100 * bank['accuracy']:.2f} | {best_tau:g} ({100 * best:.2f}) |")
    if plot:
        lines += ["", f"Accuracy against τ for both banks: `{plot}`."]
    return "\n".join(lines) + "\n"


def plot_recognition_sweep(report: Mapping[str, Any], out: str | Path, title: str = "") -> Path:
    """Accuracy (%) against τ, one line per bank, τ of the recipe dashed; writes the PNG ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.0, 3.5))
    for bank in report["banks"].values():
        taus, accuracies = zip(*bank["sweep"])
        ax.plot(taus, [100 * a for a in accuracies], marker="o", markersize=3, label=bank["label"])
    ax.axvline(report["tau"], color="gray", linestyle="--", linewidth=1, label=f"τ = {report['tau']:g}")
    ax.set_xlabel("τ (L2 distance threshold)")
    ax.set_ylabel("recognition accuracy (%)")
    ax.set_title(title or f"FocusedAD recognition, {report['faces']} test faces", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
