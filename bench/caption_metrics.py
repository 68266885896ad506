"""Benchmark: ``caption_scores`` against a direct pycocoevalcap call on the same 6,500 sentence pairs.

The direct call is the usual recipe (as ``pycocoevalcap.eval.COCOEvalCap`` without SPICE): ``PTBTokenizer`` on the
references, then on the predictions, then ``Bleu(4)``, a fresh ``Meteor()``, ``Rouge()`` and ``Cider()``. Ours is
``moviead.metrics.captioning.caption_scores`` with its METEOR process closed first, so both start a METEOR java
process (its paraphrase table dominates the time). Every round times both, in alternating order (the first run
also warms the disk cache), and checks that the scores are equal. Reported: each time, the medians and their
ratio ours / direct; target (issue) <= 1.1.

Sentences: real AD text when the shared data folder exists (``--data``, default ``../shared/data`` beside the
repository: CMD-AD and TV-AD annotations, read at run time, never copied), each AD as the reference and the next
AD of the file as the prediction (a related but wrong description), one in five predictions an exact copy;
otherwise sentences generated from a small grammar.

    .venv/bin/python bench/caption_metrics.py [--pairs 6500] [--rounds 2] [--data DIR] [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import statistics
import time
from pathlib import Path

from moviead.metrics.captioning import caption_scores, close_meteor

REPO = Path(__file__).resolve().parents[1]
SUBJECTS = ["The man", "A woman", "The detective", "Her son", "The old driver", "Two guards", "The girl", "He", "She"]
VERBS = ["opens", "closes", "looks at", "walks toward", "picks up", "stares at", "smiles at", "drops", "points at"]
OBJECTS = ["the door", "a glass", "the desk", "his keys", "the window", "a letter", "the car", "the photograph"]
TAILS = ["", " slowly", " again", ", then turns away", " in the dark", " and frowns", " without a word"]


def generated_sentences(n: int, rng: random.Random) -> list[str]:
    """``n`` AD-like sentences from a small grammar."""
    return [
        f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}{rng.choice(TAILS)}."
        for _ in range(n)
    ]


def real_sentences(folder: Path) -> list[str]:
    """The AD texts of the CMD-AD and TV-AD annotation files, in file order."""
    texts = []
    for name in ("cmdad_anno.csv", "tvad_anno.csv"):
        with open(folder / name, newline="", encoding="utf-8") as handle:
            texts += [row["text"].strip() for row in csv.DictReader(handle) if row["text"].strip()]
    return texts


def make_pairs(pairs: int, data: Path | None, seed: int) -> tuple[dict[int, list[str]], dict[int, str], str]:
    rng = random.Random(seed)
    if data is not None and (data / "cmdad_anno.csv").is_file():
        texts, source = real_sentences(data), f"real AD text from {data}"
    else:
        texts, source = generated_sentences(pairs + 1, rng), "generated sentences"
    texts = (texts * (pairs // len(texts) + 2))[: pairs + 1]
    references = {i: [texts[i]] for i in range(pairs)}
    predictions = {i: texts[i] if rng.random() < 0.2 else texts[i + 1] for i in range(pairs)}
    return references, predictions, source


def direct(references: dict[int, list[str]], predictions: dict[int, str]) -> dict[str, float]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": r} for r in refs] for k, refs in references.items()})
    res = tokenizer.tokenize({k: [{"caption": predictions[k]}] for k in references})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    meteor_scorer = Meteor()
    meteor, _ = meteor_scorer.compute_score(gts, res)
    del meteor_scorer  # ends its java process
    return {
        **{f"bleu{n + 1}": b for n, b in enumerate(bleu)},
        "meteor": meteor,
        "rouge_l": Rouge().compute_score(gts, res)[0],
        "cider": Cider().compute_score(gts, res)[0],
    }


def ours(references: dict[int, list[str]], predictions: dict[int, str]) -> dict[str, float]:
    close_meteor()  # start cold, as the direct call does
    try:
        return caption_scores(references, predictions)
    finally:
        close_meteor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    references, predictions, source = make_pairs(args.pairs, args.data, args.seed)
    print(f"{args.pairs} pairs of {source}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    times: dict[str, list[float]] = {"direct": [], "ours": []}
    runs = {"direct": direct, "ours": ours}
    for r in range(args.rounds):
        order = ("direct", "ours") if r % 2 == 0 else ("ours", "direct")
        results = {}
        for name in order:
            start = time.perf_counter()
            results[name] = runs[name](references, predictions)
            times[name].append(time.perf_counter() - start)
            print(f"round {r + 1} {name:>6}: {times[name][-1]:7.2f} s")
        if results["direct"] != results["ours"]:
            raise SystemExit(f"scores differ: direct {results['direct']} vs ours {results['ours']}")
    scores = ", ".join(f"{k} {v:.4f}" for k, v in results["ours"].items())
    print(f"scores identical in every round: {scores}")
    median = {name: statistics.median(values) for name, values in times.items()}
    ratio = median["ours"] / median["direct"]
    print(f"median direct {median['direct']:.2f} s, ours {median['ours']:.2f} s, ratio {ratio:.3f} (target <= 1.1)")


if __name__ == "__main__":
    main()
