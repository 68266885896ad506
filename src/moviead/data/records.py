"""Plain dataclasses for what the readers produce. No tensors here: records are text and times.

Every reader in :mod:`moviead.data.formats` returns these, whatever the on-disk format, so the rest of
the data layer (context assembly, datasets, summaries) works the same for MAD-v2, LSMDC, Storyboard-v2,
TV-AD and CMD-AD.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class DatasetName(str, Enum):
    mad = "mad"
    lsmdc = "lsmdc"
    storyboard = "storyboard"
    toy = "toy"
    tvad = "tvad"
    cmdad = "cmdad"


class ContextMode(str, Enum):
    """Where context ADs come from: none (local), ground truth (oracle), the model's own outputs (recurrent)."""

    local = "local"
    oracle = "oracle"
    recurrent = "recurrent"


class FrameMode(str, Enum):
    """``linspace``: ``num_frames`` evenly spaced frames (AutoAD); ``all``: every frame up to ``max_frames``."""

    linspace = "linspace"
    all = "all"


class TextVariant(str, Enum):
    named = "named"
    unnamed = "unnamed"



@dataclass(frozen=True)
class ADRecord:
    """One audio description of one movie.

    Attributes:
        movie: movie (or episode) id, the key of its features.
        index: position within the movie after sorting by start time (0-based).
        start: start time in seconds.
        end: end time in seconds (> start).
        text: the AD text used as target (named by default).
        text_named: the AD with character names, when the source has it.
        text_unnamed: the AD with names replaced ("someone", pronouns), when the source has it.
        characters: names of the characters the AD mentions, when known.
        context_group: the context set the AD belongs to, when its dataset bounds context by sets (LSMDC's
            multi-sentence sets of 5 consecutive clips): its context ADs then come from the same set only.
            None (every other dataset): any earlier AD of the movie may be context.
    """

    movie: str
    index: int
    start: float
    end: float
    text: str
    text_named: str | None = None
    text_unnamed: str | None = None
    characters: tuple[str, ...] = ()
    context_group: int | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class SubtitleRecord:
    """One subtitle (dialogue line) of a movie, times in seconds."""

    movie: str
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class LSMDCRecord:
    """One row of an LSMDC annotation TSV.

    ``clip_id`` is not unique in LSMDC (the same clip can carry two sentences), so ``row`` (0-based line
    number in its file) identifies a record. Times are seconds parsed from the ``HH.MM.SS.mmm`` columns.
    """

    clip_id: str
    movie: str
    row: int
    start_aligned: float
    end_aligned: float
    start_extracted: float
    end_extracted: float
    text: str


@dataclass(frozen=True)
class CharacterBox:
    """One detected face in a Storyboard-v2 clip.

    Attributes:
        name: the label stored with the detection (a recognised name or ``"other"``). FocusedAD never uses it as
            the recognised name: it recognises again from ``embedding`` with the best-query bank
            (:mod:`moviead.focused.recognition`); the label only serves as ground truth when ``truth`` is absent.
        box: [x1, y1, x2, y2] in pixels.
        confidence: the face detector's confidence.
        distance: the stored L2 distance of the face to its nearest best query.
        embedding: the face's embedding (FaceNet, D floats), None when the file has none.
        truth: the ground-truth name (or ``"other"``), for scoring recognition only; None when the file has none.
        frame_boxes: the detection's box on each feature frame of the clip, (T, 4) [x1, y1, x2, y2] in pixels (the
            record's optional ``frame boxes``: a tracked character); None when the file gives only ``box``.
    """

    name: str
    box: tuple[float, float, float, float]
    confidence: float
    distance: float
    embedding: tuple[float, ...] | None = None
    truth: str | None = None
    frame_boxes: tuple[tuple[float, float, float, float], ...] | None = None

    @property
    def reference(self) -> str:
        """The name recognition is scored against: ``truth`` when given, else the stored label."""
        return self.truth if self.truth is not None else self.name


@dataclass(frozen=True)
class StoryboardRecord:
    """One Storyboard-v2 record (FocusedAD §4.1).

    ``clip_type`` is 1 (main characters only), 2 (main and other characters) or 3 (no main character).
    """

    movie_id: str
    global_id: str
    clip_type: int
    resolution: tuple[int, int]
    main_characters: tuple[str, ...]
    num_characters: int
    synopsis: str
    clip_path: str
    detections: tuple[CharacterBox, ...] = ()


@dataclass
class MovieAnnotations:
    """All ADs and subtitles of one movie, each sorted by start time."""

    movie: str
    ads: list[ADRecord] = field(default_factory=list)
    subtitles: list[SubtitleRecord] = field(default_factory=list)
