"""Feature extraction from video: frame sampling, the MAD-v2 h5 layout, resumability, errors.

The videos are encoded here with PyAV: the top half's colour gives the second (red, green, blue), the bottom
half's grey level is 8 × the source frame index, so each sampled picture tells which frame it is.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import h5py
import numpy as np
import pytest
import torch

from moviead.clip_towers import load_open_clip, save_open_clip_dir, tiny_open_clip_config
from moviead.data.errors import DataFormatError
from moviead.data.features import H5FeatureStore
from moviead.extraction import (
    FrameEmbedder,
    expected_num_frames,
    extract_features,
    iter_video_frames,
    run_extract_features,
    videos_in,
)

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


def encode_video(path: Path, rate: int, seconds: float, codec: str = "mpeg4") -> Path:
    """A 64x48 video at ``rate`` fps; frame i: top = COLOURS[second], bottom grey = 8 i.

    mpeg4 at qscale 2 keeps the grey level within about ±6 (enough for a few frames), libx264 at crf 0 within ±1.
    """
    container = av.open(str(path), "w")
    stream = container.add_stream(codec, rate=rate)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    stream.options = {"qscale": "2"} if codec == "mpeg4" else {"crf": "0"}
    for i in range(int(seconds * rate)):
        pixels = np.zeros((48, 64, 3), np.uint8)
        pixels[:24] = COLOURS[int(i / rate) % 3]
        pixels[24:] = 8 * i
        for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def decoded_index(image) -> tuple[int, int]:
    """(second from the top colour, source frame index from the bottom grey) of a sampled picture."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    return int(pixels[:24].mean((0, 1)).argmax()), int(round(pixels[24:].mean() / 8))


@pytest.fixture(scope="module")
def movie_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with one 3.0 s, 10 fps H.264 movie (``movie_a``; lossless, so the grey level reads back exactly)."""
    folder = tmp_path_factory.mktemp("videos")
    encode_video(folder / "movie_a.mp4", rate=10, seconds=3.0, codec="libx264")
    return folder


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny open_clip model saved in the local-dir layout."""
    import open_clip

    torch.manual_seed(0)
    cfg = tiny_open_clip_config()
    return save_open_clip_dir(open_clip.CLIP(**cfg), cfg, tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def reference(movie_dir: Path, clip_dir: Path) -> np.ndarray:
    """Normalised encode_image of the frames sampled at 5 fps, computed without FrameEmbedder, (15, 32)."""
    model, preprocess, _ = load_open_clip(f"local-dir:{clip_dir}")
    images = [image for _, image in iter_video_frames(movie_dir / "movie_a.mp4", fps=5.0)]
    with torch.no_grad():
        feats = model.encode_image(torch.stack([preprocess(im) for im in images]))
    return torch.nn.functional.normalize(feats, dim=-1).numpy()


@pytest.fixture()
def extracted(tmp_path: Path, movie_dir: Path, clip_dir: Path) -> Path:
    """The movie folder extracted at 5 fps with batch size 8 (two chunks) into a fresh h5 file."""
    out = tmp_path / "feats.h5"
    report = run_extract_features(str(movie_dir), str(out), f"local-dir:{clip_dir}", None, fps=5.0, batch_size=8)
    assert (report.done, report.skipped, report.frames) == (1, 0, 15)
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_expected_num_frames() -> None:
    assert expected_num_frames(3.0, 5.0) == 15
    assert expected_num_frames(3.0, 2.0) == 6
    assert expected_num_frames(3.01, 5.0) == 16
    assert expected_num_frames(0.0, 5.0) == 0


@pytest.mark.parametrize("fps", [5.0, 2.0])
def test_frames_sampled_at_the_right_times(movie_dir: Path, fps: float) -> None:
    frames = list(iter_video_frames(movie_dir / "movie_a.mp4", fps=fps))
    assert len(frames) == expected_num_frames(3.0, fps)
    for k, (t, image) in enumerate(frames):
        assert t == pytest.approx(k / fps)
        second, source = decoded_index(image)
        assert second == int(t)  # the colour of the second the sample falls in
        assert source == round(t * 10)  # the 10 fps source frame shown at k / fps


def test_slow_video_repeats_frames(tmp_path: Path) -> None:
    video = encode_video(tmp_path / "slow.avi", rate=2, seconds=2.0, codec="mpeg4")
    frames = list(iter_video_frames(video, fps=5.0))
    assert len(frames) == 10
    assert [decoded_index(im)[1] for _, im in frames] == [int(k * 2 / 5) for k in range(10)]


def test_extract_writes_mad_layout(extracted: Path, reference: np.ndarray) -> None:
    with h5py.File(extracted, "r") as f:
        assert list(f.keys()) == ["movie_a"]
        dataset = f["movie_a"]
        assert dataset.shape == (15, 32) and dataset.dtype == np.float16
        assert dataset.attrs["complete"] and dataset.attrs["fps"] == 5.0
    store = H5FeatureStore(extracted)
    assert store.movies() == ["movie_a"] and store.num_frames("movie_a") == 15 and store.dim() == 32
    feats = store.read("movie_a", np.arange(15))
    store.close()
    np.testing.assert_allclose(feats, reference, atol=2e-3)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=2e-3)


