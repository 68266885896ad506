"""Faces in images: MTCNN detection and InceptionResnetV1 (FaceNet) embeddings, from facenet-pytorch.

facenet-pytorch is optional and installed on its own, without its dependencies (:data:`INSTALL_HINT`): its metadata
pins torch < 2.3, which no resolver can reconcile with the project's torch 2.14.1, while its code runs on it and needs
nothing the project does not already install (checked on 2.6.0: MTCNN and InceptionResnetV1 load, detect and embed).
MTCNN's weights ship inside that package; the embedding model's weights are a file the user gives (facenet-pytorch's
VGGFace2 release, ``20180402-114759-vggface2.pt``): nothing is downloaded.
Embeddings are 512-d and L2-normalised (InceptionResnetV1 normalises its output).

Detector settings follow FocusedAD's released code: 160-pixel crops, margin 0, smallest face 20 pixels,
stage thresholds (0.6, 0.7, 0.7), scale factor 0.709, every face kept; faces below confidence 0.7 skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from moviead.focused.face_sets import OTHER, FaceSet, make_face_set
from moviead.focused.recognition import FACENET_INSTALL, MIN_CONFIDENCE, nearest_queries

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
INSTALL_HINT = (f"face detection needs facenet-pytorch: {FACENET_INSTALL} (--no-deps: its metadata asks for "
                "torch<2.3; it runs on the project's torch)")
WEIGHTS_HINT = ("give the InceptionResnetV1 weights file (facenet-pytorch's VGGFace2 release, "
                "20180402-114759-vggface2.pt, fetched once on a machine with network access); moviead downloads "
                "nothing")


def _facenet() -> Any:
    try:
        import facenet_pytorch
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return facenet_pytorch


@dataclass(frozen=True)
class DetectedFaces:
    """Faces of one image: boxes (N, 4) pixels [x1, y1, x2, y2], confidences (N,), embeddings (N, D) unit rows."""

    boxes: np.ndarray
    confidences: np.ndarray
    embeddings: np.ndarray


class FaceEmbedder:
    """Detects faces and embeds them.

    Args:
        detector: an MTCNN (``detect(image) -> (boxes, probs)``, ``extract(image, boxes, None) -> (N, 3, S, S)``).
        embedder: a module mapping (N, 3, S, S) crops to (N, D) embeddings.
        min_confidence: faces the detector is less sure of are dropped.
        device: where the embedder runs.
    """

    def __init__(self, detector: Any, embedder: torch.nn.Module, min_confidence: float = MIN_CONFIDENCE,
                 device: str | torch.device = "cpu") -> None:
        self.detector = detector
        self.embedder = embedder.eval()
        self.min_confidence = min_confidence
        self.device = torch.device(device)

    @torch.no_grad()
    def faces(self, image: Any) -> DetectedFaces:
        """The confident faces of a PIL image (RGB)."""
        boxes, probs = self.detector.detect(image)
        if boxes is None or len(boxes) == 0:
            return DetectedFaces(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 0), np.float32))
        boxes, probs = np.asarray(boxes, np.float32), np.asarray(probs, np.float32)
        keep = probs >= self.min_confidence
        boxes, probs = boxes[keep], probs[keep]
        if not len(boxes):
            return DetectedFaces(boxes, probs, np.zeros((0, 0), np.float32))
        crops = self.detector.extract(image, boxes, None)  # (N, 3, S, S)
        embeddings = self.embedder(torch.as_tensor(crops).to(self.device).reshape(len(boxes), *crops.shape[-3:]))
        embeddings = torch.nn.functional.normalize(embeddings.float(), dim=-1).cpu().numpy()
        return DetectedFaces(boxes, probs, embeddings)


def load_face_embedder(weights: str | Path | None, device: str = "cpu", min_confidence: float = MIN_CONFIDENCE,
                       image_size: int = 160, margin: int = 0, min_face_size: int = 20) -> FaceEmbedder:
    """MTCNN (weights from facenet-pytorch) + InceptionResnetV1 loaded from ``weights``.

    Raises:
        FileNotFoundError: ``weights`` is not given or is not a file.
        ImportError: facenet-pytorch is not installed (the message says how to install it).
        ValueError: the file is not an InceptionResnetV1 state dict.
    """
    if not weights or not Path(weights).is_file():
        raise FileNotFoundError(f"InceptionResnetV1 weights not found: {weights!r}; {WEIGHTS_HINT}")
    facenet = _facenet()
    state = torch.load(weights, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ValueError(f"{weights}: expected an InceptionResnetV1 state dict, found {type(state).__name__}")
    state = {k: v for k, v in state.items() if not k.startswith("logits.")}  # the VGGFace2 classifier head
    model = facenet.InceptionResnetV1(pretrained=None, classify=False)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{weights} is not an InceptionResnetV1 state dict: {str(err)[:300]}") from err
    detector = facenet.MTCNN(image_size=image_size, margin=margin, min_face_size=min_face_size,
                             thresholds=[0.6, 0.7, 0.7], factor=0.709, post_process=True, keep_all=True,
                             device=device)
    return FaceEmbedder(detector, model.to(device), min_confidence, device)


def _open_rgb(path: Path) -> Any:
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


@dataclass(frozen=True)
class PortraitFaces:
    """Faces found in a portrait folder, and the images in which no confident face was found."""

    faces: FaceSet
    without_face: list[Path]


def portrait_faces(root: str | Path, embedder: FaceEmbedder) -> PortraitFaces:
    """The most confident face of every image ``root/{imdbid}/{NAME}/*.{jpg,jpeg,png}``, labelled NAME.

    Raises:
        FileNotFoundError: no portrait images under ``root``.
    """
    root = Path(root)
    images = sorted(p for p in root.glob("*/*/*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise FileNotFoundError(f"no portraits under {root} (expected {{imdbid}}/{{NAME}}/*.jpg)")
    rows, labels, movies, confidences, missing = [], [], [], [], []
    for path in images:
        found = embedder.faces(_open_rgb(path))
        if not len(found.confidences):
            missing.append(path)
            continue
        best = int(found.confidences.argmax())
        rows.append(found.embeddings[best])
        labels.append(path.parent.name)
        movies.append(path.parent.parent.name)
        confidences.append(found.confidences[best])
    embeddings = np.stack(rows) if rows else np.zeros((0, 512), np.float32)
    return PortraitFaces(make_face_set(embeddings, labels, movies, confidences), missing)


def _entries(found: DetectedFaces, queries: dict[str, np.ndarray], threshold: float) -> list[dict[str, list[float]]]:
    names = sorted(queries)
    if not names:
        raise ValueError("no best queries for this movie: build them with `moviead build-char-bank`")
    if not len(found.confidences):
        return []
    index, distance = nearest_queries(found.embeddings, np.stack([np.reshape(queries[n], -1) for n in names]))
    out = []
    for box, conf, i, dist in zip(found.boxes, found.confidences, index.tolist(), distance.tolist()):
        out.append({names[i] if dist < threshold else OTHER: [*map(float, box), float(conf), float(dist)]})
    return out


def detect_characters(image: Any, embedder: FaceEmbedder, queries: dict[str, np.ndarray],
                      threshold: float) -> list[dict[str, list[float]]]:
    """Storyboard-v2 ``detect characters`` entries of one frame: ``[{NAME or "other": [x1, y1, x2, y2, conf,
    dist]}]``, dist the L2 distance to the nearest best query (``queries``: name → (1, D) of the movie)."""
    if not queries:
        raise ValueError("no best queries for this movie: build them with `moviead build-char-bank`")
    return _entries(embedder.faces(image), queries, threshold)


def record_detections(image: Any, embedder: FaceEmbedder, queries: dict[str, np.ndarray],
                      threshold: float) -> dict[str, list[Any]]:
    """The Storyboard-v2 record keys of one key frame's faces: ``detect characters`` (as :func:`detect_characters`)
    and ``face embeddings`` (one list of D floats per detection, in the same order), which FocusedAD's Stage-II and
    ``moviead recognise`` recognise from with a best-query bank."""
    if not queries:
        raise ValueError("no best queries for this movie: build them with `moviead build-char-bank`")
    found = embedder.faces(image)
    return {"detect characters": _entries(found, queries, threshold),
            "face embeddings": [list(map(float, e)) for e in found.embeddings]}
