"""``moviead evaluate`` and ``moviead describe``: decode ADs with a Stage-II checkpoint, stream them, score them.

:func:`decode_split` is the loop both commands share. It decodes the ADs of a split (or of a film's dialogue
gaps) in *local*, *oracle* or *recurrent* mode, appends each batch to ``predictions.jsonl`` through
:class:`~moviead.evaluation.predictions.PredictionStore` (a rerun resumes after the last complete row) and shows a
progress bar in ADs/s. In recurrent mode each movie is decoded in time order and the batches hold the next AD of
several movies (:func:`~moviead.evaluation.schedule.recurrent_batches`: those with the most ADs left, so batches stay
full); the predictions of earlier ADs feed the context through :class:`~moviead.data.context.PredictionContext`,
restored from the file on resume. A FocusedAD checkpoint decodes Storyboard-v2 clips with their records (its collate
function builds each clip's instruction from the recognised names and character regions); its rows also carry the
``names`` of that instruction.

With ``DecodeSettings.words_per_second`` each AD is fitted to its cue (:mod:`moviead.evaluation.budget`): its word
budget ``floor(duration * rate)`` sets its token limit, beams over the budget lose to beams within it, and a text
still over budget is cut at a clause boundary; its row then carries ``budget`` (words).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import torch
from omegaconf import DictConfig
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from moviead.atomic_files import write_text_atomically
from moviead.config import ContextMode
from moviead.data.collate import BatchKey
from moviead.data.context import PredictionContext
from moviead.data.datasets import ADClipDataset
from moviead.data.sentence_features import encode_proposal_texts
from moviead.data.sources import SplitData, make_dataset
from moviead.evaluation.budget import fit_to_budget, token_limit, word_budget, word_count
from moviead.evaluation.predictions import PredictionStore
from moviead.evaluation.schedule import RecurrentPolicy, fixed_batches, recurrent_batches
from moviead.focused.data import read_storyboard_records, storyboard_examples
from moviead.models.generation import GenerationSettings
from moviead.recipes.base import Recipe, model_batch

log = logging.getLogger(__name__)


@dataclass
class DecodeSettings:
    """How a split is decoded.

    Attributes:
        mode: local, oracle or recurrent context.
        num_beams: beams (default: the checkpoint's ``captioning.generation.num_beams``).
        batch_size: ADs per batch in local and oracle mode.
        batch_movies: movies decoded side by side in recurrent mode (B).
        device: torch device of the model.
        progress: show the progress bar.
        words_per_second: fit each AD to its cue at this speaking rate (None: no word budget).
        no_repeat_ngram: n-gram size no AD may repeat (None: the checkpoint's, 0: off).
        schedule: recurrent mode: which movies take the batch's slots at each step
            (:func:`~moviead.evaluation.schedule.recurrent_batches`); every AD sees the same context under either
            policy, so only the rounding of batched decoding (as with any B > 1) can tell them apart.
    """

    mode: ContextMode = ContextMode.recurrent
    num_beams: int | None = None
    batch_size: int = 16
    batch_movies: int = 8
    device: str = "cpu"
    progress: bool = True
    words_per_second: float | None = None
    no_repeat_ngram: int | None = None
    schedule: RecurrentPolicy = "longest_first"


@dataclass
class DecodeResult:
    """The rows of the predictions file (all of them, earlier runs' included) and this run's throughput."""

    rows: list[dict[str, Any]]
    decoded: int
    seconds: float

    @property
    def ads_per_second(self) -> float:
        return self.decoded / self.seconds if self.seconds > 0 else float("nan")


def pick_device(name: str) -> torch.device:
    """``auto`` → cuda when available, else cpu; anything else as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _to_device(batch: Any, device: torch.device) -> Any:
    if device.type == "cpu":
        return batch
    fields = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in vars(batch).items()}
    return type(batch)(**fields)


def _selected_context(meta: dict[str, Any], chosen: Sequence[bool]) -> list[dict[str, Any]]:
    """The proposal items the model was given: their AD (None for the leading subtitles-only item) and subtitles."""
    return [{"ad": p["ad"], "subtitles": p["subtitles"]} for p, keep in zip(meta.get("proposal", []), chosen) if keep]


def decode_split(
    parts: Recipe,
    cfg: DictConfig,
    data: SplitData,
    out_dir: str | Path,
    settings: DecodeSettings,
    run_info: dict[str, Any],
    restart: bool = False,
) -> DecodeResult:
    """Decode every AD of ``data`` not yet in ``out_dir/predictions.jsonl`` and append it there.

    Args:
        parts: the recipe of a Stage-II checkpoint (:func:`~moviead.recipes.checkpoint.load_captioner_checkpoint`);
            its data requirements say what each example carries (their context mode is replaced by ``settings.mode``).
        cfg: its config (``data`` and ``loader.frames``: how frames are read).
        data: the split (or the gaps of a film) to decode.
        out_dir: where ``predictions.jsonl`` and ``run.json`` go.
        run_info: what identifies the run (checkpoint, split, ...); a rerun with other values is refused.
        restart: discard earlier predictions instead of resuming.
    """
    mode = ContextMode(settings.mode)
    needs = replace(parts.data, context_mode=mode)
    generation = parts.generation_settings(cfg.captioning.generation, settings.num_beams)
    info = {**run_info, "mode": mode.value, "num_beams": generation.num_beams}
    if settings.no_repeat_ngram is not None:
        generation = replace(generation, no_repeat_ngram_size=int(settings.no_repeat_ngram))
        info["no_repeat_ngram"] = int(settings.no_repeat_ngram)
    if settings.words_per_second is not None:
        info["words_per_second"] = float(settings.words_per_second)
    store = PredictionStore(out_dir, info, restart=restart)
    provider = PredictionContext(data.movies) if mode == ContextMode.recurrent else None
    dataset = make_dataset(data, cfg.data, cfg.loader.frames, needs, training=False, provider=provider)
    examples = _storyboard_examples(parts, cfg, dataset) if needs.storyboard_records else dataset
    if provider is not None:
        _restore_predictions(provider, data, store)
    positions = [i for i, item in enumerate(dataset.items) if (item.record.movie, item.record.index) not in store.done]
    if mode == ContextMode.oracle and needs.sentence_bank is not None:
        encode_proposal_texts(needs.sentence_bank, dataset, positions)
    if mode == ContextMode.recurrent:
        by_movie: dict[str, list[int]] = {}
        for i in positions:
            by_movie.setdefault(dataset.items[i].record.movie, []).append(i)
        for movie_positions in by_movie.values():
            movie_positions.sort(key=lambda i: dataset.items[i].record.index)
        batches = recurrent_batches(list(by_movie.values()), settings.batch_movies, settings.schedule)
    else:
        batches = fixed_batches(positions, settings.batch_size)

    device = pick_device(settings.device)
    captioner = parts.captioner.to(device).eval()
    collate = parts.collator
    bar = tqdm(total=len(dataset), initial=len(dataset) - len(positions), unit="AD", desc=f"{mode.value} decoding",
               disable=not settings.progress, dynamic_ncols=True)
    began, decoded = time.perf_counter(), 0
    with torch.inference_mode():
        for batch_positions in batches:
            batch = collate([examples[i] for i in batch_positions])
            inputs = _to_device(model_batch(captioner, batch, with_target=False), device)
            metas = batch[BatchKey.META]
            budgets = _budgets(metas, settings.words_per_second)
            ids, selected = captioner.generate(inputs, _budgeted(generation, parts, budgets))
            rows = []
            for b, (meta, tokens, chosen) in enumerate(zip(metas, ids, selected.cpu().tolist())):
                pred = parts.decode(tokens)
                if budgets is not None:
                    pred = fit_to_budget(pred, budgets[b])
                rows.append({"movie": meta["movie"], "index": meta["index"], "start": meta["start"],
                             "end": meta["end"], "gt": meta["text"], "pred": pred,
                             "context": _selected_context(meta, chosen),
                             **({"names": meta["names"]} if "names" in meta else {}),
                             **({"budget": budgets[b]} if budgets is not None else {})})
                if provider is not None:
                    provider.set_prediction(meta["movie"], meta["index"], pred)
            store.append(rows)
            decoded += len(rows)
            bar.update(len(rows))
    bar.close()
    return DecodeResult(store.rows, decoded, time.perf_counter() - began)


def _budgets(metas: Sequence[dict[str, Any]], words_per_second: float | None) -> list[int] | None:
    """Each AD's word budget from its cue's duration (None without a speaking rate)."""
    if words_per_second is None:
        return None
    return [word_budget(float(m["end"]) - float(m["start"]), words_per_second) for m in metas]


def _budgeted(generation: GenerationSettings, parts: Recipe, budgets: list[int] | None) -> GenerationSettings:
    """``generation`` with per-row token limits from the word budgets, and beams judged by their decoded words."""
    if budgets is None:
        return generation

    def fits(row: int, ids: list[int]) -> bool:
        return word_count(parts.decode(ids)) <= budgets[row]

    return replace(generation, row_token_limits=tuple(token_limit(b) for b in budgets), fits=fits)


def _storyboard_examples(parts: Recipe, cfg: DictConfig, clips: ADClipDataset) -> Dataset:
    """FocusedAD: the split's clips with their Storyboard-v2 records (and, in box mode, patch features), as its
    DataModule serves them to the :class:`~moviead.focused.data.FocusedCollator` of ``parts.collator``."""
    records = read_storyboard_records(Path(cfg.data.root) / cfg.data.storyboard.annotations)
    return storyboard_examples(clips, records, parts.data.patch_features)


def _restore_predictions(provider: PredictionContext, data: SplitData, store: PredictionStore) -> None:
    """Earlier predictions back into the recurrent context; ADs without frames (dropped) get an empty text."""
    for row in store.rows:
        provider.set_prediction(str(row["movie"]), int(row["index"]), str(row["pred"]))
    kept = {(item.record.movie, item.record.index) for item in data.items}
    every = [(ad.movie, ad.index) for ann in data.movies.values() for ad in ann.ads]
    missing = [key for key in every if key not in kept]
    for movie, index in missing:
        provider.set_prediction(movie, index, "")
    if missing:
        log.info("%d AD(s) of these movies are not decoded (no frames, or left out); as recurrent context they are "
                 "empty", len(missing))


def write_metrics(path: Path, scores: dict[str, float], unavailable: dict[str, str], info: dict[str, Any]) -> Path:
    """``metrics.json``: the run's identity (strings), the number of ADs, the scores, and what could not be scored."""
    body = {**info, **{k: float(v) for k, v in scores.items()}, "unavailable": unavailable}
    return write_text_atomically(path, json.dumps(body, indent=2, ensure_ascii=False) + "\n")
