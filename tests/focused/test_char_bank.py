"""Best query per character (SPEC §5.4): k-means candidates, D_intra / D_inter objective, the written bank."""

from __future__ import annotations

import math

import numpy as np
import pytest

from moviead.data.formats.storyboard import read_best_query_bank
from moviead.focused.char_bank import candidate_queries, choose_best_queries, kmeans, write_bank
from moviead.focused.face_sets import make_face_set


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _cluster(centre: list[float], spread: float, seed: int, n: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return _unit(np.asarray(centre, dtype=np.float64) + spread * rng.standard_normal((n, len(centre))))


def test_d_intra_of_a_single_cluster_is_hand_computed() -> None:
    cand = candidate_queries(np.array([[1.0, 0.0], [0.0, 1.0]]), k=1)
    np.testing.assert_allclose(cand.centroids, [[math.sqrt(0.5), math.sqrt(0.5)]])
    np.testing.assert_allclose(cand.intra, [2 - math.sqrt(2)])  # mean ||e - μ||² = 2 - 2 cos 45°
    assert cand.sizes.tolist() == [2]


def test_kmeans_finds_separated_clusters_and_is_deterministic() -> None:
    points = np.concatenate([_cluster([1, 0, 0], 0.01, 0), _cluster([0, 1, 0], 0.01, 1), _cluster([0, 0, 1], 0.01, 2)])
    centroids, labels = kmeans(points, 3, seed=3)
    assert sorted(np.bincount(labels).tolist()) == [5, 5, 5]
    assert len({tuple(labels[i : i + 5]) for i in (0, 5, 10)}) == 3  # each cluster one label
    again = kmeans(points, 3, seed=3)
    np.testing.assert_array_equal(again[1], labels)
    np.testing.assert_array_equal(again[0], centroids)


def test_objective_prefers_the_tight_well_separated_centroid() -> None:
    """A's tightest cluster lies next to B's face: eq. 3 trades it for a slightly looser, far one."""
    far_tight = _cluster([0, 1, 0, 0], 0.02, 1)
    loose = _cluster([0, 0, 1, 0], 0.30, 2)
    near_b = _cluster([1, 0.25, 0, 0.25], 0.005, 3)  # the tightest of A's clusters, close to B
    b_faces = _cluster([1, 0, 0, 0], 0.01, 4, n=6)
    result = choose_best_queries({"A": np.concatenate([far_tight, loose, near_b]), "B": b_faces})
    cand = result.candidates["A"]
    order = [int(np.argmax(cand.centroids @ _unit(np.mean(c, 0)))) for c in (far_tight, loose, near_b)]
    assert sorted(order) == [0, 1, 2]  # k-means recovered the three clusters
    assert cand.intra[order[2]] < cand.intra[order[0]] < cand.intra[order[1]]
    assert result.chosen["A"] == order[0]
    np.testing.assert_allclose(result.queries["A"], _unit(far_tight.mean(0)), atol=1e-6)
    assert result.converged and 2 <= result.rounds <= 10  # A moved away from its tightest cluster in round 1
    assert result.scores["A"][order[0]] == max(result.scores["A"])


def test_a_lone_outlier_is_not_a_candidate_while_larger_clusters_exist() -> None:
    faces = np.concatenate([_cluster([1, 0, 0], 0.05, 0), _cluster([0, 1, 0], 0.05, 1), _unit(np.array([[0, 0, 1.0]]))])
    result = choose_best_queries({"A": faces})  # alone in its movie: the tightest eligible cluster
    assert result.candidates["A"].sizes[result.chosen["A"]] == 5
    everything = choose_best_queries({"A": faces}, min_cluster_size=1)
    np.testing.assert_allclose(everything.queries["A"], [0, 0, 1], atol=1e-7)  # D_intra 0 wins without the guard


def test_a_character_without_faces_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one face"):
        choose_best_queries({"A": np.zeros((0, 4)), "B": np.eye(4)})


def test_write_bank_writes_unit_float32_queries_readable_as_a_bank(tmp_path) -> None:
    a, b, c = _cluster([1, 0, 0], 0.05, 0, 4), _cluster([0, 1, 0], 0.05, 1, 4), _cluster([0, 0, 1], 0.05, 2, 3)
    faces = make_face_set(np.concatenate([a, b, c, c[:1]]), ["ANNA"] * 4 + ["BEN"] * 4 + ["CARL"] * 3 + ["other"],
                          ["tt01"] * 8 + ["tt02"] * 4)
    report = write_bank(faces, tmp_path / "best_query")
    assert sorted(report.written) == [("tt01", "ANNA"), ("tt01", "BEN"), ("tt02", "CARL")]
    bank = read_best_query_bank(tmp_path)
    assert {m: sorted(v) for m, v in bank.items()} == {"tt01": ["ANNA", "BEN"], "tt02": ["CARL"]}
    vector = np.load(tmp_path / "best_query" / "tt01" / "ANNA.npy")
    assert vector.dtype == np.float32 and vector.shape == (1, 3)
    assert abs(float(np.linalg.norm(vector)) - 1) < 1e-6
    assert float(vector[0] @ _unit(a.mean(0))) > 0.99
