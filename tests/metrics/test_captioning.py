"""Captioning metrics: parity with direct pycocoevalcap calls, CIDEr on one item, SPICE reporting, the Metric."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from moviead.metrics import captioning
from moviead.metrics.captioning import (
    SPICE_JARS,
    SpiceUnavailable,
    caption_report,
    caption_scores,
    find_spice_jars,
    ptb_tokenize,
    score_tokenized,
)

# the tests that start METEOR's java (about 10 s) share one worker under `--dist loadgroup` (make test): one start
pytestmark = [pytest.mark.skipif(captioning.shutil.which("java") is None, reason="pycocoevalcap needs java"),
              pytest.mark.xdist_group("meteor")]

WORDS = {
    "name": ["Tony", "Margo", "the detective", "Mark", "a woman", "O'Brien", "the old man", "Zoë"],
    "verb": ["opens", "closes", "looks at", "walks to", "picks up", "stares at", "smiles at", "drops"],
    "thing": ["the door", "a glass", "the desk", "his keys", "the window", "a letter", "her", "the light"],
    "tail": ["", " slowly", " again", ", then turns away", " in the dark", "; he's nervous", " -- quickly", ""],
    "end": [".", ".", "!", "?", "...", ""],
}


def sentence(rng: random.Random) -> str:
    text = f"{rng.choice(WORDS['name'])} {rng.choice(WORDS['verb'])} {rng.choice(WORDS['thing'])}"
    text += rng.choice(WORDS["tail"]) + rng.choice(WORDS["end"])
    if rng.random() < 0.1:
        text = f'"{text}"'
    return text[0].upper() + text[1:] if rng.random() < 0.8 else text


def generated_pairs(n: int, seed: int = 0) -> tuple[dict[str, list[str]], dict[str, str]]:
    rng = random.Random(seed)
    references = {f"m{i // 40}_{i}": [sentence(rng) for _ in range(rng.randint(1, 3))] for i in range(n)}
    predictions = {key: (sentence(rng) if rng.random() < 0.7 else refs[0]) for key, refs in references.items()}
    return references, predictions


def direct_pycocoevalcap(references: dict, predictions: dict) -> dict[str, float]:
    """The usual recipe (pycocoevalcap.eval.COCOEvalCap): tokenise each side, then each scorer."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": r} for r in refs] for k, refs in references.items()})
    res = tokenizer.tokenize({k: [{"caption": predictions[k]}] for k in references})
    bleu, _ = Bleu(4).compute_score(gts, res)
    # pycocoevalcap's own Meteor class and compute_score; the java process is shared with the wrapper because
    # its start costs 10-30 s (the scorer keeps no state between EVAL requests).
    meteor, _ = captioning._meteor_scorer().compute_score(gts, res)
    return {
        **{f"bleu{n + 1}": b for n, b in enumerate(bleu)},
        "meteor": meteor,
        "rouge_l": Rouge().compute_score(gts, res)[0],
        "cider": Cider().compute_score(gts, res)[0],
    }


@pytest.fixture(scope="module")
def parity() -> tuple[dict[str, float], dict[str, float]]:
    references, predictions = generated_pairs(120)
    predictions["m0_5"] = ""  # an empty prediction stays on its own line
    ours = caption_scores(references, predictions)
    return ours, direct_pycocoevalcap(references, predictions)


def test_identical_to_direct_pycocoevalcap(parity) -> None:
    ours, theirs = parity
    assert list(ours) == ["bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider"]
    assert ours == theirs  # exact equality, every metric
    assert 0.2 < ours["bleu1"] < 1.0 and 0.0 < ours["cider"] < 10.0  # a real evaluation, not a degenerate one


def test_single_item_cider_is_zero_without_java() -> None:
    refs, preds = {0: ["a man opens the door"]}, {0: ["a man opens the door"]}
    report = score_tokenized(refs, preds, ("cider", "bleu"))
    assert report.scores["cider"] == 0.0  # IDF from one item's references: every n-gram weighs log(1/1) = 0
    assert report.scores["bleu1"] == pytest.approx(1.0)


def test_line_breaks_do_not_shift_items() -> None:
    references = {"a": ["Hello\rworld.", "two\u2028lines"], "b": ["last\x0cone"]}
    refs, preds = ptb_tokenize(references, {"a": "Tony\r\nwaits.", "b": "done"})
    assert refs == {"a": ["hello world", "two lines"], "b": ["last one"]}
    assert preds == {"a": ["tony waits"], "b": ["done"]}


def test_mismatched_items_and_unknown_metric_raise() -> None:
    with pytest.raises(ValueError, match="different items"):
        caption_scores({0: ["a"]}, {1: "a"})
    with pytest.raises(ValueError, match="non-empty"):
        caption_scores({0: []}, {0: "a"})
    with pytest.raises(ValueError, match="unknown captioning metric"):
        caption_scores({0: ["a"]}, {0: "a"}, ("bleu", "chrf"))


