"""What a recipe needs the data layer to serve: a typed contract between :mod:`moviead.recipes` and the DataModules.

A recipe (LoCo-MAD, DistinctAD, FocusedAD, or a Stage-I task) builds one :class:`DataRequirements`; the DataModule
and the evaluator build their datasets from it and nothing else, so no setting travels as an untyped keyword.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moviead.data.records import ContextMode


@dataclass(frozen=True)
class DataRequirements:
    """The context and extra inputs each example must carry.

    Attributes:
        context_mode: where context ADs come from (oracle: ground truth, local: none, recurrent: predictions).
        context_size: previous ADs offered per example (LoCo-MAD's proposal length L_c; DistinctAD's neighbours).
        use_subtitles: each context AD comes with the subtitles that follow it.
        max_subtitles: most recent intervening subtitles kept.
        proposal: examples carry the context proposal (Stage-II captioning).
        neighbour_clips: examples carry the frames of this many previous clips of the same movie (DistinctAD).
        sentence_bank: the DSM's sentence-feature bank (:class:`moviead.data.sentence_features.SentenceFeatureBank`):
            the DataModule encodes every ground-truth proposal text of its splits once, before workers start.
        sentence_cache: where that bank is saved after encoding (reruns load it).
        storyboard_records: serve Storyboard-v2 examples (the clip plus its record: type, detections), FocusedAD.
        patch_features: a patch-feature store (T, H', W', D) per record, read at the clip's frames (FocusedAD boxes).
        name_swap: the name-pool file of ``captioning.name_swap``: training examples get their character names
            swapped (:class:`moviead.data.name_swap.NameSwap`); None leaves them as they are.
    """

    context_mode: ContextMode = ContextMode.oracle
    context_size: int = 3
    use_subtitles: bool = True
    max_subtitles: int = 8
    proposal: bool = False
    neighbour_clips: int = 0
    sentence_bank: Any = None
    sentence_cache: Path | None = None
    storyboard_records: bool = False
    patch_features: Path | None = None
    name_swap: Path | None = None

    @classmethod
    def of_context(cls, captioning: Any, **extra: Any) -> DataRequirements:
        """The context settings of a ``captioning`` config section (mode, L_c, subtitles) plus ``extra`` fields."""
        return cls(context_mode=captioning.context_mode, context_size=int(captioning.context_size),
                   use_subtitles=bool(captioning.use_subtitles), max_subtitles=int(captioning.max_subtitles), **extra)

    def __post_init__(self) -> None:
        object.__setattr__(self, "context_mode", ContextMode(self.context_mode))
        if self.context_size < 0 or self.neighbour_clips < 0 or self.max_subtitles < 0:
            raise ValueError(f"context_size, neighbour_clips and max_subtitles must be >= 0: {self}")
        if self.patch_features is not None and not self.storyboard_records:
            raise ValueError("patch_features are served with storyboard_records=True")