def test_rerun_skips_complete_movie(extracted: Path, movie_dir: Path, clip_dir: Path) -> None:
    before = sha256(extracted)
    report = run_extract_features(str(movie_dir), str(extracted), f"local-dir:{clip_dir}", None, fps=5.0,
                                  batch_size=8, progress=False)
    assert (report.done, report.skipped, report.frames) == (0, 1, 0)
    assert sha256(extracted) == before


def test_incomplete_dataset_is_redone(tmp_path: Path, movie_dir: Path, clip_dir: Path, reference: np.ndarray) -> None:
    out = tmp_path / "killed.h5"
    with h5py.File(out, "w") as f:  # what a killed run leaves: some rows, no complete flag
        f.create_dataset("movie_a", data=np.zeros((4, 32), np.float16), maxshape=(None, 32))
    model, preprocess, _ = load_open_clip(f"local-dir:{clip_dir}")
    report = extract_features(videos_in(movie_dir), out, FrameEmbedder.from_open_clip(model, preprocess),
                              batch_size=4, progress=False)
    assert (report.done, report.redone, report.skipped, report.frames) == (1, 1, 0, 15)
    with h5py.File(out, "r") as f:
        assert f["movie_a"].attrs["complete"]
        np.testing.assert_allclose(f["movie_a"][:].astype(np.float32), reference, atol=2e-3)


def test_duplicate_movie_ids_error_before_work(tmp_path: Path, movie_dir: Path) -> None:
    (tmp_path / "b").mkdir()
    twin = encode_video(tmp_path / "b" / "movie_a.mkv", rate=10, seconds=0.5)
    embedder = FrameEmbedder(lambda x: x.flatten(1), lambda im: torch.zeros(3, 2, 2))
    out = tmp_path / "out.h5"
    with pytest.raises(DataFormatError, match="movie_a"):
        extract_features([movie_dir / "movie_a.mp4", twin], out, embedder, progress=False)
    assert not out.exists()


def test_non_video_file_errors_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video\n")
    with pytest.raises(DataFormatError, match="notes.mp4"):
        next(iter_video_frames(bad))
    embedder = FrameEmbedder(lambda x: x.flatten(1), lambda im: torch.zeros(3, 2, 2))
    with pytest.raises(DataFormatError, match="notes.mp4"):
        extract_features(videos_in(tmp_path), tmp_path / "out.h5", embedder, progress=False)


def test_videos_in(tmp_path: Path) -> None:
    for name in ["b.mkv", "a.MP4", "c.webm", "notes.txt", "d.avi", "e.mov"]:
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in videos_in(tmp_path)] == ["a.MP4", "b.mkv", "c.webm", "d.avi", "e.mov"]
    assert videos_in(tmp_path / "b.mkv") == [tmp_path / "b.mkv"]
    with pytest.raises(FileNotFoundError):
        videos_in(tmp_path / "missing")
