"""Frame features from video files, written in MAD-v2's HDF5 layout (SPEC §3.1): one (T, D) dataset per movie id.

``moviead extract-features VIDEO_OR_DIR --out FILE.h5 --fps 5`` calls :func:`run_extract_features`. Frame k of a
movie is the picture on screen at time k / fps (the last decoded frame whose timestamp is ≤ k / fps), so a movie
of duration S seconds gives ``ceil(S · fps)`` rows, the same indexing the data layer uses
(``moviead.data.frames.interval_frames``). Frames are embedded in batches and appended to the dataset as they
come: a two-hour movie never sits in memory. A dataset gets the attribute ``complete=True`` only after its last
row is written, so a rerun skips finished movies and redoes one that a killed run left half-written.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

import av
import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from moviead.data.errors import DataFormatError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm")
FRAME_EPSILON = 1e-6  # in frames: a sample time within 1e-6 frame of a timestamp counts as that timestamp
COMPLETE_ATTR = "complete"
CHUNK_ROWS = 256  # HDF5 chunk height: 256 frames = 51 s at 5 fps; a 768-d float16 chunk is 384 KiB


def expected_num_frames(duration_s: float, fps: float) -> int:
    """Rows :func:`iter_video_frames` yields for ``duration_s`` s of video: the k ≥ 0 with k / fps < duration."""
    if duration_s <= 0:
        return 0
    return max(0, math.ceil(duration_s * fps - FRAME_EPSILON))


def _open_video(path: Path) -> Any:
    """A PyAV input container with at least one video stream; DataFormatError naming ``path`` otherwise."""
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    try:
        container = av.open(str(path))
    except av.FFmpegError as err:
        raise DataFormatError(path, f"not a readable video ({err})",
                              "pass video files (mp4, mkv, avi, mov, webm)") from err
    if not container.streams.video:
        container.close()
        raise DataFormatError(path, "the file has no video stream", "pass a video file, not an audio or subtitle file")
    return container


def video_duration(path: str | Path) -> float | None:
    """Duration in seconds from the container's metadata (None when it does not say); for progress bars only."""
    container = _open_video(Path(path))
    try:
        stream = container.streams.video[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        return None if container.duration is None else container.duration / av.time_base
    finally:
        container.close()


def iter_video_frames(path: str | Path, fps: float = 5.0) -> Iterator[tuple[float, Image.Image]]:
    """Decode ``path`` and yield ``(k / fps, picture on screen at that time)`` for k = 0, 1, ... to the end.

    Times are measured from the first decoded frame (pts × the stream's time_base). A video slower than ``fps``
    repeats frames, a faster one skips them. The stream ends at the last frame's time plus its duration (the
    packet duration, else the previous frame gap, else 1 / the nominal rate), so ``expected_num_frames`` of the
    real duration rows come out. Only the frame on screen is held in memory.

    Raises:
        FileNotFoundError: no such file.
        DataFormatError: not a readable video, no video stream, no decodable frame, or a decoding error.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    path = Path(path)
    container = _open_video(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        time_base = stream.time_base
        nominal_gap = 1.0 / float(stream.average_rate) if stream.average_rate else 0.0
        origin: int | None = None
        shown: Any = None  # the av.VideoFrame on screen
        shown_image: Image.Image | None = None
        shown_time, last_gap, k = 0.0, 0.0, 0
        for frame in _decode(container, stream, path):
            if frame.pts is None:  # no timestamp (rare, raw streams): assume the regular frame rate
                t = shown_time + (last_gap or nominal_gap) if shown is not None else 0.0
            else:
                origin = frame.pts if origin is None else origin
                t = float((frame.pts - origin) * time_base)
            while shown is not None and k < t * fps - FRAME_EPSILON:  # time k/fps is before this frame
                shown_image = shown.to_image() if shown_image is None else shown_image
                yield k / fps, shown_image
                k += 1
            if shown is not None and t > shown_time:
                last_gap = t - shown_time
            shown, shown_image, shown_time = frame, None, t
        if shown is None:
            raise DataFormatError(path, "no decodable video frame", "check the file plays (ffprobe) or re-encode it")
        duration = float(shown.duration * time_base) if shown.duration and time_base is not None else 0.0
        end = shown_time + (duration or last_gap or nominal_gap)
        while k < end * fps - FRAME_EPSILON:
            shown_image = shown.to_image() if shown_image is None else shown_image
            yield k / fps, shown_image
            k += 1
    finally:
        container.close()


def _decode(container: Any, stream: Any, path: Path) -> Iterator[Any]:
    """``container.decode(stream)`` with decoding errors turned into a DataFormatError naming the file."""
    frames = container.decode(stream)
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except av.FFmpegError as err:
            raise DataFormatError(path, f"decoding failed ({err})",
                                  "re-encode the video (ffmpeg -i IN -c:v libx264 OUT)") from err
        yield frame


class ImageEmbedder(Protocol):
    """Anything that turns a list of N pictures into an (N, D) float32 array."""

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray: ...


class FrameEmbedder:
    """Batched image embedding with an open_clip vision tower, or any ``encode`` (N, 3, H, W) → (N, D).

    ``normalize`` (default True) divides each embedding by its L2 norm. Our Stage-I adaptation (SPEC §4.2) and
    the cosine-similarity baselines of MAD (``Soldelli/MAD`` ``baselines/0ShotCLIP``: ``CosineSimilarity`` on the
    h5 features) only use directions, so normalised features lose nothing. Whether MAD's released
    ``CLIP_*_frames_features_5fps.h5`` are themselves normalised is not stated in MAD's data documentation
    (``Soldelli/MAD`` ``doc/README.md``) and we could not check it; pass ``normalize=False`` to write raw
    ``encode_image`` outputs when matching a file of unnormalised features.
    """

    def __init__(self, encode: Callable[[torch.Tensor], torch.Tensor],
                 preprocess: Callable[[Image.Image], torch.Tensor], device: str | torch.device = "cpu",
                 batch_size: int = 64, normalize: bool = True, dtype: torch.dtype = torch.float32) -> None:
        """
        Args:
            encode: image batch (N, 3, H, W) on ``device`` → embeddings (N, D); put it on ``device`` yourself.
            preprocess: one PIL picture → a (3, H, W) tensor (open_clip's eval transform).
            dtype: the dtype ``encode`` expects (float16 for a half-precision model).
        """
        self.encode = encode
        self.preprocess = preprocess
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.normalize = normalize
        self.dtype = dtype

    @classmethod
    def from_open_clip(cls, model: torch.nn.Module, preprocess: Callable[[Image.Image], torch.Tensor],
                       device: str | torch.device = "cpu", batch_size: int = 64,
                       normalize: bool = True) -> FrameEmbedder:
        """Embed with ``model.encode_image`` (the model is moved to ``device`` and put in eval mode)."""
        model.to(device).eval()
        dtype = next(model.parameters()).dtype
        return cls(model.encode_image, preprocess, device=device, batch_size=batch_size, normalize=normalize,
                   dtype=dtype)

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embeddings of ``images`` as float32, shape (N, D), computed ``batch_size`` pictures at a time."""
        out: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                batch = images[start : start + self.batch_size]
                pixels = torch.stack([self.preprocess(im) for im in batch])  # (B, 3, H, W)
                feats = self.encode(pixels.to(self.device, self.dtype)).float()  # (B, D)
                if self.normalize:
                    feats = torch.nn.functional.normalize(feats, dim=-1)
                out.append(feats.cpu().numpy())
        if not out:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)


@dataclass
class ExtractionReport:
    """What one extraction run did."""

    out: Path
    done: int = 0  # movies extracted by this run
    skipped: int = 0  # movies already complete in the file
    redone: int = 0  # incomplete datasets (left by a killed run) deleted and extracted again
    frames: int = 0  # rows written by this run
    seconds: float = 0.0

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        return (f"{self.out}: {self.done} movies extracted ({self.redone} redone), {self.skipped} already complete, "
                f"{self.frames} frames in {self.seconds:.1f} s ({self.frames_per_second:.1f} frames/s)")


def videos_in(path: str | Path) -> list[Path]:
    """``[path]`` for a file; the videos (mp4, mkv, avi, mov, webm) directly inside a folder, sorted by name."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"no such video file or folder: {path}")
    videos = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise DataFormatError(path, f"no video file ({', '.join(VIDEO_SUFFIXES)}) in this folder",
                              "point at a video file or at the folder that holds the movies")
    return videos


def _movie_ids(videos: Sequence[Path], movie_id_from: Callable[[Path], str]) -> list[str]:
    """Ids of ``videos``, checked to be usable h5 dataset names and unique (before any work starts)."""
    ids = [movie_id_from(p) for p in videos]
    first: dict[str, Path] = {}
    for video, movie in zip(videos, ids):
        if not movie or "/" in movie or movie in (".", ".."):
            raise DataFormatError(video, f"movie id {movie!r} cannot name an HDF5 dataset", "rename the file")
        if movie in first:
            raise DataFormatError(video, f"movie id {movie!r} is also the id of {first[movie]}",
                                  "rename one of the files or extract them into different h5 files",
                                  record=f"movie {movie}")
        first[movie] = video
        if not video.is_file():
            raise FileNotFoundError(f"video not found: {video}")
    return ids


def _file_dim(handle: Any) -> int | None:
    """Feature dimension D of the datasets already in the file (None when it holds none)."""
    for key in handle:
        item = handle[key]
        if hasattr(item, "shape") and len(item.shape) == 2:
            return int(item.shape[1])
    return None


def _write_movie(handle: Any, movie: str, video: Path, embedder: ImageEmbedder, fps: float, batch_size: int,
                 dtype: np.dtype, file_dim: int | None, progress: bool) -> int:
    """Embed every sampled frame of ``video`` into a new dataset ``handle[movie]`` (T, D); return T."""
    duration = video_duration(video)
    bar = tqdm(total=None if duration is None else expected_num_frames(duration, fps), desc=movie, unit="frame",
               leave=False, disable=not progress)
    dataset: Any = None
    images: list[Image.Image] = []
    written = 0

    def flush() -> None:
        nonlocal dataset, written
        feats = np.asarray(embedder.embed(images)).astype(dtype)  # (N, D)
        if not np.isfinite(feats).all():
            raise DataFormatError(video, f"non-finite features near frame {written} after casting to {dtype}",
                                  "extract with dtype=float32, or normalize=True")
        if dataset is None:
            dim = feats.shape[1]
            if file_dim is not None and dim != file_dim:
                raise DataFormatError(handle.filename, f"the file holds {file_dim}-d features, this model {dim}-d",
                                      "write to another --out file", record=f"movie {movie}")
            dataset = handle.create_dataset(movie, shape=(0, dim), maxshape=(None, dim), dtype=dtype,
                                            chunks=(CHUNK_ROWS, dim))
            handle.flush()  # a run killed from here on leaves a readable file with this dataset incomplete
        dataset.resize(written + len(feats), axis=0)
        dataset[written:] = feats
        written += len(feats)
        bar.update(len(feats))
        images.clear()

    try:
        for _, image in iter_video_frames(video, fps):
            images.append(image)
            if len(images) == batch_size:
                flush()
        if images:
            flush()
    finally:
        bar.close()
    if dataset is None:
        raise DataFormatError(video, "no frame sampled", "check the video is not empty")
    dataset.attrs.update({"fps": fps, "num_frames": written, "source": video.name})
    dataset.attrs[COMPLETE_ATTR] = True  # last: a run killed before this line leaves an incomplete dataset
    return written


def extract_features(
    videos: Sequence[Path], out_h5: Path, embedder: ImageEmbedder, fps: float = 5.0, batch_size: int = 64,
    movie_id_from: Callable[[Path], str] = lambda p: p.stem, dtype: Any = np.float16, progress: bool = True,
) -> ExtractionReport:
    """Write the features of ``videos`` into ``out_h5``: one dataset per movie id, shape (T, D), ``dtype``.

    The file is opened in append mode: movies already there with ``complete=True`` are skipped (their ``fps``
    attribute must equal ``fps``), an incomplete dataset is deleted and redone, and datasets of other movies are
    left alone. Frames are embedded ``batch_size`` at a time and appended to a chunked dataset
    (maxshape (None, D)). The file is flushed when opened, when a movie's dataset is created and when it is
    complete, so a run killed mid-movie (checked with SIGKILL) leaves a readable file whose finished movies are
    kept and whose current movie is incomplete (HDF5 is not journaled: a kill during a flush can still corrupt
    it). HDF5 does not reuse the space of a deleted dataset: ``h5repack`` shrinks a file after many redos.

    Raises:
        DataFormatError: two videos with the same movie id (before any work), an unreadable video (naming it),
            a feature dimension or fps different from what the file holds.
    """
    import h5py

    videos = [Path(v) for v in videos]
    ids = _movie_ids(videos, movie_id_from)
    out_h5 = Path(out_h5)
    out_h5.parent.mkdir(parents=True, exist_ok=True)
    report = ExtractionReport(out=out_h5)
    start = time.perf_counter()
    try:
        handle = h5py.File(out_h5, "a")
    except OSError as err:
        raise DataFormatError(out_h5, f"cannot open as HDF5 for appending ({err})",
                              "delete or move the file (a run killed mid-write can leave it unreadable)") from err
    with handle:
        handle.flush()  # a new file is valid HDF5 from the start, even if this run is killed in its first movie
        for movie, video in tqdm(list(zip(ids, videos)), desc="movies", unit="movie", disable=not progress):
            if movie in handle:
                if handle[movie].attrs.get(COMPLETE_ATTR, False):
                    done_fps = float(handle[movie].attrs.get("fps", fps))
                    if abs(done_fps - fps) > 1e-9:
                        raise DataFormatError(out_h5, f"movie {movie!r} was extracted at {done_fps} fps, not {fps}",
                                              "use the same --fps or another --out file", record=f"movie {movie}")
                    report.skipped += 1
                    continue
                log.info("%s: deleting the incomplete dataset of %s (a killed run?) and extracting it again",
                         out_h5, movie)
                del handle[movie]
                report.redone += 1
            file_dim = _file_dim(handle)
            report.frames += _write_movie(handle, movie, video, embedder, fps, batch_size, np.dtype(dtype), file_dim,
                                          progress)
            report.done += 1
            handle.flush()
    report.seconds = time.perf_counter() - start
    log.info("%s", report)
    return report


def run_extract_features(
    video_or_dir: str, out: str, clip_model: str, clip_checkpoint: str | None, fps: float, batch_size: int,
    random_init: bool = False, device: str = "cpu", normalize: bool = True, progress: bool = True,
) -> ExtractionReport:
    """``moviead extract-features``: load an open_clip model offline and extract every video of ``video_or_dir``.

    ``clip_model`` is an open_clip architecture (``ViT-L-14`` with ``clip_checkpoint`` = its weights file) or
    ``local-dir:PATH``. The adapted vision tower exported by Stage-I CLIP adaptation is saved in that local-dir
    layout, so re-extracting with it is ``clip_model="local-dir:PATH"``: no separate parameter is needed.
    Movie ids are the file stems.
    """
    from moviead.clip_towers import load_open_clip

    model, preprocess, _ = load_open_clip(clip_model, clip_checkpoint, random_init=random_init)
    embedder = FrameEmbedder.from_open_clip(model, preprocess, device=device, batch_size=batch_size,
                                            normalize=normalize)
    return extract_features(videos_in(video_or_dir), Path(out), embedder, fps=fps, batch_size=batch_size,
                            progress=progress)
