"""Can LoCo-MAD's DSM learn to select on toy world v2? The DSM alone (no decoder), on the world's MAD part.

For every AD of the world with a context proposal (L_c = 10 previous items, oracle), the probe knows which items
belong to the AD's storyline (the manifest's scenes) and reports, on the held-out movies (VAL and EVAL), the
**precision of the top k**: the fraction of selected items of the AD's own storyline (chance: about 0.3-0.5 with
2-3 storylines). Three selectors:

- ``zero-shot``: the k items with the highest ``cos(T_i, v)`` (no training);
- ``ccl``: a :class:`~moviead.models.dsm.DynamicSelectionModule` trained on the training movies with the paper's
  contextual contrastive loss only (what Stage-II gives it besides nothing: its top-k is not differentiable);
- ``supervised``: the same module trained with the storyline labels (binary cross-entropy on its logits), an upper
  bound for what its sampler can learn from this much data.

Usage (world from ``moviead make-toy-data --world v2 --movies 12 --out DIR``)::

    .venv/bin/python scripts/dsm_selection_probe.py DIR --objective ccl --epochs 60

Measured on 2026-12-02 (12 movies, seed 0, the toy text tower, 297 training and 165 held-out ADs, k = 3): zero-shot
0.729; ccl 0.27-0.34 over 60 epochs (chance; training loss 4.59 -> 1.77); supervised 0.29 for 15 epochs, then
0.44-0.66 (0.61 at epoch 30, training loss 0.21): the sampler can learn the storyline from labels, not from the CCL.

``--train-selection`` (2026-12-02, session 11; same world, 60 epochs; default ``sample``, the library's): with the
DSM's top k in training (``top_k``, what the runs above used) held-out precision@3 stays at 0.29-0.36 (training loss 4.44 -> 1.52); drawing the k items
from the softmax in training (``sample``, eq. 7's "Sampler", now the default) it rises to 0.42 (epoch 12), 0.55
(18) and 0.58-0.65 (24-36), falls back to 0.37 (42) as the training loss rises again (0.64 -> 1.30), and ends at
0.52 (epoch 59).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from moviead.data.context import ContextBuilder
from moviead.data.formats.mad import index_by_movie, read_ad_csv, read_split_json, read_subtitles_csv
from moviead.data.frames import interval_frames
from moviead.data.sentence_features import SentenceFeatureBank
from moviead.losses.contextual import dsm_contextual_loss
from moviead.models.dsm import DynamicSelectionModule

Example = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # frames (F, D), items (P, Dc), same storyline (P,)


def load_examples(root: Path, encoder: str, frames: int, fps: float) -> tuple[list[Example], list[Example]]:
    """(training examples, held-out examples) of a v2 world at ``root``."""
    mad = root / "mad"
    movies = index_by_movie(read_ad_csv(mad / "mad-v2-ad-named.csv"), read_subtitles_csv(mad / "mad-v2-subs.csv"))
    scenes = json.loads((root / "toy_manifest.json").read_text(encoding="utf-8"))["movies"]
    split = read_split_json(mad / "mad_split.json")
    held_out = set(split.get("VAL", [])) | set(split["EVAL"])
    bank = SentenceFeatureBank(encoder)
    builder = ContextBuilder(movies, mode="oracle", context_size=10, max_subtitles=100)
    train, test = [], []
    with h5py.File(mad / "CLIP_L14_frames_features_5fps.h5", "r") as h5:
        for movie, annotations in movies.items():
            signal = h5[movie][()].astype(np.float32)  # (T, D)
            story_of = [scenes[movie]["scene_storyline"][s] for s in scenes[movie]["ad_scene"]]
            for ad in annotations.ads:
                items = builder.build_proposal(ad)
                if not items:
                    continue
                first, last = interval_frames(ad.start, ad.end, fps)
                picks = np.linspace(first, min(last, len(signal) - 1), frames).round().astype(int)
                same = torch.tensor([it.ad is not None and story_of[it.ad.index] == story_of[ad.index] for it in items])
                example = (torch.from_numpy(signal[picks]), bank([it.feature_text for it in items]), same)
                (test if movie in held_out else train).append(example)
    return train, test


def collate(examples: list[Example]) -> tuple[torch.Tensor, ...]:
    """frames (B, F, D), items (B, P, Dc) left-padded, valid (B, P), same storyline (B, P)."""
    width = max(e[1].shape[0] for e in examples)
    items = torch.zeros(len(examples), width, examples[0][1].shape[1])
    valid = torch.zeros(len(examples), width, dtype=torch.bool)
    same = torch.zeros_like(valid)
    for row, (_, feats, labels) in enumerate(examples):
        n = feats.shape[0]
        items[row, width - n:], valid[row, width - n:], same[row, width - n:] = feats, True, labels
    return torch.stack([e[0] for e in examples]), items, valid, same


def precision(selected: torch.Tensor, same: torch.Tensor) -> float:
    """Fraction of the selected items that are of the AD's storyline."""
    return (selected & same).sum().item() / max(1, selected.sum().item())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="a toy world v2 folder (moviead make-toy-data --world v2)")
    parser.add_argument("--objective", choices=("zero-shot", "ccl", "supervised"), default="ccl")
    parser.add_argument("--encoder", default=None, help="sentence encoder spec (default: bow:<root>/encoders/toy-text-tower)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-selection", choices=("top_k", "sample"), default="sample",
                        help="the DSM's selection in training: its top k, or k drawn from its softmax")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    encoder = args.encoder or f"bow:{args.root / 'encoders' / 'toy-text-tower'}"
    train, test = load_examples(args.root, encoder, frames=8, fps=5.0)
    frames, items, valid, same = collate(test)
    print(f"{len(train)} training and {len(test)} held-out ADs; encoder {encoder}")
    if args.objective == "zero-shot":
        cosine = torch.einsum("bpd,bd->bp", F.normalize(items, dim=-1), F.normalize(frames.mean(1), dim=-1))
        top = cosine.masked_fill(~valid, -2.0).topk(args.top_k, dim=1).indices
        selected = torch.zeros_like(valid).scatter_(1, top, True) & valid
        print(f"zero-shot precision@{args.top_k}: {precision(selected, same):.3f}")
        return
    dsm = DynamicSelectionModule(items.shape[-1], frames.shape[-1], n_layers=2, n_heads=4, top_k=args.top_k,
                                 dropout=0.0, max_proposal=11,
                                 train_selection=args.train_selection)
    optimiser = torch.optim.AdamW(dsm.parameters(), lr=args.lr, weight_decay=0.01)
    for epoch in range(args.epochs):
        order, losses = torch.randperm(len(train)).tolist(), []
        for start in range(0, len(train), 16):
            x, t, v, labels = collate([train[i] for i in order[start:start + 16]])
            if args.objective == "ccl":
                loss = dsm_contextual_loss(dsm(t, v, x))
            else:
                logits = dsm.relevance_logits(t, v, x, None)
                loss = F.binary_cross_entropy_with_logits(logits[v], labels[v].float())
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        if epoch % max(1, args.epochs // 10) == 0 or epoch == args.epochs - 1:
            with torch.no_grad():
                held = precision(dsm.eval()(items, valid, frames).selected, same)
            dsm.train()
            print(f"epoch {epoch}: training loss {np.mean(losses):.3f}, held-out precision@{args.top_k} {held:.3f}")


if __name__ == "__main__":
    main()
