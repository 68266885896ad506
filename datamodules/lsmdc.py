"""LSMDC (6-column TSVs per split, per-clip features keyed by clip id)."""

from moviead.data.records import DatasetName
from moviead.datamodules.base import ADDataModule


class LSMDCDataModule(ADDataModule):
    """LSMDC under ``data.root`` (file names in ``data.lsmdc``); context = previous clips of the movie."""

    dataset_names = (DatasetName.lsmdc,)
