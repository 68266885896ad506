"""The shared DataModule: load splits through :mod:`moviead.data.sources`, serve collated batches.

Feature files are opened lazily in each DataLoader worker: the handle the main process used to check
lengths is closed before workers start, and each store reopens its file in the process that reads.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

import lightning as L
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from moviead.data.collate import ADCollator, BatchKey, ClipExample
from moviead.data.context import ContextProvider
from moviead.data.datasets import ADClipDataset
from moviead.data.records import ContextMode, DatasetName
from moviead.data.requirements import DataRequirements
from moviead.data.resumable_sampler import ResumableShuffleSampler
from moviead.data.sentence_features import encode_proposal_texts
from moviead.data.sources import SplitData, load_split, make_dataset
from moviead.data.tokenization import Tokenizer

log = logging.getLogger(__name__)


class ADDataModule(L.LightningDataModule):
    """Batches of AD clips for one data set.

    Args:
        data: the ``data`` section of an experiment config (:class:`moviead.config.DataConfig`): the data set alone.
        loader: the ``loader`` section (frames per clip, batch sizes, workers, Stage-I text limits).
        tokenizer: tokenises AD and context text in the default collate function; None gives frames and meta only.
        needs: what the recipe needs each example to carry (context, proposal, neighbouring clips, sentence bank,
            Storyboard records): :class:`~moviead.data.requirements.DataRequirements`. With a sentence bank, ``setup``
            encodes every ground-truth proposal text of the splits once, in the main process, so DataLoader workers
            only look features up; then the bank is saved to ``needs.sentence_cache`` when given.
        collate: replaces the default :class:`ADCollator` (Stage-II: the recipe's collator).
        context_provider: the model's own predictions for recurrent context (set by the evaluator).
        seed: the training order of epoch ``e`` is a permutation drawn from ``seed + e``
            (:class:`ResumableShuffleSampler`); :meth:`resume_at` starts it part-way. Loaders draw their worker
            seeds from their own generator, never from torch's global RNG.
    """

    dataset_names: tuple[DatasetName, ...] = ()

    def __init__(
        self,
        data: DictConfig,
        loader: DictConfig,
        tokenizer: Tokenizer | None = None,
        needs: DataRequirements = DataRequirements(),
        collate: Callable[[Sequence[ClipExample]], dict[str, Any]] | None = None,
        context_provider: ContextProvider | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if self.dataset_names and DatasetName(data.dataset) not in self.dataset_names:
            names = [d.value for d in self.dataset_names]
            raise ValueError(f"{type(self).__name__} reads data.dataset in {names}, got {data.dataset!r}")
        self.cfg = data
        self.loader_cfg = loader
        self.needs = needs
        self.collate = collate or ADCollator(tokenizer, loader.max_text_tokens, loader.max_context_tokens)
        self.context_provider = context_provider
        self.splits: dict[str, SplitData] = {}
        self.datasets: dict[str, ADClipDataset] = {}
        self.seed = seed
        self._resume: tuple[int, int] | None = None

    def resume_at(self, epoch: int, batches_done: int) -> None:
        """Make the training loader start at batch ``batches_done`` of epoch ``epoch`` (resuming a killed run)."""
        self._resume = (epoch, batches_done)

    def load(self, stage: str) -> SplitData:
        """Read one split (``train``, ``val`` or ``test``) and close the feature handle used to check it."""
        if stage not in self.splits:
            data = load_split(self.cfg, stage)
            close = getattr(data.features, "close", None)
            if close is not None:
                close()
            self.splits[stage] = data
        return self.splits[stage]

    def dataset(self, stage: str) -> ADClipDataset:
        if stage not in self.datasets:
            self.datasets[stage] = make_dataset(self.load(stage), self.cfg, self.loader_cfg.frames, self.needs,
                                                training=stage == "train", provider=self.context_provider)
            self._precompute_sentences(self.datasets[stage])
        return self.datasets[stage]

    def _precompute_sentences(self, dataset: ADClipDataset) -> None:
        """Encode the proposal texts of ``dataset`` (ground truth; recurrent predictions are encoded as they come)."""
        bank = self.needs.sentence_bank
        if bank is None or not self.needs.proposal or self.needs.context_mode == ContextMode.recurrent:
            return
        if encode_proposal_texts(bank, dataset) and self.needs.sentence_cache is not None:
            bank.save(self.needs.sentence_cache)

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in wanted.get(stage or "fit", ("train", "val")):
            self.dataset(split)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Move a batch dict's tensors to ``device``; its ``meta`` entry (per-sample dicts of text) is handed on as
        it is, other entries go through Lightning's own transfer.

        Lightning's generic transfer walks every string of ``meta`` (a Stage-II batch's proposal texts): 18 ms a
        step on the toy data, about 7 % of a tiny Stage-II step (cProfile, one thread).
        """
        if not isinstance(batch, dict):
            return super().transfer_batch_to_device(batch, device, dataloader_idx)
        return {key: value.to(device) if isinstance(value, torch.Tensor)
                else value if key == BatchKey.META
                else super(ADDataModule, self).transfer_batch_to_device(value, device, dataloader_idx)
                for key, value in batch.items()}

    def _loader(self, stage: str, batch_size: int, shuffle: bool) -> DataLoader:
        workers = int(self.loader_cfg.num_workers)
        kwargs: dict[str, Any] = {"persistent_workers": True} if workers > 0 else {}
        dataset = self.dataset(stage)
        if shuffle:
            sampler = ResumableShuffleSampler(dataset, seed=self.seed)
            if self._resume is not None:
                epoch, batches_done = self._resume
                sampler.resume_at(epoch, min(batches_done * batch_size, sampler.num_samples))
            kwargs["sampler"] = sampler
        return DataLoader(
            dataset,
            batch_size=batch_size,
            generator=torch.Generator().manual_seed(self.seed),
            num_workers=workers,
            collate_fn=self.collate,
            drop_last=False,
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.loader_cfg.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.loader_cfg.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.loader_cfg.eval_batch_size, shuffle=False)
