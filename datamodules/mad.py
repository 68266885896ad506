"""MAD-v2 (features h5 or npy folder, AD CSV / AutoAD pickle / MAD-v1 JSON, subtitles, split JSON)."""

from moviead.data.records import DatasetName
from moviead.datamodules.base import ADDataModule


class MADDataModule(ADDataModule):
    """MAD-v2 in its released layout under ``data.root`` (file names in ``data.mad``)."""

    dataset_names = (DatasetName.mad, DatasetName.toy)
