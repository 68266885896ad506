"""Captioning metrics through pycocoevalcap: BLEU-1..4, METEOR, ROUGE-L, CIDEr (CIDEr-D), and SPICE when possible.

The numbers are pycocoevalcap's own: its PTB tokenizer (Stanford CoreNLP 3.4.1, lower-cased, punctuation removed)
and then its scorers, called as ``pycocoevalcap.eval.COCOEvalCap`` calls them, items in the order of the keys of
``references``. What differs from a direct call changes no score:

- references and predictions go through one PTB tokenizer (java) run instead of two;
- line breaks other than ``\\n`` (``\\r``, ``\\u2028``, ...) become spaces before tokenisation. pycocoevalcap replaces
  only ``\\n``; the java tokenizer splits on the others too and every later caption lands on the wrong item;
- the METEOR java process (its paraphrase table takes 10-30 s to load) starts before tokenisation, once per Python
  process, and later calls reuse it; :func:`close_meteor` ends it. BLEU runs with ``verbose=0``.

CIDEr is pycocoevalcap's ``Cider``, the CIDEr-D formulation (clipped n-gram counts, Gaussian length penalty,
sigma 6, x10). Its IDF comes from the evaluated references themselves: an n-gram found in the references of every
item weighs 0, so **an evaluation of a single item scores CIDEr 0** whatever the prediction, and small evaluations
score lower than large ones. Score whole test sets.

:class:`~moviead.metrics.caption_metric.CaptionMetrics` wraps :func:`caption_scores` as a torchmetrics ``Metric``
(kept apart so that this module does not import torchmetrics, which takes seconds).

SPICE needs Stanford CoreNLP 3.6.0 (two jars pycocoevalcap downloads at run time, which is impossible offline).
It runs when :func:`find_spice_jars` finds them (``corenlp_dir`` argument, ``$MOVIEAD_CORENLP_DIR``, or
pycocoevalcap's ``spice/lib``); otherwise :func:`caption_report` lists it as unavailable with the files needed and
:func:`caption_scores` leaves the key out with a warning, never a made-up value. SPICE runs with its classpath
given here and without its LMDB cache (a speed-up only, kept in site-packages), so nothing is written into
site-packages.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

METRICS = ("bleu", "meteor", "rouge", "cider", "spice")
DEFAULT_METRICS = ("bleu", "meteor", "rouge", "cider")
CORENLP_ENV = "MOVIEAD_CORENLP_DIR"
SPICE_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")
CORENLP_URL = "http://nlp.stanford.edu/software/stanford-corenlp-full-2015-12-09.zip"
_LINE_BREAKS = re.compile("[\n\r\u2028\u2029\x0b\x0c\x85]")  # what java's PTBLexer takes for a new line


@dataclass
class CaptionReport:
    """Scores that were computed, and for each requested metric that could not be, why and how to fix it."""

    scores: dict[str, float] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """Human-readable report: ``name: value`` per score, then ``name: unavailable (reason)``."""
        out = [f"{name}: {value:.4f}" for name, value in self.scores.items()]
        return out + [f"{name}: unavailable ({why})" for name, why in self.unavailable.items()]


class SpiceUnavailable(FileNotFoundError):
    """The CoreNLP 3.6.0 jars SPICE needs were not found; the message lists the files and where to put them."""


def normalise_metric_names(metrics: Sequence[str]) -> list[str]:
    """Lower-cased metric names (``rouge_l`` -> ``rouge``); unknown names raise :class:`ValueError`."""
    names = [{"rouge_l": "rouge"}.get(m.lower(), m.lower()) for m in metrics]
    unknown = sorted(set(names) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown captioning metric(s) {unknown}; expected some of {list(METRICS)}")
    return names


def _check_items(references: Mapping[Hashable, Sequence[str]], predictions: Mapping[Hashable, str]) -> list[Hashable]:
    """The item keys in the order of ``references``, after checking both sides hold the same items."""
    keys = list(references)
    if not keys:
        raise ValueError("nothing to score: no items")
    if set(keys) != set(predictions):
        missing, extra = set(keys) - set(predictions), set(predictions) - set(keys)
        raise ValueError(
            f"references and predictions hold different items: {len(missing)} without a prediction "
            f"(e.g. {sorted(map(repr, missing))[:3]}), {len(extra)} without references "
            f"(e.g. {sorted(map(repr, extra))[:3]})"
        )
    for key in keys:
        refs, pred = references[key], predictions[key]
        if isinstance(refs, str) or len(refs) == 0 or not all(isinstance(r, str) for r in refs):
            raise ValueError(f"item {key!r}: references must be a non-empty sequence of strings, got {refs!r}")
        if not isinstance(pred, str):
            raise TypeError(f"item {key!r}: the prediction must be a string, got {type(pred).__name__}")
    return keys


def ptb_tokenize(
    references: Mapping[Hashable, Sequence[str]], predictions: Mapping[Hashable, str]
) -> tuple[dict[Hashable, list[str]], dict[Hashable, list[str]]]:
    """pycocoevalcap's PTB tokenisation of both sides in one java run.

    Returns:
        ``(references, predictions)`` in the form pycocoevalcap's scorers take: key -> list of tokenised strings
        (one per reference; a one-item list for the prediction), keys in the order of ``references``.

    Raises:
        ValueError: the two sides hold different items, or an item has no reference.
        TypeError: a prediction is not a string.
        RuntimeError: no ``java`` on PATH.
    """
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    keys = _check_items(references, predictions)
    if shutil.which("java") is None:
        raise RuntimeError("pycocoevalcap's tokenizer and METEOR need a java runtime (8 or later) on PATH")
    batch: dict[tuple[int, int], list[dict[str, str]]] = {}
    for i, key in enumerate(keys):
        batch[(0, i)] = [{"caption": _LINE_BREAKS.sub(" ", r)} for r in references[key]]
    for i, key in enumerate(keys):
        batch[(1, i)] = [{"caption": _LINE_BREAKS.sub(" ", predictions[key])}]
    tokens = PTBTokenizer().tokenize(batch)
    return {key: tokens[(0, i)] for i, key in enumerate(keys)}, {key: tokens[(1, i)] for i, key in enumerate(keys)}


# ------------------------------------------------------------------------------------------------ METEOR process
_meteor_lock = threading.Lock()
_meteor = None  # the shared pycocoevalcap.meteor.meteor.Meteor, started on first use


def _meteor_scorer():  # -> pycocoevalcap.meteor.meteor.Meteor
    """The shared METEOR scorer, (re)started when there is none or its java process has exited."""
    global _meteor
    from pycocoevalcap.meteor.meteor import Meteor

    with _meteor_lock:
        if _meteor is None or _meteor.meteor_p.poll() is not None:
            _meteor = Meteor()  # returns at once; java loads its tables in the background
        return _meteor


def close_meteor() -> None:
    """End the shared METEOR java process; the next METEOR score starts a new one. Safe to call any time."""
    global _meteor
    with _meteor_lock:
        scorer, _meteor = _meteor, None
    if scorer is not None:
        if scorer.lock.locked():  # left locked by a compute_score that raised: its __del__ would wait forever
            scorer.lock.release()
        scorer.meteor_p.kill()
        scorer.meteor_p.wait()


def _meteor_score(refs: dict[Hashable, list[str]], preds: dict[Hashable, list[str]]) -> float:
    scorer = _meteor_scorer()
    try:
        score, _ = scorer.compute_score(refs, preds)
    except Exception:
        close_meteor()  # its pipes may hold a half-read answer: never reuse it
        raise
    return float(score)


# ------------------------------------------------------------------------------------------------ SPICE
def _spice_dir() -> Path:
    import pycocoevalcap.spice

    return Path(pycocoevalcap.spice.__file__).resolve().parent


def find_spice_jars(corenlp_dir: str | os.PathLike[str] | None = None) -> tuple[Path, Path]:
    """The two CoreNLP 3.6.0 jars SPICE needs, from ``corenlp_dir``, else ``$MOVIEAD_CORENLP_DIR``, else the
    ``spice/lib`` folder of pycocoevalcap (where its own downloader puts them).

    Raises:
        SpiceUnavailable: the jars are in none of those folders; the message names the files and how to get them.
    """
    lib = _spice_dir() / "lib"
    given = corenlp_dir if corenlp_dir is not None else os.environ.get(CORENLP_ENV) or None
    folders = ([Path(given).expanduser()] if given is not None else []) + [lib]
    for folder in folders:
        jars = tuple(folder / name for name in SPICE_JARS)
        if all(jar.is_file() for jar in jars):
            return jars[0], jars[1]
    raise SpiceUnavailable(
        f"SPICE needs Stanford CoreNLP 3.6.0: {' and '.join(SPICE_JARS)} (both in {CORENLP_URL}); looked in "
        f"{', '.join(str(f) for f in folders)}. Put both jars in one folder and set {CORENLP_ENV}=<folder> "
        f"(or pass corenlp_dir=<folder>), or copy them into {lib}"
    )


def _spice_score(refs: dict[Hashable, list[str]], preds: dict[Hashable, list[str]], jars: tuple[Path, Path]) -> float:
    """pycocoevalcap's SPICE: the mean over items of the ``All`` F-score, ``None`` read as NaN (as it does)."""
    spice_dir = _spice_dir()
    keys = list(refs)
    with tempfile.TemporaryDirectory(prefix="moviead_spice_") as tmp:
        in_file, out_file = Path(tmp) / "in.json", Path(tmp) / "out.json"
        items = [{"image_id": i, "test": preds[key][0], "refs": refs[key]} for i, key in enumerate(keys)]
        in_file.write_text(json.dumps(items, indent=2))
        classpath = os.pathsep.join([str(spice_dir / "spice-1.0.jar"), *(str(j) for j in jars)])
        cmd = ["java", "-Xmx8G", "-cp", classpath, "edu.anu.spice.SpiceScorer", str(in_file), "-out", str(out_file)]
        done = subprocess.run([*cmd, "-subset", "-silent"], cwd=spice_dir, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"SPICE failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
        results = json.loads(out_file.read_text())

    def as_float(value: object) -> float:
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return float("nan")

    return float(np.mean(np.array([as_float(item["scores"]["All"]["f"]) for item in results])))


# ------------------------------------------------------------------------------------------------ scoring
def score_tokenized(
    references: Mapping[Hashable, list[str]],
    predictions: Mapping[Hashable, list[str]],
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    corenlp_dir: str | os.PathLike[str] | None = None,
) -> CaptionReport:
    """Run pycocoevalcap's scorers on already PTB-tokenised text (the output of :func:`ptb_tokenize`).

    Args:
        references: key -> tokenised references (at least one each).
        predictions: key -> one-item list holding the tokenised prediction; the same keys.
        metrics: any of ``bleu`` (-> ``bleu1``..``bleu4``), ``meteor``, ``rouge`` (-> ``rouge_l``), ``cider``,
            ``spice``.
        corenlp_dir: folder holding the CoreNLP 3.6.0 jars for SPICE (see :func:`find_spice_jars`).

    Returns:
        The scores (fractions as pycocoevalcap gives them, not percentages) and the unavailable metrics.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    names = normalise_metric_names(metrics)
    if set(references) != set(predictions):
        raise ValueError("references and predictions hold different items")
    refs = {k: list(v) for k, v in references.items()}
    preds = {k: [predictions[k]] if isinstance(predictions[k], str) else list(predictions[k]) for k in references}
    report = CaptionReport()
    if "bleu" in names:
        bleu, _ = Bleu(4).compute_score(refs, preds, verbose=0)
        report.scores.update({f"bleu{n + 1}": float(value) for n, value in enumerate(bleu)})
    if "meteor" in names:
        report.scores["meteor"] = _meteor_score(refs, preds)
    if "rouge" in names:
        report.scores["rouge_l"] = float(Rouge().compute_score(refs, preds)[0])
    if "cider" in names:
        report.scores["cider"] = float(Cider().compute_score(refs, preds)[0])
    if "spice" in names:
        try:
            jars = find_spice_jars(corenlp_dir)
        except SpiceUnavailable as err:
            report.unavailable["spice"] = str(err)
        else:
            report.scores["spice"] = _spice_score(refs, preds, jars)
    return report


def caption_report(
    references: Mapping[Hashable, Sequence[str]],
    predictions: Mapping[Hashable, str],
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    corenlp_dir: str | os.PathLike[str] | None = None,
) -> CaptionReport:
    """PTB-tokenise once, then score: the scores and, for SPICE without its jars, why it was not computed.

    Args:
        references: item key -> reference texts (at least one).
        predictions: item key -> predicted text; the same keys. Items are scored in the order of ``references``.
        metrics: see :func:`score_tokenized`.
        corenlp_dir: see :func:`find_spice_jars`.
    """
    names = normalise_metric_names(metrics)
    _check_items(references, predictions)
    if "meteor" in names and shutil.which("java") is not None:
        _meteor_scorer()  # start java now: its tables load while the tokenizer runs
    refs, preds = ptb_tokenize(references, predictions)
    return score_tokenized(refs, preds, names, corenlp_dir=corenlp_dir)


def caption_scores(
    references: Mapping[Hashable, Sequence[str]],
    predictions: Mapping[Hashable, str],
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    corenlp_dir: str | os.PathLike[str] | None = None,
) -> dict[str, float]:
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr (and SPICE) exactly as pycocoevalcap computes them on the same input.

    Keys: ``bleu1``..``bleu4``, ``meteor``, ``rouge_l``, ``cider`` as requested, and ``spice`` only when it was
    computed (a metric that could not be computed is left out with a warning saying how to enable it; use
    :func:`caption_report` to get the reasons as data).

    Example:
        >>> caption_scores({0: ["A man opens the door."]}, {0: "A man opens a door."})  # doctest: +SKIP
        {'bleu1': ..., 'meteor': ..., 'rouge_l': ..., 'cider': 0.0}   # one item: CIDEr is 0 (see module doc)
    """
    report = caption_report(references, predictions, metrics, corenlp_dir=corenlp_dir)
    for name, why in report.unavailable.items():
        warnings.warn(f"{name} not computed: {why}", stacklevel=2)
    return report.scores

