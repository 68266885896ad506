import pytest
import torch

from moviead.metrics.retrieval import ranks_of_diagonal, retrieval_metrics


def test_ranks_on_a_fixed_matrix() -> None:
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.5, 0.2], [0.3, 0.9, 0.1]])
    assert ranks_of_diagonal(sim).tolist() == [1, 2, 3]
    assert ranks_of_diagonal(sim.T).tolist() == [1, 2, 2]  # row 1: 0.5 vs 0.1, 0.9; row 2: 0.1 vs 0.0, 0.2


def test_metrics_in_percent_and_median_rank() -> None:
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.5, 0.2], [0.3, 0.9, 0.1]])
    m = retrieval_metrics(sim, ks=(1, 2))
    assert m["t2v_r1"] == pytest.approx(100 / 3) and m["t2v_r2"] == pytest.approx(200 / 3) and m["t2v_medr"] == 2.0
    assert m["v2t_r1"] == pytest.approx(100 / 3) and m["v2t_r2"] == 100.0 and m["v2t_medr"] == 2.0


def test_ties_count_against_the_correct_item() -> None:
    assert retrieval_metrics(torch.zeros(4, 4), ks=(1,))["t2v_r1"] == 0.0
