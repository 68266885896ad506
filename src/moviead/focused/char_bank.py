"""Best query per character (FocusedAD §3.1, eqs. 1-3 as reconstructed in SPEC §5.4).

Portraits of character c give L2-normalised face embeddings E_c. k-means (k = 3) within E_c gives candidate
queries μ (the cluster centroids, L2-normalised: the bank stores unit vectors and recognition measures the
distance to them, so both distances below are taken from the vector that would be written):

- D_intra(μ) = mean ||e − μ||² over the faces of μ's cluster (eq. 1);
- D_inter(μ) = min over the other characters c′ of ||μ − q_c′||² (eq. 2);
- q_c = argmax_μ D_inter(μ) / (D_intra(μ) + ε) (eq. 3).

The q of the other characters are those chosen so far: each character starts from its tightest candidate, then
rounds over the characters (sorted by name, each update seen by the next) repeat until no q changes, at most
``max_rounds`` (10) times. A movie with one character has no D_inter: its tightest candidate is kept.

Our guard (not in the paper): a cluster of fewer than ``min_cluster_size`` faces (default 2) is not a
candidate unless no cluster is that large: a lone outlier's D_intra is 0, so eq. 3 would always pick it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moviead.data.formats.storyboard import write_best_query
from moviead.focused.face_sets import OTHER, FaceSet, normalise_rows

EPSILON = 1e-6


def kmeans(
    points: np.ndarray, k: int, seed: int = 0, n_init: int = 4, max_iter: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means with k-means++ seeding, best of ``n_init`` runs by inertia; deterministic for a seed.

    Args:
        points: (n, D) float, n >= k >= 1.

    Returns:
        centroids (k, D) float64 and labels (n,) int64 (every cluster non-empty).
    """
    points = np.asarray(points, dtype=np.float64)
    n = points.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 <= k <= n points, got k={k}, n={n}")
    rng = np.random.default_rng(seed)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for _ in range(n_init):
        centroids = points[[int(rng.integers(n))]]
        while len(centroids) < k:  # k-means++: next centre with probability ∝ squared distance to the nearest
            d2 = ((points[:, None] - centroids[None]) ** 2).sum(-1).min(1)
            pick = int(rng.choice(n, p=d2 / d2.sum())) if d2.sum() > 0 else int(rng.integers(n))
            centroids = np.concatenate([centroids, points[[pick]]])
        labels = np.full(n, -1)
        for _ in range(max_iter):
            new = ((points[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
            for j in range(k):  # an emptied cluster takes the point farthest from its centre
                if not (new == j).any():
                    far = ((points - centroids[new]) ** 2).sum(-1).argmax()
                    new[far] = j
            if (new == labels).all():
                break
            labels = new
            centroids = np.stack([points[labels == j].mean(0) for j in range(k)])
        inertia = float(((points - centroids[labels]) ** 2).sum())
        if best is None or inertia < best[0] - 1e-12:
            best = (inertia, centroids, labels.astype(np.int64))
    assert best is not None
    return best[1], best[2]


@dataclass(frozen=True)
class Candidates:
    """The candidate queries of one character: centroids (k, D) unit float64, D_intra (k,), cluster sizes (k,)."""

    centroids: np.ndarray
    intra: np.ndarray
    sizes: np.ndarray


def candidate_queries(embeddings: np.ndarray, k: int = 3, seed: int = 0) -> Candidates:
    """k-means (k, or n when fewer faces) of the (n, D) embeddings (L2-normalised first) → :class:`Candidates`."""
    faces = normalise_rows(embeddings).astype(np.float64)
    centroids, labels = kmeans(faces, min(k, len(faces)), seed=seed)
    unit = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)
    intra = np.array([((faces[labels == j] - unit[j]) ** 2).sum(1).mean() for j in range(len(unit))])
    return Candidates(unit, intra, np.bincount(labels, minlength=len(unit)))


@dataclass(frozen=True)
class BestQueries:
    """The result of :func:`choose_best_queries`.

    Attributes:
        queries: name → (D,) float32 unit vector.
        chosen: name → index of the chosen candidate.
        candidates: name → its :class:`Candidates`.
        scores: name → (k,) D_inter / (D_intra + ε) in the last round (-inf for excluded candidates).
        rounds: rounds run; converged: whether the last round changed nothing.
    """

    queries: dict[str, np.ndarray]
    chosen: dict[str, int]
    candidates: dict[str, Candidates]
    scores: dict[str, np.ndarray]
    rounds: int
    converged: bool


def choose_best_queries(
    embeddings: Mapping[str, np.ndarray], k: int = 3, max_rounds: int = 10, eps: float = EPSILON,
    min_cluster_size: int = 2, seed: int = 0,
) -> BestQueries:
    """Best query of each character of one movie (module docstring).

    Args:
        embeddings: name → (n_c, D) face embeddings of that character's portraits (n_c >= 1).
        k: clusters per character; max_rounds: rounds over the characters; eps: ε of eq. 3.
        min_cluster_size: smaller clusters are candidates only when no cluster is this large.
        seed: k-means seed (each character uses ``seed`` + its position in name order).
    """
    names = sorted(embeddings)
    empty = [n for n in names if len(embeddings[n]) == 0]
    if not names or empty:
        raise ValueError(f"every character needs at least one face embedding (none for {empty or 'any character'})")
    candidates = {n: candidate_queries(embeddings[n], k, seed + i) for i, n in enumerate(names)}
    eligible = {}
    for n, cand in candidates.items():
        large = cand.sizes >= min_cluster_size
        eligible[n] = large if large.any() else np.ones_like(large)
    chosen = {n: int(np.where(eligible[n], candidates[n].intra, np.inf).argmin()) for n in names}
    scores: dict[str, np.ndarray] = {}
    rounds, converged = 0, False
    while rounds < max_rounds and not converged:
        rounds += 1
        converged = True
        for name in names:
            cand = candidates[name]
            others = [candidates[o].centroids[chosen[o]] for o in names if o != name]
            if others:
                inter = ((cand.centroids[:, None] - np.stack(others)[None]) ** 2).sum(-1).min(1)  # (k,)
            else:  # a single character: no D_inter, the tightest candidate wins
                inter = np.ones(len(cand.intra))
            score = np.where(eligible[name], inter / (cand.intra + eps), -np.inf)
            scores[name] = score
            best = int(score.argmax())
            if best != chosen[name]:
                chosen[name], converged = best, False
    queries = {n: candidates[n].centroids[chosen[n]].astype(np.float32) for n in names}
    return BestQueries(queries, chosen, candidates, scores, rounds, converged)


@dataclass(frozen=True)
class BankReport:
    """What :func:`write_bank` wrote: paths per (imdbid, name), and per movie the rounds and convergence."""

    written: dict[tuple[str, str], Path]
    rounds: dict[str, int]
    converged: dict[str, bool]


def write_bank(
    faces: FaceSet, out: str | Path, k: int = 3, max_rounds: int = 10, eps: float = EPSILON,
    min_cluster_size: int = 2, seed: int = 0,
) -> BankReport:
    """Choose and write ``out/{imdbid}/{NAME}.npy`` (float32 (1, D), unit) for every character of ``faces``.

    Faces labelled ``"other"`` are ignored. ``out`` is the ``best_query`` folder.
    """
    written: dict[tuple[str, str], Path] = {}
    rounds: dict[str, int] = {}
    converged: dict[str, bool] = {}
    for movie, movie_faces in faces.by_movie().items():
        named = movie_faces.select(movie_faces.labels != OTHER)
        per_name = {str(n): named.embeddings[named.labels == n] for n in sorted(set(named.labels.tolist()))}
        if not per_name:
            continue
        best = choose_best_queries(per_name, k, max_rounds, eps, min_cluster_size, seed)
        for name, query in best.queries.items():
            written[(movie, name)] = write_best_query(out, movie, name, query)
        rounds[movie], converged[movie] = best.rounds, best.converged
    return BankReport(written, rounds, converged)
