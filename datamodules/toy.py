"""The toy data set: generated on first use (``moviead make-toy-data``), then read as MAD-v2."""

from __future__ import annotations

from pathlib import Path

from moviead.data.records import DatasetName
from moviead.datamodules.base import ADDataModule
from moviead.toy.generator import write_toy_dataset


class ToyDataModule(ADDataModule):
    """MAD-v2-format toy data under ``data.root`` (``<out>/mad``), generated into its parent if missing."""

    dataset_names = (DatasetName.toy, DatasetName.mad)

    _prepared = False

    def prepare_data(self) -> None:
        if self._prepared:
            return
        self._prepared = True
        root = Path(self.cfg.root)
        if self.cfg.toy.regenerate or not (root / self.cfg.mad.features).is_file():
            write_toy_dataset(
                root.parent, movies=self.cfg.toy.movies, seed=self.cfg.toy.seed, feature_dim=self.cfg.feature_dim,
                fps=self.cfg.fps,
            )

    def load(self, stage: str):
        self.prepare_data()
        return super().load(stage)
