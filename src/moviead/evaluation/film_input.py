"""A film file as the input of ``moviead describe --video FILM``: its frame features and its dialogue.

* **Features** are extracted on the fly with :mod:`moviead.extraction` (an open_clip model, at the checkpoint's
  ``data.fps``) into a cache beside the output, ``<out>/<movie>.features.h5`` (MAD-v2 layout, one dataset named
  after the movie). The cache is resumable as ``moviead extract-features`` is: a finished dataset is reused by a
  rerun without loading CLIP, one left half-written by a killed run is redone. The dataset records what made it
  (fps, the CLIP model, and size + modification time of the CLIP weights and of the video); a cache made from
  another film, other weights or another fps is discarded and extracted again.
* **Dialogue** comes from ``--subtitles`` when given, else from the container's first subtitle stream (SubRip,
  mov_text, ASS/SSA, WebVTT: any text stream FFmpeg decodes). Its cues are written to
  ``<out>/<movie>.dialogue.srt`` and read back with :func:`moviead.data.formats.srt.read_subtitle_file`, so they
  take exactly the path (repairs, warnings, ``fit_subtitles_to_film``) and the run identity of a ``--subtitles``
  file. Times are measured from the video stream's start, as the extracted frames are.

The checks that need no model (:func:`check_film`, :func:`check_clip_weights`) run before torch is imported.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
from av.subtitles.subtitle import SubtitleSet
from tqdm.auto import tqdm

from moviead.data.errors import DataFormatError
from moviead.export import format_timestamp
from moviead.user_errors import UserError

if TYPE_CHECKING:
    from moviead.evaluation.describe import DescribeRequest

log = logging.getLogger(__name__)

LOCAL_DIR = "local-dir:"  # as moviead.clip_towers (not imported here: it loads open_clip)
_ASS_TAG = re.compile(r"\{[^}]*\}")
_ASS_BREAK = re.compile(r"\\[Nnh]")


class MissingClipWeightsError(UserError, ValueError):
    """``--video`` without the CLIP weights to extract its features with."""


@dataclass
class FilmSource:
    """What ``describe`` needs to turn a film file into frame features."""

    video: str
    clip_model: str = "ViT-L-14"  # an open_clip architecture, or local-dir:PATH
    clip_checkpoint: str | None = None  # the weights of an architecture name
    clip_model_config: str | None = None  # an open_clip architecture JSON, registered under its file stem
    batch_size: int = 64
    device: str = "auto"


def check_clip_weights(clip_model: str, clip_checkpoint: str | None) -> None:
    """Refuse extraction without weights (a ``local-dir:`` model holds its own).

    Raises:
        MissingClipWeightsError: an architecture name without ``--clip-checkpoint``.
    """
    if clip_checkpoint is None and not clip_model.startswith(LOCAL_DIR):
        raise MissingClipWeightsError(
            f"--video needs --clip-checkpoint FILE: the weights of the open_clip model {clip_model!r} "
            "(e.g. ViT-L-14-openai.pt) to extract the film's frame features; or pass --features FILE.h5")


def check_film(video: str | Path, need_subtitles: bool) -> None:
    """The film has a video stream, and (``need_subtitles``) a subtitle stream when no ``--subtitles`` is given.

    Raises:
        FileNotFoundError: no such file.
        DataFormatError: not a readable media file, no video stream, or no subtitles to be had.
    """
    video = Path(video)
    with _open(video) as container:
        if not container.streams.video:
            raise DataFormatError(video, "the file has no video stream",
                                  "pass the film (a video file), or its frame features with --features FILE.h5")
        if need_subtitles and not container.streams.subtitles:
            raise DataFormatError(video, "no --subtitles given and the file has no subtitle stream",
                                  "give --subtitles FILE (an .srt or .vtt of the film's dialogue)")


def _open(video: Path) -> Any:
    if not video.is_file():
        raise FileNotFoundError(f"--video {video}: no such file")
    try:
        return av.open(str(video))
    except av.FFmpegError as err:
        raise DataFormatError(video, f"not a readable video ({err})", "pass a video file (mp4, mkv, mov, ...)") from err


# ----------------------------------------------------------------------------------------------------- dialogue


def subtitle_stream_cues(video: str | Path, progress: bool = True) -> list[tuple[float, float, str]]:
    """The ``(start, end, text)`` cues of the first subtitle stream of ``video``, in seconds from the start of its
    video stream, in stream order; empty cues (mov_text's gap fillers) left out. A cue without a duration ends
    where the next one starts (the last: 5 s later).

    Raises:
        DataFormatError: no subtitle stream, a bitmap stream (DVD, PGS: no text to read), or a decoding error.
    """
    video = Path(video)
    with _open(video) as container:
        if not container.streams.subtitles:
            raise DataFormatError(video, "the file has no subtitle stream",
                                  "give --subtitles FILE (an .srt or .vtt of the film's dialogue)")
        stream = container.streams.subtitles[0]
        origin = _video_origin(container)
        total = None if container.duration is None else container.duration / av.time_base
        cues: list[list[Any]] = []
        bar = tqdm(total=None if total is None else round(total, 1), desc="subtitles", unit="s", leave=False,
                   disable=not progress, dynamic_ncols=True)
        try:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.pts is None:
                    continue
                start = float(packet.pts * packet.time_base) - origin
                duration = float(packet.duration * packet.time_base) if packet.duration else None
                text = " ".join(t for t in _packet_texts(stream, packet, video) if t)
                bar.update(max(0.0, round(start - bar.n, 1)))
                if text:
                    cues.append([start, None if duration is None else start + duration, text])
        finally:
            bar.close()
    for cue, following in zip(cues, cues[1:] + [None]):
        if cue[1] is None:
            cue[1] = following[0] if following is not None and following[0] > cue[0] else cue[0] + 5.0
    return [(float(s), float(e), t) for s, e, t in cues]


def _video_origin(container: Any) -> float:
    """Seconds of the video stream's first timestamp (the extracted frames start there)."""
    stream = container.streams.video[0] if container.streams.video else None
    if stream is None or stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def _packet_texts(stream: Any, packet: Any, video: Path) -> Iterator[str]:
    """The plain text of each rectangle a subtitle packet decodes to (ASS tags removed, line breaks as spaces)."""
    try:
        decoded = stream.decode(packet)
    except av.FFmpegError as err:
        raise DataFormatError(video, f"its subtitle stream does not decode ({err})",
                              "give --subtitles FILE (an .srt or .vtt of the film's dialogue)") from err
    for item in decoded:
        for rect in (item if isinstance(item, SubtitleSet) else [item]):
            if getattr(rect, "type", b"") == b"bitmap":
                raise DataFormatError(video, "its subtitle stream is pictures (DVD/PGS), not text",
                                      "give --subtitles FILE (an .srt or .vtt of the film's dialogue)")
            raw = rect.dialogue or rect.text or rect.ass
            text = _ASS_BREAK.sub(" ", _ASS_TAG.sub("", raw.decode("utf-8", errors="replace")))
            yield " ".join(text.split())


def write_srt(cues: list[tuple[float, float, str]], path: str | Path) -> Path:
    """``cues`` as a SubRip file (whole milliseconds), UTF-8."""
    path = Path(path)

    def stamp(t: float) -> str:
        return format_timestamp(max(0, round(t * 1000)), ",")

    path.write_text("".join(f"{i + 1}\n{stamp(s)} --> {stamp(e)}\n{text}\n\n" for i, (s, e, text) in enumerate(cues)),
                    encoding="utf-8")
    return path


def container_subtitles(video: str | Path, out: str | Path, movie: str, progress: bool = True) -> Path:
    """The dialogue of ``video``'s subtitle stream written to ``<out>/<movie>.dialogue.srt`` (returned).

    Raises:
        DataFormatError: as :func:`subtitle_stream_cues`, or a stream without any text cue.
    """
    cues = subtitle_stream_cues(video, progress)
    if not cues:
        raise DataFormatError(video, "its subtitle stream holds no text cue",
                              "give --subtitles FILE (an .srt or .vtt of the film's dialogue)")
    Path(out).mkdir(parents=True, exist_ok=True)
    path = write_srt(cues, Path(out) / f"{movie}.dialogue.srt")
    log.info("%s: %d subtitle cues from the film's subtitle stream", path, len(cues))
    return path


# ----------------------------------------------------------------------------------------------------- features


def feature_cache(out: str | Path, movie: str) -> Path:
    return Path(out) / f"{movie}.features.h5"


def _stamp(path: str | Path) -> str:
    """A cheap identity of a file or folder: its size and modification time (of each file in a folder)."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return ";".join(f"{p.name}|{p.stat().st_size}|{p.stat().st_mtime_ns}" for p in files)


def cache_identity(source: FilmSource, fps: float) -> dict[str, str]:
    """What the cached features were made from (stored as the dataset's attributes)."""
    weights = source.clip_model[len(LOCAL_DIR):] if source.clip_model.startswith(LOCAL_DIR) else source.clip_checkpoint
    return {"made_fps": f"{float(fps):g}", "clip_model": source.clip_model,
            "clip_weights": _stamp(weights) if weights else "", "video": _stamp(source.video)}


def cached_features(path: Path, movie: str, identity: dict[str, str]) -> bool | None:
    """True: ``path`` holds ``movie``'s complete features made as ``identity`` says; False: it holds something
    else (discard it); None: nothing usable yet (no file, or a dataset left half-written: resume)."""
    import h5py

    from moviead.extraction import COMPLETE_ATTR

    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as handle:
            if movie not in handle:
                return None
            attrs = handle[movie].attrs
            if not attrs.get(COMPLETE_ATTR, False):
                return None
            return all(str(attrs.get(k, "")) == v for k, v in identity.items())
    except OSError:
        return False  # not readable as HDF5 (killed during a flush): start over


def ensure_features(source: FilmSource, out: str | Path, movie: str, fps: float, feature_dim: int,
                    progress: bool = True) -> Path:
    """``<out>/<movie>.features.h5`` with ``movie``'s features at ``fps``, extracted unless a rerun finds them.

    Raises:
        ValueError: the CLIP model's embedding width is not the checkpoint's ``data.feature_dim``.
        The errors of :func:`moviead.clip_towers.load_open_clip` and :func:`moviead.extraction.extract_features`.
    """
    path = feature_cache(out, movie)
    identity = cache_identity(source, fps)
    state = cached_features(path, movie, identity)
    if state:
        log.info("%s: reusing the features of %s", path, movie)
        return path
    if state is False:
        log.warning("%s: made from another film, CLIP model or fps: extracting again", path)
        path.unlink()
    from moviead import extraction
    from moviead.clip_towers import load_open_clip
    from moviead.evaluation.decode import pick_device

    model, preprocess, _ = load_open_clip(source.clip_model, source.clip_checkpoint,
                                          model_config_file=source.clip_model_config)
    width = int(getattr(model.visual, "output_dim", 0) or 0)
    if width and width != feature_dim:
        raise ValueError(f"--clip-model {source.clip_model} gives {width}-d frame features, the checkpoint takes "
                         f"{feature_dim}-d ones: use the CLIP model the checkpoint was trained on")
    embedder = extraction.FrameEmbedder.from_open_clip(model, preprocess, device=pick_device(source.device),
                                                       batch_size=source.batch_size)
    extraction.extract_features([Path(source.video)], path, embedder, fps=fps, batch_size=source.batch_size,
                                movie_id_from=lambda _: movie, progress=progress)
    import h5py

    with h5py.File(path, "a") as handle:
        handle[movie].attrs.update(identity)
    return path


def prepare_film(request: DescribeRequest, fps: float, feature_dim: int) -> DescribeRequest:
    """``request`` with ``features`` (the cache, extracted when needed) and ``subtitles`` (given, else from the
    container) filled in from ``request.film``."""
    source = request.film
    assert source is not None and request.features is None
    progress = request.decode.progress
    features = ensure_features(source, request.out, request.movie, fps, feature_dim, progress)
    subtitles = request.subtitles or str(container_subtitles(source.video, request.out, request.movie, progress))
    return replace(request, features=str(features), subtitles=subtitles)
