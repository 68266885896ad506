"""Language-model pretraining of the toy decoder: the toy stand-in for the papers' *pretrained* LM.

The papers' decoders (OPT, GPT-2, Qwen2) come pretrained: they have read text in which a character named earlier is
named again, and they copy a name from their prompt from the first step of Stage-II. The toy world's decoder
(``decoders/tiny-opt``, written by ``moviead make-toy-data``) is random, so a Stage-II run must first learn the
language and learn to copy, and a mechanism that changes which context the decoder is given (LoCo-MAD's DSM) is
measured through a decoder that may not read its context at all (session 11: the DSM's top 2 held the test AD's
name for 83.7 % of the ADs, and the decoder named 5.8 % of them).

:func:`pretrain_toy_lm` gives the toy decoder that pretraining, on text the data set never holds:

- **corpus**: ``movies`` toy-world-v2 movies planned with the data set's seed at plan indices from
  :data:`FIRST_PRETRAINING_MOVIE` on (a data set's movie k has plan index k, and data sets have far fewer movies),
  each a document of its ADs and subtitles in time order, joined by spaces (no prompt markers, no features);
- **names**: each draw of a document renames its characters to distinct names drawn from the data set's name pool
  (``toy_manifest.json``'s ``vocabulary.names``, the pool ``captioning.name_swap`` draws from), so the names carry
  no meaning and can only be predicted by copying them;
- **objective**: causal language modelling on windows of ``window`` tokens at random offsets, ``batch`` windows a
  step, AdamW (lr 2e-3, the tiny recipes' own; weight decay 0.01), ``steps`` steps, torch's RNG seeded with ``seed``;
- **held-out check**: on 20 further movies, cut into consecutive windows of ``window`` tokens (the positions
  trained), the mean token loss and the **name-copy accuracy** (of the names from a window's 100th token on, the
  fraction whose every token is the arg-max prediction given the text before it), before and after; both go to
  ``pretraining.json`` beside the weights.

The output folder loads with ``AutoModelForCausalLM.from_pretrained`` like the random one, with the same tokenizer.
The weights depend on the torch thread count (it changes the order of the float sums: at 2 threads the ablations'
spec gave a decoder copying 45.7 % of held-out names, at 1 thread 53.0 %), so the pretraining runs at ``threads``
(default 1) whoever calls it, and the same arguments give the same weights; the count goes to ``pretraining.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

FIRST_PRETRAINING_MOVIE = 1000
HELD_OUT_MOVIES = 20
SKIP_POSITIONS = 100  # the copy check starts here, where the window has named its characters
PRETRAINED_DECODER = "tiny-opt-lm"


def pretrained_decoder_dir(data_root: str | Path) -> Path:
    """Where :func:`pretrain_toy_lm` writes by default: ``data_root/decoders/tiny-opt-lm``."""
    return Path(data_root) / "decoders" / PRETRAINED_DECODER


@dataclass(frozen=True)
class PretrainingReport:
    """What :func:`pretrain_toy_lm` measured on the held-out movies, before and after, and its settings."""

    steps: int
    movies: int
    seed: int
    window: int
    batch: int
    loss_before: float
    loss_after: float
    name_copy_before: float
    name_copy_after: float
    names_checked: int
    seconds: float
    threads: int = 1


def pretraining_documents(seed: int, first: int, count: int) -> list[tuple[str, tuple[str, ...]]]:
    """``count`` toy-world-v2 movies from plan index ``first``: (ADs and subtitles in time order joined by spaces,
    the movie's character names)."""
    from moviead.toy.grammar_v2 import ad_sentence_v2, plan_movie_v2

    documents = []
    for index in range(first, first + count):
        movie = plan_movie_v2(seed, index)
        events = [(ad.start_ms, 0, ad_sentence_v2(ad.sentence)) for ad in movie.ads]
        events += [(sub.start_ms, 1, sub.text) for sub in movie.subtitles]
        documents.append((" ".join(text for _, _, text in sorted(events)), tuple(movie.characters)))
    return documents


class _Renamer:
    """Renames a document's characters to distinct names of the pool, drawn from torch's RNG."""

    def __init__(self, pool: tuple[str, ...], characters: set[str]) -> None:
        from moviead.data.name_swap import NameSwap

        self.pool = pool
        self.swap = NameSwap(sorted(set(pool) | characters))

    def __call__(self, text: str, characters: tuple[str, ...], generator: torch.Generator) -> str:
        if len(characters) > len(self.pool):
            raise ValueError(f"a pretraining movie has {len(characters)} characters, the name pool only "
                             f"{len(self.pool)}")  # fmt: skip
        drawn = torch.randperm(len(self.pool), generator=generator)[: len(characters)].tolist()
        return self.swap.apply(text, {name: self.pool[i] for name, i in zip(characters, drawn)})


def _name_spans(ids: list[int], names: list[tuple[int, ...]]) -> list[tuple[int, int]]:
    """(start, end) token spans of the occurrences of any of ``names`` (token-id tuples) in ``ids``."""
    spans = []
    for start in range(len(ids)):
        for name in names:
            if tuple(ids[start:start + len(name)]) == name:
                spans.append((start, start + len(name)))
                break
    return spans


def _windows(ids: list[int], window: int) -> list[list[int]]:
    """``ids`` cut into consecutive windows of ``window`` tokens (the last one shorter, dropped when it is shorter
    than twice :data:`SKIP_POSITIONS`): the positions the model is trained on."""
    chunks = (ids[i:i + window] for i in range(0, len(ids), window))
    return [chunk for chunk in chunks if len(chunk) >= 2 * SKIP_POSITIONS]


def _held_out_scores(model: torch.nn.Module, documents: list[list[int]], names: list[tuple[int, ...]]
                     ) -> tuple[float, float, int]:
    """(mean token loss, name-copy accuracy, names checked) over token-id windows (each ≤ the model's positions):
    a name from token :data:`SKIP_POSITIONS` on counts as copied when every one of its tokens is the arg-max
    prediction given the tokens before it."""
    model.eval()
    loss_sum, tokens, hits, checked = 0.0, 0, 0, 0
    with torch.no_grad():
        for ids in documents:
            x = torch.tensor([ids])
            logits = model(input_ids=x).logits[0, :-1].float()
            target = x[0, 1:]
            loss_sum += float(torch.nn.functional.cross_entropy(logits, target, reduction="sum"))
            tokens += target.numel()
            right = (logits.argmax(-1) == target).tolist()  # right[i]: token i + 1 predicted
            for start, end in _name_spans(ids, names):
                if start >= SKIP_POSITIONS:
                    hits += all(right[start - 1:end - 1])
                    checked += 1
    model.train()
    return loss_sum / max(tokens, 1), hits / max(checked, 1), checked


def pretrain_toy_lm(
    data_root: str | Path,
    out_dir: str | Path | None = None,
    steps: int = 1000,
    movies: int = 200,
    seed: int = 0,
    window: int = 256,
    batch: int = 16,
    progress: Callable[[str], None] | None = print,
    threads: int = 1,
) -> PretrainingReport:
    """Pretrain the toy data set's ``decoders/tiny-opt`` by causal LM on toy movies it does not hold (module doc).

    Args:
        data_root: a toy data set written by ``moviead make-toy-data --world v2`` (``toy_manifest.json``,
            ``decoders/tiny-opt``).
        out_dir: where the pretrained model goes (default ``data_root/decoders/tiny-opt-lm``).
        steps: optimiser steps of ``batch`` windows of ``window`` tokens.
        movies: pretraining movies (documents); 20 more are held out.
        seed: torch's RNG (windows, renamings); the movies come from the data set's own seed.
        progress: called with a line every 100 steps (``None``: quiet).
        threads: torch's CPU threads while it runs (restored after): the weights depend on it (module doc).

    Returns:
        The held-out loss and name-copy accuracy before and after (also written to ``out_dir/pretraining.json``).
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _pretrain(Path(data_root), out_dir, steps, movies, seed, window, batch, progress, threads)
    finally:
        torch.set_num_threads(previous)


def _pretrain(root: Path, out_dir: str | Path | None, steps: int, movies: int, seed: int, window: int, batch: int,
              progress: Callable[[str], None] | None, threads: int) -> PretrainingReport:
    """:func:`pretrain_toy_lm` at the thread count it has set."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from moviead.toy.generator import DECODER

    manifest_file, source = root / "toy_manifest.json", root / "decoders" / DECODER
    if not manifest_file.is_file() or not (source / "config.json").is_file():
        raise FileNotFoundError(f"{root} is not a toy data set with decoders/tiny-opt: write one with "
                                "`moviead make-toy-data --world v2 --out DIR`")  # fmt: skip
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    if manifest.get("world") != "v2":
        raise ValueError(f"{root} holds toy world {manifest.get('world', 'v1')!r}: decoder pretraining reads "
                         "world-v2 movies; write the data with `moviead make-toy-data --world v2`")  # fmt: skip
    if steps < 1 or movies < 1 or window < 2 * SKIP_POSITIONS or batch < 1:
        raise ValueError(f"need steps, movies, batch >= 1 and window >= {2 * SKIP_POSITIONS}; got {steps}, {movies}, "
                         f"{batch}, {window}")  # fmt: skip
    began = time.perf_counter()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    pool = tuple(manifest["vocabulary"]["names"])
    world_seed = int(manifest["seed"])
    train = pretraining_documents(world_seed, FIRST_PRETRAINING_MOVIE, movies)
    held = pretraining_documents(world_seed, FIRST_PRETRAINING_MOVIE + movies, HELD_OUT_MOVIES)
    rename = _Renamer(pool, {name for _, names in train + held for name in names})
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    if window > int(model.config.max_position_embeddings):
        raise ValueError(f"window {window} is longer than the decoder's {model.config.max_position_embeddings} "
                         "positions")

    def encode(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]

    name_tokens = sorted({tuple(encode(" " + name)) for name in pool}, key=len, reverse=True)  # longest first
    held_ids = [chunk for text, characters in held
                for chunk in _windows(encode(rename(text, characters, generator)), window)]
    loss_before, copy_before, _ = _held_out_scores(model, held_ids, name_tokens)
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    model.train()
    for step in range(1, steps + 1):
        rows = []
        for _ in range(batch):
            text, characters = train[int(torch.randint(len(train), (1,), generator=generator))]
            ids = encode(rename(text, characters, generator))
            start = int(torch.randint(max(1, len(ids) - window + 1), (1,), generator=generator))
            rows.append(ids[start:start + window])
        shortest = min(len(r) for r in rows)
        x = torch.tensor([r[:shortest] for r in rows])
        loss = model(input_ids=x, labels=x).loss
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if progress is not None and (step % 100 == 0 or step == steps):
            progress(f"  decoder pretraining step {step}/{steps}: loss {loss.item():.3f} "
                     f"({time.perf_counter() - began:.0f} s)")  # fmt: skip
    loss_after, copy_after, checked = _held_out_scores(model, held_ids, name_tokens)
    out = Path(out_dir) if out_dir is not None else pretrained_decoder_dir(root)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    report = PretrainingReport(steps=steps, movies=movies, seed=seed, window=window, batch=batch,
                               loss_before=loss_before, loss_after=loss_after, name_copy_before=copy_before,
                               name_copy_after=copy_after, names_checked=checked,
                               seconds=time.perf_counter() - began, threads=threads)  # fmt: skip
    (out / "pretraining.json").write_text(json.dumps(asdict(report), indent=1) + "\n", encoding="utf-8")
    return report
