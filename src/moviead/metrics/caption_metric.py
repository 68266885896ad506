"""torchmetrics ``Metric`` over :func:`~moviead.metrics.captioning.caption_scores`, with text states that sync."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from moviead.metrics.captioning import DEFAULT_METRICS, caption_scores, normalise_metric_names


class CaptionMetrics(Metric):
    """torchmetrics wrapper of :func:`caption_scores`: accumulates (references, prediction) pairs, scores at the end.

    The scores need the whole evaluation at once (CIDEr's IDF, METEOR's corpus statistics), so ``update`` only
    stores text and ``compute`` runs pycocoevalcap. ``forward`` (``metric(refs, preds)``) only stores the batch and
    returns None: a batch's own scores would cost a java run each and mean little (CIDEr on a batch).

    Distributed: strings cannot be gathered, so each update stores its texts as UTF-8 bytes in tensors (list
    states reduced by ``cat``: the bytes, the byte length of every text, the number of references per item) and
    ``compute`` decodes them after the sync. The tensors use the metric's float dtype, because torchmetrics pads
    a rank without data with an empty tensor of that dtype and every rank must gather the same dtype; float32
    (the default) holds bytes and lengths exactly, so lower precisions are refused. After a sync the items come
    rank by rank, so a score can differ from a one-process run in its last digits (sums in another order).

    ``compute`` returns 0-dim float64 tensors under the keys of :func:`caption_scores`.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        metrics: Sequence[str] = DEFAULT_METRICS,
        corenlp_dir: str | os.PathLike[str] | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        self.metrics = tuple(normalise_metric_names(metrics))
        self.corenlp_dir = corenlp_dir
        self.add_state("text_bytes", default=[], dist_reduce_fx="cat")
        self.add_state("text_lengths", default=[], dist_reduce_fx="cat")
        self.add_state("reference_counts", default=[], dist_reduce_fx="cat")

    def update(self, references: Sequence[str | Sequence[str]], predictions: Sequence[str]) -> None:
        """Store a batch: ``references[i]`` (one text or a list of texts) are the references of ``predictions[i]``."""
        if len(references) != len(predictions):
            raise ValueError(f"{len(references)} reference entries for {len(predictions)} predictions")
        if torch.finfo(self.dtype).eps > 2**-23:
            raise ValueError(f"CaptionMetrics stores text in its float dtype; {self.dtype} is too coarse: use float32")
        texts: list[bytes] = []
        counts: list[int] = []
        for refs, pred in zip(references, predictions):
            refs = [refs] if isinstance(refs, str) else list(refs)
            if not refs or not isinstance(pred, str) or not all(isinstance(r, str) for r in refs):
                raise ValueError(f"each item needs at least one reference string and a prediction string: {refs!r}")
            texts += [t.encode("utf-8") for t in (*refs, pred)]
            counts.append(len(refs))
        data = np.frombuffer(b"".join(texts), dtype=np.uint8).astype(np.float64)
        self.text_bytes.append(torch.as_tensor(data, dtype=self.dtype, device=self.device))
        self.text_lengths.append(torch.tensor([len(t) for t in texts], dtype=self.dtype, device=self.device))
        self.reference_counts.append(torch.tensor(counts, dtype=self.dtype, device=self.device))

    def forward(self, references: Sequence[str | Sequence[str]], predictions: Sequence[str]) -> None:
        """Same as :meth:`update` (no per-batch scores; see the class doc)."""
        self.update(references, predictions)

    def items(self) -> tuple[dict[int, list[str]], dict[int, str]]:
        """The stored (after a sync: gathered) items as ``(references, predictions)`` keyed 0..n-1."""

        def cat(state: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
            if isinstance(state, list) and not state:
                return torch.zeros(0)
            return dim_zero_cat(state).detach().cpu().double().round().long()

        blob = cat(self.text_bytes).to(torch.uint8).numpy().tobytes()
        lengths, counts = cat(self.text_lengths).tolist(), cat(self.reference_counts).tolist()
        if sum(counts) + len(counts) != len(lengths) or sum(lengths) != len(blob):
            raise RuntimeError("CaptionMetrics state is inconsistent (texts, lengths and counts disagree)")
        texts, offset = [], 0
        for length in lengths:
            texts.append(blob[offset : offset + length].decode("utf-8"))
            offset += length
        references: dict[int, list[str]] = {}
        predictions: dict[int, str] = {}
        position = 0
        for i, count in enumerate(counts):
            references[i], predictions[i] = texts[position : position + count], texts[position + count]
            position += count + 1
        return references, predictions

    def compute(self) -> dict[str, torch.Tensor]:
        """:func:`caption_scores` on everything stored, as 0-dim float64 tensors."""
        references, predictions = self.items()
        if not references:
            raise ValueError("CaptionMetrics.compute() called before any update")
        scores = caption_scores(references, predictions, self.metrics, corenlp_dir=self.corenlp_dir)
        return {name: torch.tensor(value, dtype=torch.float64) for name, value in scores.items()}
