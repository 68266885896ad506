"""Storyboard-v2 (FocusedAD): JSON records, per-record features, best-query character bank."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from torch.utils.data import Dataset

from moviead.data.records import DatasetName
from moviead.data.records import StoryboardRecord
from moviead.data.tokenization import Tokenizer
from moviead.datamodules.base import ADDataModule
from moviead.focused.data import StoryboardClipDataset, read_storyboard_records, storyboard_examples


class StoryboardDataModule(ADDataModule):
    """Storyboard-v2 under ``data.root`` (file names in ``data.storyboard``).

    Args:
        storyboard_examples: serve :class:`~moviead.focused.data.StoryboardExample` items (the clip plus its record:
            type 1/2/3, resolution, detections) for FocusedAD's collate function; False serves plain clips.
        patch_features: a patch-feature store (T, H', W', D) per global id, read at the clip's frames (FocusedAD box
            mode); needs ``storyboard_examples``.
        kwargs: as :class:`ADDataModule` (collate, with_proposal, ...).
    """

    dataset_names = (DatasetName.storyboard,)

    def __init__(self, cfg: DictConfig, tokenizer: Tokenizer | None = None, storyboard_examples: bool = False,
                 patch_features: str | Path | None = None, **kwargs: Any) -> None:
        super().__init__(cfg, tokenizer=tokenizer, **kwargs)
        if patch_features is not None and not storyboard_examples:
            raise ValueError("patch_features are served with storyboard_examples=True")
        self.storyboard_examples = storyboard_examples
        self.patch_features = Path(patch_features) if patch_features is not None else None
        self._records: dict[str, StoryboardRecord] | None = None
        self._examples: dict[str, StoryboardClipDataset] = {}

    def records(self) -> dict[str, StoryboardRecord]:
        """Every record of the JSON by global id (read once)."""
        if self._records is None:
            self._records = read_storyboard_records(Path(self.cfg.root) / self.cfg.storyboard.annotations)
        return self._records

    def dataset(self, stage: str) -> Dataset:  # type: ignore[override]
        clips = super().dataset(stage)
        if not self.storyboard_examples:
            return clips
        if stage not in self._examples:
            self._examples[stage] = storyboard_examples(clips, self.records(), self.patch_features)
        return self._examples[stage]
