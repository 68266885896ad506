"""BERTScore (Zhang et al., ICLR 2020) through the ``bert-score`` package, with local models and clear errors.

Default as the AD papers report it: ``roberta-large``, layer 17, no IDF weighting, rescaled with the baseline that
ships in ``bert-score`` (``rescale_baseline/en/roberta-large.tsv``). Nothing is downloaded here: when the default
model is not in the Hugging Face cache, :class:`BertScore` raises :class:`FileNotFoundError` saying how to supply
it. Any local model works by path (``model="/models/roberta-large"``): ``num_layers`` is then required unless the
folder is named like a model ``bert-score`` knows, and rescaling takes ``baseline_path`` or, failing that, the
shipped baseline of the folder's name.

Scores are ``bert_score.BERTScorer.score``'s, unchanged: the same inputs give the same tensors as
``bert_score.score(...)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

DEFAULT_MODEL = "roberta-large"
DEFAULT_LANG = "en"


def default_num_layers(model: str) -> int | None:
    """The layer ``bert-score`` uses for ``model`` (a name, or a folder named like one), None if it has none."""
    from bert_score.utils import model2layers

    for name in (model, Path(model).name):
        if name in model2layers:
            return int(model2layers[name])
    return None


def shipped_baseline(model: str, lang: str = DEFAULT_LANG) -> Path | None:
    """The rescale baseline file ``bert-score`` ships for ``model`` (or a folder named like it), None if none."""
    import bert_score

    root = Path(bert_score.__file__).parent / "rescale_baseline" / lang
    for name in (model, Path(model).name):
        candidate = root / f"{name}.tsv"
        if name and candidate.is_file():
            return candidate
    return None


class BertScore:
    """A loaded BERTScore model: ``score(candidates, references)`` -> per-pair precision, recall and F1.

    Args:
        model: a model name in the local Hugging Face cache, or a folder holding a model and its tokenizer.
        num_layers: the hidden layer whose token embeddings are matched; default: ``bert-score``'s choice for the
            model (17 for roberta-large); required for a model it does not know.
        rescale_with_baseline: map scores through ``(s - b) / (1 - b)`` with the model's baseline ``b``.
        baseline_path: a baseline file in ``bert-score``'s format (csv with a header, one row per layer, columns
            layer, P, R, F); default: the one shipped for the model.
        lang: the language of the shipped baseline.
        batch_size: sentences per forward pass.
        device: torch device; default ``bert-score``'s (cuda when available).

    Raises:
        FileNotFoundError: the model cannot be loaded locally, or rescaling has no baseline file.
        ValueError: ``num_layers`` is needed and missing.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        num_layers: int | None = None,
        *,
        rescale_with_baseline: bool = True,
        baseline_path: str | Path | None = None,
        lang: str = DEFAULT_LANG,
        batch_size: int = 64,
        device: str | torch.device | None = None,
    ) -> None:
        from bert_score import BERTScorer

        layers = num_layers if num_layers is not None else default_num_layers(model)
        if layers is None:
            raise ValueError(f"num_layers is required for BERTScore with {model!r} (bert-score has no default for it)")
        baseline = None
        if rescale_with_baseline:
            baseline = Path(baseline_path) if baseline_path is not None else shipped_baseline(model, lang)
            if baseline is None or not baseline.is_file():
                raise FileNotFoundError(
                    f"no BERTScore rescale baseline for {model!r} (looked for {baseline or f'{lang}/<name>.tsv'} in "
                    "bert-score's rescale_baseline): pass baseline_path=<file> or rescale_with_baseline=False"
                )
        try:
            self.scorer = BERTScorer(
                model_type=str(model),
                num_layers=layers,
                lang=lang,
                rescale_with_baseline=rescale_with_baseline,
                baseline_path=None if baseline is None else str(baseline),
                device=None if device is None else str(device),
            )
        except (OSError, ValueError) as err:
            raise FileNotFoundError(
                f"BERTScore model {model!r} is not available locally and cannot be downloaded here. Download it where "
                f"there is network (e.g. `huggingface-cli download {Path(str(model)).name}`, or "
                "`AutoModel.from_pretrained(name).save_pretrained(folder)` plus the tokenizer) and pass the folder: "
                f"BertScore(model='<folder>', num_layers={layers}), or `moviead evaluate --bertscore-model <folder> "
                f"--bertscore-layers {layers}` (the folder's name picks the shipped rescale baseline, or pass "
                f"baseline_path=; --no-rescale without one). Cause: {type(err).__name__}: {err}"
            ) from err
        self.model, self.num_layers, self.batch_size = str(model), layers, batch_size
        self.rescale_with_baseline = rescale_with_baseline

    def score(
        self, candidates: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Precision, recall and F1, each (N,) float32 for N candidates.

        Args:
            candidates: N texts.
            references: N texts, or N lists of texts (then the best score over each list, as ``bert-score``).

        A pair whose candidate or every reference is empty scores as ``bert-score`` scores it, 0 before rescaling,
        without going through the model (``bert-score`` crashes on empty text with transformers 5).
        """
        if len(candidates) != len(references):
            raise ValueError(f"{len(candidates)} candidates for {len(references)} references")
        refs: list = [r if isinstance(r, str) else [t for t in r if t.strip()] for r in references]
        if any(isinstance(r, list) for r in refs):  # bert-score looks at the first entry only: make them all lists
            refs = [[r] if isinstance(r, str) else r for r in refs]
        # bert-score scores an empty text 0 but, under transformers 5, crashes encoding it: score those pairs here
        has_text = [bool(r) if isinstance(r, list) else bool(r.strip()) for r in refs]
        live = [i for i, c in enumerate(candidates) if c.strip() and has_text[i]]
        out = torch.zeros(3, len(candidates))  # raw P, R, F
        if live:
            cands, kept = [candidates[i] for i in live], [refs[i] for i in live]
            out[:, live] = torch.stack(self.scorer.score(cands, kept, batch_size=self.batch_size))
        if len(live) < len(candidates) and self.rescale_with_baseline:
            dead = [i for i in range(len(candidates)) if i not in set(live)]
            baseline = self.scorer.baseline_vals.reshape(3, 1)
            out[:, dead] = (0.0 - baseline) / (1 - baseline)
        return out[0], out[1], out[2]

    def f1(self, candidates: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]]) -> torch.Tensor:
        """(N,) F1 of each candidate against its reference(s)."""
        return self.score(candidates, references)[2]


def bertscore(
    candidates: Sequence[str],
    references: Sequence[str] | Sequence[Sequence[str]],
    model: str = DEFAULT_MODEL,
    num_layers: int | None = None,
    *,
    rescale_with_baseline: bool = True,
    baseline_path: str | Path | None = None,
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """Corpus BERTScore: the mean over pairs of precision, recall and F1 (keys ``bertscore_p/_r/_f1``).

    Loads the model on every call; keep a :class:`BertScore` to score several times.
    """
    scorer = BertScore(
        model, num_layers, rescale_with_baseline=rescale_with_baseline, baseline_path=baseline_path,
        batch_size=batch_size, device=device,
    )
    p, r, f = scorer.score(candidates, references)
    if p.numel() == 0:
        raise ValueError("nothing to score: no candidates")
    return {"bertscore_p": p.mean().item(), "bertscore_r": r.mean().item(), "bertscore_f1": f.mean().item()}
