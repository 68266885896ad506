"""LightningDataModules for MAD-v2, LSMDC, Storyboard-v2 and the toy data (installed as moviead.datamodules)."""

from typing import Any

from omegaconf import DictConfig

from moviead.data.records import DatasetName
from moviead.data.requirements import DataRequirements
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


def build_datamodule(
    cfg: DictConfig,
    tokenizer: Any = None,
    needs: DataRequirements | None = None,
    collate: Any = None,
    context_provider: Any = None,
) -> ADDataModule:
    """The DataModule for ``cfg.data.dataset`` (``cfg``: a whole experiment config; its ``data``, ``loader`` and
    ``seed`` are read), serving what ``needs`` (a recipe's :class:`DataRequirements`) asks for, collated by
    ``collate`` (default: the plain :class:`~moviead.data.collate.ADCollator` with ``tokenizer``)."""
    classes = {
        DatasetName.mad: MADDataModule,
        DatasetName.toy: ToyDataModule,
        DatasetName.lsmdc: LSMDCDataModule,
        DatasetName.storyboard: StoryboardDataModule,
    }
    dataset = DatasetName(cfg.data.dataset)
    if dataset not in classes:
        raise ValueError(f"no DataModule for dataset {dataset.value!r}; choose one of {[d.value for d in classes]}")
    return classes[dataset](cfg.data, cfg.loader, tokenizer=tokenizer, needs=needs or DataRequirements(),
                            collate=collate, context_provider=context_provider, seed=int(cfg.seed))
