"""Storyboard-v2 (FocusedAD): JSON records, per-record features, best-query character bank."""

from moviead.config import DatasetName
from moviead.datamodules.base import ADDataModule


class StoryboardDataModule(ADDataModule):
    """Storyboard-v2 under ``data.root`` (file names in ``data.storyboard``)."""

    dataset_names = (DatasetName.storyboard,)
