"""The shared DataModule: load splits through :mod:`moviead.data.sources`, serve collated batches.

Feature files are opened lazily in each DataLoader worker: the handle the main process used to check
lengths is closed before workers start, and each store reopens its file in the process that reads.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from moviead.config import DatasetName
from moviead.data.collate import ADCollator
from moviead.data.context import ContextProvider
from moviead.data.datasets import ADClipDataset
from moviead.data.sources import SplitData, load_split, make_dataset
from moviead.data.tokenization import Tokenizer


class ADDataModule(L.LightningDataModule):
    """Batches of AD clips for one data set.

    Args:
        cfg: the ``data`` section of an experiment config (:class:`moviead.config.DataConfig`).
        tokenizer: tokenises AD and context text in the collate function; None gives frames and meta only.
        context_provider: the model's own predictions for recurrent context (set by the evaluator).
    """

    dataset_names: tuple[DatasetName, ...] = ()

    def __init__(
        self, cfg: DictConfig, tokenizer: Tokenizer | None = None, context_provider: ContextProvider | None = None
    ) -> None:
        super().__init__()
        if self.dataset_names and DatasetName(cfg.dataset) not in self.dataset_names:
            names = [d.value for d in self.dataset_names]
            raise ValueError(f"{type(self).__name__} reads data.dataset in {names}, got {cfg.dataset!r}")
        self.cfg = cfg
        self.collate = ADCollator(tokenizer, cfg.max_text_tokens, cfg.max_context_tokens)
        self.context_provider = context_provider
        self.splits: dict[str, SplitData] = {}
        self.datasets: dict[str, ADClipDataset] = {}

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
            self.datasets[stage] = make_dataset(
                self.load(stage), self.cfg, training=stage == "train", provider=self.context_provider
            )
        return self.datasets[stage]

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in wanted.get(stage or "fit", ("train", "val")):
            self.dataset(split)

    def _loader(self, stage: str, batch_size: int, shuffle: bool) -> DataLoader:
        workers = int(self.cfg.num_workers)
        kwargs: dict[str, Any] = {"persistent_workers": True} if workers > 0 else {}
        return DataLoader(
            self.dataset(stage),
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=workers,
            collate_fn=self.collate,
            drop_last=False,
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.cfg.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.cfg.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.cfg.eval_batch_size, shuffle=False)
