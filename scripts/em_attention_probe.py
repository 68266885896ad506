"""What DistinctAD's contextual EM attention keeps of a clip on toy world v2: a linear probe, no decoder.

For every AD of the world's MAD part with ``--context`` previous ADs, the clip's frames (``--frames`` linspace
frames of its interval) and those of the previous ADs' intervals (DistinctAD's neighbouring clips, as the recipe
builds them) go through :class:`~moviead.models.em_attention.ContextualEMAttention` with the tiny recipe's settings
(its initial bases are a fixed buffer: the module has no trained weights, so what it keeps is decided here). The
probe reports, for each representation of the clip, the held-out (VAL movies; ``--held-out EVAL``: the test
movies) accuracy of a ridge classifier fitted on the training movies for the AD's **action** and **object** (what
tells a clip apart in world v2), and the mean cosine of the clip's representation with the previous clip's (lower =
more distinct from its neighbour):

- ``frames``: the mean of the clip's frames (what the no-EM ablation gives the projector, as tokens);
- ``residual``: the mean of X_cur - Z_cur mu (what ``ema_output: residual`` adds);
- ``reconstruction``: the mean of Z_cur mu (the part the bases explain);
- ``bases + residual``: the concatenation of the mean of the K bases and the residual mean.

Usage (world from ``moviead make-toy-data --world v2 --movies 12 --out DIR``)::

    .venv/bin/python scripts/em_attention_probe.py DIR [--bases 8] [--lam 10] [--iters 3] [--context 3]

Measured on 2026-12-03 (the ablations' world: 12 movies, seed 0; 273 TRAIN and 73 VAL ADs; the tiny recipe's
K = 8, lambda = 10, 3 iterations, 3 neighbouring clips of 8 frames), VAL action / object accuracy and the cosine with
the previous clip's representation, for bases estimated from the clip and its neighbours (SPEC) and from the
neighbours only (``bases_from: context``, the recipe's since session 14):

    frames                               1.000 / 1.000   0.597
    residual [clip_and_context]          0.699 / 0.685   0.442
    bases + residual [clip_and_context]  0.904 / 0.726   0.896
    residual [context]                   0.959 / 0.973   0.094
    bases + residual [context]           1.000 / 1.000   0.601

With the clip in the EM, some of the 8 bases fit the clip itself (its residual keeps 17 % of the frames' energy),
so the residual loses what tells the clip apart; from the neighbours only, the bases hold what the context shares and
the residual keeps the clip's action and object. (2026-12-02, VAL + EVAL scored together, SPEC's X only: K = 2
gave residual 0.882 / 0.908, K = 4 0.778 / 0.778, K = 16 0.719 / 0.712; probe only, the recipe keeps 8.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from moviead.data.formats.mad import index_by_movie, read_ad_csv, read_split_json, read_subtitles_csv
from moviead.data.frames import interval_frames
from moviead.models.em_attention import BASES_FROM, ContextualEMAttention
from moviead.toy.grammar_v2 import parse_toy_text


def clip(signal: np.ndarray, start: float, end: float, frames: int, fps: float) -> np.ndarray:
    """(frames, D) linspace frames of an interval."""
    first, last = interval_frames(start, end, fps)
    return signal[np.linspace(first, min(last, len(signal) - 1), frames).round().astype(int)]


def load(root: Path, frames: int, context: int, fps: float, held_out_split: str = "VAL") -> list[dict]:
    """One record per AD with ``context`` previous ADs: its clip, the previous clips, labels, held-out flag (the AD's
    movie is in ``held_out_split``; TRAIN movies are the probe's training set, the other splits are left out)."""
    mad = root / "mad"
    movies = index_by_movie(read_ad_csv(mad / "mad-v2-ad-named.csv"), read_subtitles_csv(mad / "mad-v2-subs.csv"))
    split = read_split_json(mad / "mad_split.json")
    held_out, train = set(split[held_out_split]), set(split["TRAIN"])
    records = []
    with h5py.File(mad / "CLIP_L14_frames_features_5fps.h5", "r") as h5:
        for movie, annotations in movies.items():
            if movie not in held_out and movie not in train:
                continue
            signal = h5[movie][()].astype(np.float32)
            ads = annotations.ads
            for i in range(context, len(ads)):
                parsed = parse_toy_text(ads[i].text)
                if parsed is None:
                    continue
                records.append({
                    "clip": clip(signal, ads[i].start, ads[i].end, frames, fps),
                    "context": np.concatenate([clip(signal, a.start, a.end, frames, fps) for a in ads[i - context:i]]),
                    "action": parsed.action, "object": parsed.obj, "held_out": movie in held_out,
                })
    return records


def ridge_accuracy(x_train: np.ndarray, y_train: list[str], x_test: np.ndarray, y_test: list[str],
                   alpha: float = 1.0) -> float:
    """Held-out accuracy of a one-vs-rest ridge classifier on standardised features."""
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    a, b = (x_train - mean) / std, (x_test - mean) / std
    classes = sorted(set(y_train))
    targets = np.array([[1.0 if y == c else 0.0 for c in classes] for y in y_train])
    weights = np.linalg.solve(a.T @ a + alpha * len(a) * np.eye(a.shape[1]), a.T @ targets)
    guess = [classes[k] for k in (b @ weights).argmax(1)]
    return float(np.mean([g == y for g, y in zip(guess, y_test)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("world", type=Path)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--context", type=int, default=3)
    parser.add_argument("--bases", type=int, default=8)
    parser.add_argument("--lam", type=float, default=10.0)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--held-out", default="VAL", choices=["VAL", "EVAL"],
                        help="the split the probe is scored on (VAL: the one to decide on; EVAL is the test movies)")
    args = parser.parse_args()
    records = load(args.world, args.frames, args.context, args.fps, args.held_out)
    clips = torch.from_numpy(np.stack([r["clip"] for r in records]))  # (N, F, D)
    contexts = torch.from_numpy(np.stack([r["context"] for r in records]))  # (N, C*F, D)
    representations, previous = {}, {}
    for bases_from in BASES_FROM:
        em = ContextualEMAttention(clips.shape[-1], num_bases=args.bases, n_iters=args.iters, lam=args.lam,
                                   output="both", bases_from=bases_from)
        representations.update(views(em, clips, contexts))
        # the previous clip, seen the same way (its own neighbours: the clips before it, one fewer)
        previous.update(views(em, contexts[:, -args.frames:], contexts[:, : -args.frames]))
    train = [i for i, r in enumerate(records) if not r["held_out"]]
    test = [i for i, r in enumerate(records) if r["held_out"]]
    print(f"{len(train)} training and {len(test)} held-out ADs; K = {args.bases}, lambda = {args.lam}, "
          f"{args.iters} iterations, {args.context} neighbouring clips of {args.frames} frames")
    for bases_from in BASES_FROM:
        energy = ((representations[f"residual [{bases_from}]"].norm(dim=-1) ** 2).mean()
                  / (representations["frames"].norm(dim=-1) ** 2).mean())
        print(f"residual energy / frame energy (clip means), bases from {bases_from}: {float(energy):.3f}")
    print(f"| representation | action acc ({args.held_out}) | object acc ({args.held_out}) | "
          "cos with the previous clip's |")
    print("|---|---|---|---|")
    for name, rep in representations.items():
        x = rep.numpy()
        accs = [ridge_accuracy(x[train], [records[i][key] for i in train], x[test], [records[i][key] for i in test])
                for key in ("action", "object")]
        cosine = float(F.cosine_similarity(rep, previous[name], dim=-1).mean())
        print(f"| {name} | {accs[0]:.3f} | {accs[1]:.3f} | {cosine:.3f} |")


@torch.no_grad()
def views(em: ContextualEMAttention, clips: torch.Tensor, contexts: torch.Tensor) -> dict[str, torch.Tensor]:
    """The probe's representations of ``clips`` (N, F, D) with neighbours ``contexts`` (N, C*F, D): each (N, D')."""
    out = em(clips, torch.ones(clips.shape[:2], dtype=torch.bool), contexts,
             torch.ones(contexts.shape[:2], dtype=torch.bool))
    frames = F.normalize(clips, dim=-1) if em.normalize_input else clips
    tag = f" [{em.bases_from}]"
    return {
        "frames": frames.mean(1),
        "residual" + tag: out.residual.mean(1),
        "reconstruction" + tag: (frames - out.residual).mean(1),
        "bases + residual" + tag: torch.cat([out.bases.mean(1), out.residual.mean(1)], dim=-1),
    }

if __name__ == "__main__":
    main()
