"""Storyboard-v2 (FocusedAD): JSON records, per-record features, best-query character bank."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from torch.utils.data import Dataset

from moviead.data.records import DatasetName, StoryboardRecord
from moviead.datamodules.base import ADDataModule
from moviead.focused.data import StoryboardClipDataset, read_storyboard_records, storyboard_examples


class StoryboardDataModule(ADDataModule):
    """Storyboard-v2 under ``data.root`` (file names in ``data.storyboard``).

    With ``needs.storyboard_records`` it serves :class:`~moviead.focused.data.StoryboardExample` items (the clip plus
    its record: type 1/2/3, resolution, detections, and the patch features of ``needs.patch_features`` at the clip's
    frames) for FocusedAD's collate function; otherwise plain clips. Arguments as :class:`ADDataModule`.
    """

    dataset_names = (DatasetName.storyboard,)

    def __init__(self, data: DictConfig, loader: DictConfig, **kwargs: Any) -> None:
        super().__init__(data, loader, **kwargs)
        self._records: dict[str, StoryboardRecord] | None = None
        self._examples: dict[str, StoryboardClipDataset] = {}

    def records(self) -> dict[str, StoryboardRecord]:
        """Every record of the JSON by global id (read once)."""
        if self._records is None:
            self._records = read_storyboard_records(Path(self.cfg.root) / self.cfg.storyboard.annotations)
        return self._records

    def dataset(self, stage: str) -> Dataset:  # type: ignore[override]
        clips = super().dataset(stage)
        if not self.needs.storyboard_records:
            return clips
        if stage not in self._examples:
            self._examples[stage] = storyboard_examples(clips, self.records(), self.needs.patch_features)
        return self._examples[stage]
