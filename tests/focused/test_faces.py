"""The MTCNN + InceptionResnetV1 path: clear errors when facenet-pytorch or the weights are missing, and the
detect → filter → embed → recognise logic with stand-in models."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from moviead.focused.faces import (
    FaceEmbedder,
    detect_characters,
    load_face_embedder,
    portrait_faces,
    record_detections,
)


def test_missing_weights_say_which_file_to_give(tmp_path) -> None:
    for weights in (None, tmp_path / "absent.pt"):
        with pytest.raises(FileNotFoundError, match="InceptionResnetV1 weights not found.*20180402-114759-vggface2"):
            load_face_embedder(weights)


def test_missing_facenet_pytorch_says_how_to_install_it(tmp_path, monkeypatch) -> None:
    weights = tmp_path / "vggface2.pt"
    torch.save({}, weights)
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"pip install --no-deps facenet-pytorch==2\.6\.0"):
        load_face_embedder(weights)


def test_weights_of_another_model_are_rejected(tmp_path) -> None:
    pytest.importorskip("facenet_pytorch")
    weights = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(1)}, weights)
    with pytest.raises(ValueError, match="is not an InceptionResnetV1 state dict"):
        load_face_embedder(weights)


def _stub_facenet(monkeypatch) -> type[torch.nn.Module]:
    """facenet-pytorch as the loader uses it (InceptionResnetV1(pretrained=None, classify=False), MTCNN(**kw)), with a
    one-layer stand-in network, so that the state-dict checks run without the package (installed apart: faces.py)."""
    import types

    class StandIn(torch.nn.Module):
        def __init__(self, pretrained=None, classify=False) -> None:
            super().__init__()
            assert pretrained is None and classify is False  # the loader supplies the weights and wants embeddings
            self.last_linear = torch.nn.Linear(2, 2)

    module = types.ModuleType("facenet_pytorch")
    module.InceptionResnetV1 = StandIn
    module.MTCNN = lambda **kwargs: types.SimpleNamespace(**kwargs)
    monkeypatch.setitem(sys.modules, "facenet_pytorch", module)
    return StandIn


def test_the_loader_drops_the_classifier_head_and_rejects_another_models_weights(tmp_path, monkeypatch) -> None:
    stand_in = _stub_facenet(monkeypatch)
    torch.manual_seed(0)
    state = stand_in().state_dict()
    weights = tmp_path / "vggface2.pt"
    torch.save({"state_dict": {**state, "logits.weight": torch.zeros(3, 2)}}, weights)  # VGGFace2's head, wrapped
    embedder = load_face_embedder(weights, min_confidence=0.8)
    assert isinstance(embedder, FaceEmbedder) and embedder.min_confidence == 0.8
    for name, value in state.items():
        assert torch.equal(embedder.embedder.state_dict()[name], value)
    assert embedder.detector.keep_all and embedder.detector.image_size == 160
    other = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(1)}, other)
    with pytest.raises(ValueError, match="other.pt is not an InceptionResnetV1 state dict"):
        load_face_embedder(other)
    torch.save(torch.zeros(2), other)
    with pytest.raises(ValueError, match="expected an InceptionResnetV1 state dict, found Tensor"):
        load_face_embedder(other)


class _Detector:
    """MTCNN's interface: three faces with confidences 0.95, 0.5, 0.8; crops whose mean is the face index + 1."""

    boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 0, 60, 20]], dtype=np.float32)
    probs = np.array([0.95, 0.5, 0.8], dtype=np.float32)

    def detect(self, image):
        return self.boxes, self.probs

    def extract(self, image, boxes, save_path):
        index = [int(np.nonzero((self.boxes == b).all(1))[0][0]) for b in boxes]
        return torch.stack([torch.full((3, 4, 4), float(i + 1)) for i in index])


class _Embedder(torch.nn.Module):
    """Crop with mean m → the (unnormalised) vector (m, 1): face 1 → (1, 1), face 3 → (3, 1)."""

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        mean = crops.mean((1, 2, 3))
        return torch.stack([mean, torch.ones_like(mean)], 1)


def test_faces_below_confidence_are_dropped_and_embeddings_normalised() -> None:
    found = FaceEmbedder(_Detector(), _Embedder()).faces(Image.new("RGB", (64, 32)))
    np.testing.assert_allclose(found.confidences, [0.95, 0.8])
    np.testing.assert_allclose(found.boxes, _Detector.boxes[[0, 2]])
    np.testing.assert_allclose(found.embeddings, [[2**-0.5, 2**-0.5], [3 / 10**0.5, 1 / 10**0.5]], rtol=1e-6)


def test_detect_characters_writes_storyboard_entries() -> None:
    queries = {"ANNA": np.array([[2**-0.5, 2**-0.5]]), "BEN": np.array([[0.0, 1.0]])}
    entries = detect_characters(Image.new("RGB", (64, 32)), FaceEmbedder(_Detector(), _Embedder()), queries, 0.3)
    assert [list(e) for e in entries] == [["ANNA"], ["other"]]  # face 3 is 0.46 from ANNA: beyond τ = 0.3
    assert entries[0]["ANNA"][:5] == [0.0, 0.0, 10.0, 10.0, pytest.approx(0.95)]
    assert entries[0]["ANNA"][5] == pytest.approx(0.0, abs=1e-6)
    distance = float(np.linalg.norm([3 / 10**0.5 - 2**-0.5, 1 / 10**0.5 - 2**-0.5]))
    assert entries[1]["other"][5] == pytest.approx(distance)
    keys = record_detections(Image.new("RGB", (64, 32)), FaceEmbedder(_Detector(), _Embedder()), queries, 0.3)
    assert keys["detect characters"] == entries  # and each face's embedding, which Stage-II recognises from
    np.testing.assert_allclose(keys["face embeddings"], [[2**-0.5, 2**-0.5], [3 / 10**0.5, 1 / 10**0.5]], rtol=1e-6)


def test_portraits_give_each_image_its_most_confident_face(tmp_path) -> None:
    for name in ("ANNA", "BEN"):
        (tmp_path / "tt01" / name).mkdir(parents=True)
        Image.new("RGB", (64, 32)).save(tmp_path / "tt01" / name / "a.jpg")
    (tmp_path / "tt01" / "BEN" / "notes.txt").write_text("not an image")
    found = portrait_faces(tmp_path, FaceEmbedder(_Detector(), _Embedder()))
    assert found.faces.labels.tolist() == ["ANNA", "BEN"] and found.faces.movies.tolist() == ["tt01", "tt01"]
    np.testing.assert_allclose(found.faces.embeddings, [[2**-0.5, 2**-0.5]] * 2, rtol=1e-6)
    assert found.without_face == []
    with pytest.raises(FileNotFoundError, match="no portraits"):
        portrait_faces(tmp_path / "tt01" / "ANNA", FaceEmbedder(_Detector(), _Embedder()))
