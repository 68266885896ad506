"""R@k/N, recall within neighbours (AutoAD-II, Han et al. 2023), exactly as its released evaluation computes it.

Per movie, with its N_m ADs in time order and one generated AD per ground-truth AD:

1. S (N_m, N_m): S[i, j] = BERTScore F1 between generated AD i and ground-truth AD j (the release scores the
   ground truth as candidates against the generated ADs as references, as here; F1 is symmetric in the two);
2. windows of N consecutive ADs starting at 0, N//2, 2(N//2), ... while a whole window fits: a trailing partial
   window is dropped, so the last ADs of a movie may be in no window;
3. in each window, the top-k accuracy of the diagonal: the fraction of rows i whose own column i is among the k
   highest of the row, as ``torch.topk`` orders them (so ties fall as topk breaks them, as in the release);
4. the mean over the movie's windows, then the mean over movies.

Baseline rescaling maps every score through the same increasing function, so it changes no rank and no R@k/N.
A movie with fewer than N ADs has no window: it is skipped with a warning (the release would crash). Results are
fractions in [0, 1]. Defaults: N = 16, k in {1, 5}.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Mapping, Sequence

import torch

from moviead.metrics.bertscore import BertScore

Similarities = Mapping[Hashable, torch.Tensor] | Sequence[torch.Tensor]  # per movie: (n, n), a list or movie -> matrix


def window_starts(n: int, window: int) -> range:
    """First index of every window over n items: 0, window//2, ... while the whole window fits."""
    if window < 2:
        raise ValueError(f"window must be at least 2 (its stride is window // 2), got {window}")
    return range(0, n - window + 1, window // 2)


def _as_named(similarity: Similarities) -> list[tuple[Hashable, torch.Tensor]]:
    if isinstance(similarity, Mapping):
        return list(similarity.items())
    if isinstance(similarity, torch.Tensor):
        raise TypeError("pass a list (or dict) of per-movie (n, n) matrices, not one tensor")
    return list(enumerate(similarity))


def movie_topk_accuracy(sim: torch.Tensor, ks: Sequence[int], window: int = 16) -> torch.Tensor | None:
    """Mean over the windows of one movie of the diagonal's top-k accuracy, for each k.

    Args:
        sim: (n, n) similarities, rows generated ADs, columns ground-truth ADs, both in time order.
        ks: the k values, each in 1..window.
        window: N, the window length.

    Returns:
        (len(ks),) float64, or None when the movie is shorter than one window.
    """
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"expected a square (n, n) similarity matrix, got shape {tuple(sim.shape)}")
    if not ks or min(ks) < 1 or max(ks) > window:
        raise ValueError(f"every k must be in 1..{window}, got {list(ks)}")
    starts = window_starts(sim.shape[0], window)
    if len(starts) == 0:
        return None
    target = torch.arange(window, device=sim.device)
    per_window = []
    for s in starts:
        block = sim[s : s + window, s : s + window]
        if torch.isnan(block).any():
            raise ValueError(f"NaN similarity inside the window starting at {s}")
        top = block.topk(max(ks), dim=1, largest=True, sorted=True).indices  # (window, max k)
        hits = top == target[:, None]
        per_window.append(torch.stack([hits[:, :k].any(dim=1).double().mean() for k in ks]))
    return torch.stack(per_window).mean(dim=0).cpu()


def recall_at_ks_within_neighbours(
    similarity: Similarities, ks: Sequence[int] = (1, 5), window: int = 16
) -> dict[int, float]:
    """R@k/N for several k: mean over movies of :func:`movie_topk_accuracy`; k -> value (NaN if no movie counts).

    Args:
        similarity: per movie (a list, or a dict movie -> matrix for named warnings), an (n, n) matrix as in
            :func:`movie_topk_accuracy`. Movies shorter than ``window`` are skipped with a warning.
    """
    per_movie = []
    for name, sim in _as_named(similarity):
        accuracy = movie_topk_accuracy(sim, ks, window)
        if accuracy is None:
            warnings.warn(
                f"R@k/{window}: movie {name!r} has {sim.shape[0]} ADs, fewer than the window of {window}: skipped",
                stacklevel=2,
            )
            continue
        per_movie.append(accuracy)
    if not per_movie:
        warnings.warn(f"R@k/{window}: no movie has {window} ADs or more; the result is NaN", stacklevel=2)
        return {k: math.nan for k in ks}
    mean = torch.stack(per_movie).mean(dim=0)
    return {k: mean[i].item() for i, k in enumerate(ks)}


def recall_at_k_within_neighbours(
    similarity: Similarities, k: int, window: int = 16
) -> float:
    """R@k/N from per-movie (n, n) similarity matrices (see the module doc); a fraction in [0, 1]."""
    return recall_at_ks_within_neighbours(similarity, (k,), window)[k]


def neighbour_pairs(n: int, window: int = 16) -> list[tuple[int, int]]:
    """The (row, column) entries of an (n, n) matrix that some window reads, in row-major order."""
    needed = set()
    for s in window_starts(n, window):
        needed.update((i, j) for i in range(s, s + window) for j in range(s, s + window))
    return sorted(needed)


def bertscore_similarity(
    generated: Sequence[str], ground_truth: Sequence[str], scorer: BertScore, window: int | None = 16
) -> torch.Tensor:
    """(n, n) BERTScore F1 of generated AD i (row) and ground-truth AD j (column) of one movie.

    Only the entries some window of ``window`` ADs reads are computed (about 1.5 n * window of them); the others
    are NaN. ``window=None`` computes the whole matrix.
    """
    n = len(generated)
    if len(ground_truth) != n:
        raise ValueError(f"{n} generated ADs for {len(ground_truth)} ground-truth ADs")
    pairs = [(i, j) for i in range(n) for j in range(n)] if window is None else neighbour_pairs(n, window)
    sim = torch.full((n, n), math.nan)
    if pairs:
        rows, cols = torch.tensor(pairs).T
        # as the release: ground truth as the candidates, generated ADs as the references
        sim[rows, cols] = scorer.f1([ground_truth[j] for _, j in pairs], [generated[i] for i, _ in pairs]).float()
    return sim


def recall_within_neighbours(
    generated: Mapping[Hashable, Sequence[str]],
    ground_truth: Mapping[Hashable, Sequence[str]],
    ks: Sequence[int] = (1, 5),
    window: int = 16,
    scorer: BertScore | None = None,
) -> dict[str, float]:
    """R@k/N from texts: movie -> ADs in time order on both sides (same movies, same counts).

    Args:
        scorer: the BERTScore model; default :class:`BertScore` (roberta-large, rescaled), which must be local.

    Returns:
        ``{"r@{k}/{window}": value}`` for each k, fractions in [0, 1].
    """
    if set(generated) != set(ground_truth):
        raise ValueError("generated and ground-truth ADs must cover the same movies")
    uneven = [m for m, gt in ground_truth.items() if len(gt) != len(generated[m])]
    if uneven:
        raise ValueError(f"movies with different numbers of generated and ground-truth ADs: {uneven[:5]}")
    scorer = scorer if scorer is not None else BertScore()
    matrices = {}
    for movie, gt in ground_truth.items():
        if len(gt) < window:  # no window: skip the model, the warning comes below
            matrices[movie] = torch.zeros(len(gt), len(gt))
        else:
            matrices[movie] = bertscore_similarity(generated[movie], gt, scorer, window)
    scores = recall_at_ks_within_neighbours(matrices, ks, window)
    return {f"r@{k}/{window}": value for k, value in scores.items()}