def test_spice_unavailable_lists_the_jars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(captioning, "_spice_dir", lambda: tmp_path / "spice")  # no jars where pycocoevalcap looks
    monkeypatch.setenv("MOVIEAD_CORENLP_DIR", str(tmp_path / "corenlp"))
    with pytest.raises(SpiceUnavailable) as err:
        find_spice_jars()
    message = str(err.value)
    assert "stanford-corenlp-3.6.0.jar" in message and "stanford-corenlp-3.6.0-models.jar" in message
    assert str(tmp_path / "corenlp") in message and str(tmp_path / "spice" / "lib") in message
    assert "MOVIEAD_CORENLP_DIR" in message and "stanford-corenlp-full-2015-12-09.zip" in message

    report = score_tokenized({0: ["a dog"], 1: ["a cat"]}, {0: ["a dog"], 1: ["a cow"]}, ("rouge", "spice"))
    assert set(report.scores) == {"rouge_l"} and "stanford-corenlp-3.6.0-models.jar" in report.unavailable["spice"]
    assert report.lines()[-1].startswith("spice: unavailable (SPICE needs Stanford CoreNLP 3.6.0")

    (tmp_path / "corenlp").mkdir()
    for name in SPICE_JARS:
        (tmp_path / "corenlp" / name).write_bytes(b"")
    assert find_spice_jars() == tuple(tmp_path / "corenlp" / name for name in SPICE_JARS)
    assert find_spice_jars(tmp_path / "corenlp")[1].name == "stanford-corenlp-3.6.0-models.jar"


def test_spice_runs_its_scorer_with_the_given_jars(tmp_path: Path) -> None:
    for name in SPICE_JARS:  # placeholders: java finds SpiceScorer and its bundled libraries, then lacks CoreNLP
        (tmp_path / name).write_bytes(b"")
    report_refs, report_preds = {0: ["a man opens the door"]}, {0: ["a man opens a door"]}
    with pytest.raises(RuntimeError, match=r"SPICE failed \(exit 1\).*edu/stanford/nlp/"):
        score_tokenized(report_refs, report_preds, ("spice",), corenlp_dir=tmp_path)


def test_caption_scores_warns_and_omits_spice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(captioning, "_spice_dir", lambda: tmp_path)
    monkeypatch.delenv("MOVIEAD_CORENLP_DIR", raising=False)
    monkeypatch.setattr(captioning, "ptb_tokenize", lambda r, p: ({k: list(v) for k, v in r.items()},
                                                                  {k: [v] for k, v in p.items()}))
    with pytest.warns(UserWarning, match="spice not computed: SPICE needs"):
        scores = caption_scores({0: ["a dog runs"], 1: ["a cat"]}, {0: "a dog runs", 1: "a cow"}, ("rouge", "spice"))
    assert list(scores) == ["rouge_l"]
    report = caption_report({0: ["a dog"]}, {0: "a dog"}, ("cider", "spice"))
    assert report.scores == {"cider": 0.0} and list(report.unavailable) == ["spice"]


def test_caption_metrics_accumulates_and_syncs_as_bytes() -> None:
    from moviead.metrics.caption_metric import CaptionMetrics  # torchmetrics: imported only here (slow import)

    references, predictions = generated_pairs(24, seed=3)
    keys = list(references)
    batches = [keys[:10], keys[10:]]
    refs_list = [[references[k][0] if i % 2 else references[k] for k in b] for i, b in enumerate(batches)]
    expected_refs = {i: ([references[k][0]] if k in batches[1] else references[k]) for i, k in enumerate(keys)}
    expected_preds = {i: predictions[k] for i, k in enumerate(keys)}
    expected_preds[3] = expected_preds[3] + " — café ✓"  # non-ASCII survives the byte encoding

    def filled(**kwargs) -> CaptionMetrics:
        metric = CaptionMetrics(metrics=("bleu", "cider"), **kwargs)
        for b, refs in zip(batches, refs_list):
            metric.update(refs, [expected_preds[keys.index(k)] for k in b])
        return metric

    local = filled()
    assert local.items() == (expected_refs, expected_preds)
    assert local(["one more reference"], ["one more prediction"]) is None  # forward only stores
    assert local.items()[1][24] == "one more prediction"
    # fake all_gathers: two ranks holding the same items; a remote rank without data (torchmetrics' placeholder is
    # an empty tensor of the metric's dtype); a local rank without data gathering a full remote one
    doubled = filled(dist_sync_fn=lambda t, group=None: [t, t.clone()], distributed_available_fn=lambda: True)
    with_empty = filled(dist_sync_fn=lambda t, group=None: [t, t[:0]], distributed_available_fn=lambda: True)
    remote = iter([torch.cat(getattr(filled(), name)) for name in ("text_bytes", "text_lengths", "reference_counts")])
    empty_here = CaptionMetrics(dist_sync_fn=lambda t, group=None: [t, next(remote)],
                                distributed_available_fn=lambda: True)
    for metric in (with_empty, empty_here):
        metric.sync(dist_sync_fn=metric.dist_sync_fn)
        assert metric.items() == (expected_refs, expected_preds)
    twice_refs = {**expected_refs, **{i + 24: r for i, r in expected_refs.items()}}
    twice_preds = {**expected_preds, **{i + 24: p for i, p in expected_preds.items()}}
    got = doubled.compute()
    assert set(got) == {"bleu1", "bleu2", "bleu3", "bleu4", "cider"}
    assert {k: v.item() for k, v in got.items()} == caption_scores(twice_refs, twice_preds, ("bleu", "cider"))
    with pytest.raises(ValueError, match="too coarse"):
        CaptionMetrics().set_dtype(torch.half).update(["a"], ["a"])
