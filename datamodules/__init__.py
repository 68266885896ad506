"""LightningDataModules for MAD-v2, LSMDC, Storyboard-v2 and the toy data (installed as moviead.datamodules)."""

from moviead.datamodules.base import ADDataModule
from moviead.datamodules.lsmdc import LSMDCDataModule
from moviead.datamodules.mad import MADDataModule
from moviead.datamodules.storyboard import StoryboardDataModule
from moviead.datamodules.toy import ToyDataModule

__all__ = [
    "ADDataModule",
    "LSMDCDataModule",
    "MADDataModule",
    "StoryboardDataModule",
    "ToyDataModule",
    "build_datamodule",
]


def build_datamodule(cfg, tokenizer=None, **kwargs) -> ADDataModule:
    """The DataModule for ``cfg.dataset`` (``cfg`` is the ``data`` section of an experiment config); ``kwargs`` go to
    :class:`ADDataModule` (collate, with_proposal, sentence_bank, sentence_cache, context_provider,
    neighbour_clips)."""
    from moviead.data.records import DatasetName

    classes = {
        DatasetName.mad: MADDataModule,
        DatasetName.toy: ToyDataModule,
        DatasetName.lsmdc: LSMDCDataModule,
        DatasetName.storyboard: StoryboardDataModule,
    }
    dataset = DatasetName(cfg.dataset)
    if dataset not in classes:
        raise ValueError(f"no DataModule for dataset {dataset.value!r}; choose one of {[d.value for d in classes]}")
    return classes[dataset](cfg, tokenizer=tokenizer, **kwargs)
