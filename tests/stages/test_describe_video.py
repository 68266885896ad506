"""``moviead describe --video FILM``: frame features extracted on the fly into a cache beside the output (reused by a
rerun), the dialogue read from the film's subtitle stream when no ``--subtitles`` is given, one-line user errors.

The films are encoded here with PyAV (64x64 MPEG-4 at 2 fps); their subtitle streams are muxed as raw packets:
mov_text in .mp4, SubRip in .mkv. The frame features come from a tiny open_clip model of
``configs/open_clip/moviead-tiny-768.json`` (768-d, as the toy captioner takes) saved as a plain state dict.
"""

from __future__ import annotations

import json
import wave
from fractions import Fraction
from pathlib import Path

import av
import h5py
import numpy as np
import pytest
import torch

from moviead.cli import main
from tests._film import write_film

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY_CLIP = CONFIGS / "open_clip" / "moviead-tiny-768.json"
SUBTITLES = [(3.0, 5.5, "Where were you?"), (6.0, 8.0, "Out."), (20.0, 24.0, "You missed the train.")]
ASS_HEADER = (b"[Script Info]\nScriptType: v4.00+\n\n[V4+ Styles]\nFormat: Name, Fontname, Fontsize\n"
              b"Style: Default,Arial,16\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, "
              b"MarginV, Effect, Text\n")


def encode_film(path: Path, seconds: float = 30.0, rate: int = 2, subtitles=(), subtitle_codec: str | None = None
                ) -> Path:
    """A 64x64 film (frame i: grey level 4 i) with, when ``subtitle_codec`` is given, a subtitle stream of
    ``subtitles`` ((start, end, text) in seconds)."""
    container = av.open(str(path), "w")
    video = container.add_stream("mpeg4", rate=rate)
    video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
    stream = None
    if subtitle_codec is not None:
        stream = container.add_stream(subtitle_codec)
        stream.codec_context.subtitle_header = ASS_HEADER  # the SubRip and mov_text encoders need one to open
        stream.time_base = Fraction(1, 1000)
    for i in range(int(seconds * rate)):
        pixels = np.full((64, 64, 3), (4 * i) % 256, np.uint8)
        pixels[:, : 8 * (i % 8)] = 255
        for packet in video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
            container.mux(packet)
    for packet in video.encode():
        container.mux(packet)
    for start, end, text in subtitles if stream is not None else ():
        data = text.encode()
        if subtitle_codec == "mov_text":
            data = len(data).to_bytes(2, "big") + data  # a mov_text sample: 16-bit length, then the text
        packet = av.Packet(data)
        packet.stream, packet.time_base = stream, stream.time_base
        packet.pts = packet.dts = round(start * 1000)
        packet.duration = round((end - start) * 1000)
        container.mux(packet)
    container.close()
    return path


@pytest.fixture(scope="module")
def clip_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny 768-d open_clip model's state dict (seed 0), as a released ``.pt`` checkpoint is loaded."""
    import open_clip

    torch.manual_seed(0)
    model = open_clip.CLIP(**json.loads(TINY_CLIP.read_text()))
    path = tmp_path_factory.mktemp("clip") / "tiny-768.pt"
    torch.save(model.state_dict(), path)
    return path


def clip_args(weights: Path) -> list[str]:
    return ["--clip-model", TINY_CLIP.stem, "--clip-model-config", str(TINY_CLIP), "--clip-checkpoint", str(weights),
            "--clip-batch-size", "32"]


@pytest.fixture()
def extractions(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The feature files :func:`moviead.extraction.extract_features` was called to write, in call order."""
    from moviead import extraction

    calls: list[Path] = []
    real = extraction.extract_features

    def counted(videos, out_h5, *args, **kwargs):
        calls.append(Path(out_h5))
        return real(videos, out_h5, *args, **kwargs)

    monkeypatch.setattr(extraction, "extract_features", counted)
    return calls


def run_describe(*args: str) -> int:
    return main(["describe", *args, "--min-gap", "3", "--max-cue", "6", "--no-progress", "--device", "cpu"])


def test_describe_from_the_film_file_with_its_subtitle_stream(stage2_checkpoint: Path, clip_weights: Path,
                                                              extractions: list[Path], tmp_path: Path, capsys) -> None:
    film = encode_film(tmp_path / "myfilm.mp4", subtitles=SUBTITLES, subtitle_codec="mov_text")
    out = tmp_path / "track"
    args = ["--video", str(film), "--checkpoint", str(stage2_checkpoint), "--out", str(out), *clip_args(clip_weights)]
    assert run_describe(*args) == 0
    assert "AD cues for myfilm" in capsys.readouterr().out

    cache = out / "myfilm.features.h5"
    assert extractions == [cache]
    with h5py.File(cache, "r") as f:
        assert f["myfilm"].shape == (150, 768) and f["myfilm"].attrs["complete"]  # 30 s at 5 fps, the toy's fps
    # the dialogue came from the mov_text stream, with the times and texts it was muxed with
    dialogue = (out / "myfilm.dialogue.srt").read_text(encoding="utf-8")
    assert "00:00:20,000 --> 00:00:24,000\nYou missed the train." in dialogue and dialogue.count(" --> ") == 3
    # gaps with 0.2 s margins: [0, 2.8] too short, [8.2, 19.8] → 2 cues, [24.2, 30] → 1 cue
    track = [json.loads(line) for line in (out / "myfilm.ad.jsonl").read_text().splitlines()]
    assert len(track) == 3
    for cue in track:
        assert 0 < cue["end"] - cue["start"] <= 6.0 + 1e-6
        assert all(cue["end"] <= s or cue["start"] >= e for s, e, _ in SUBTITLES), cue
    spoken = [c for c in track if c["text"].strip()]
    assert (out / "myfilm.vtt").read_text(encoding="utf-8").count(" --> ") == len(spoken)
    assert (out / "myfilm.srt").read_text(encoding="utf-8").count(" --> ") == len(spoken)

    # a rerun reuses the cached features (no extraction, the file untouched) and resumes the finished track
    stamp = cache.stat().st_mtime_ns
    assert run_describe(*args) == 0
    assert extractions == [cache] and cache.stat().st_mtime_ns == stamp
    assert [json.loads(line) for line in (out / "myfilm.ad.jsonl").read_text().splitlines()] == track


def test_subtitle_stream_cues_of_srt_in_mkv(tmp_path: Path) -> None:
    from moviead.evaluation.film_input import subtitle_stream_cues

    cues = [(0.5, 1.25, "Hello <i>there</i>."), (2.0, 2.5, "Bye.")]
    film = encode_film(tmp_path / "film.mkv", seconds=3.0, subtitles=cues, subtitle_codec="subrip")
    assert subtitle_stream_cues(film, progress=False) == [(0.5, 1.25, "Hello there."), (2.0, 2.5, "Bye.")]


def test_features_and_video_together_the_video_is_only_the_preview(stage2_checkpoint: Path, clip_weights: Path,
                                                                   extractions: list[Path], tmp_path: Path) -> None:
    features, srt = write_film(tmp_path, 768, SUBTITLES, seconds=30.0)
    film = encode_film(tmp_path / "other.mp4", seconds=2.0)  # no subtitle stream: --subtitles is used
    out = tmp_path / "track"
    assert run_describe("--features", str(features), "--movie", "myfilm", "--subtitles", str(srt), "--video",
                        str(film), "--checkpoint", str(stage2_checkpoint), "--out", str(out), "--html") == 0
    assert extractions == [] and not list(out.glob("*.features.h5"))
    assert len((out / "myfilm.ad.jsonl").read_text().splitlines()) == 3
    assert "other.mp4" in (out / "myfilm.preview.html").read_text(encoding="utf-8")


def _one_line_error(capsys, code: int) -> str:
    captured = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("moviead describe: error: "), captured.err
    return lines[0]


def test_film_errors_are_one_line(tmp_path: Path, clip_weights: Path, capsys) -> None:
    checkpoint = tmp_path / "last.ckpt"
    checkpoint.write_bytes(b"never loaded: the film is refused first")
    common = ["--checkpoint", str(checkpoint), "--out", str(tmp_path / "out")]

    sound = tmp_path / "sound.wav"
    with wave.open(str(sound), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(np.zeros(8000, np.int16).tobytes())
    line = _one_line_error(capsys, run_describe("--video", str(sound), *common, *clip_args(clip_weights)))
    assert "no video stream" in line

    silent = encode_film(tmp_path / "silent.mp4", seconds=2.0)
    line = _one_line_error(capsys, run_describe("--video", str(silent), *common, *clip_args(clip_weights)))
    assert "no subtitle stream" in line and "give --subtitles FILE" in line

    line = _one_line_error(capsys, run_describe("--video", str(silent), *common, "--clip-model", "ViT-B-32"))
    assert "--clip-checkpoint" in line

    line = _one_line_error(capsys, run_describe("--video", str(silent), *common, "--clip-checkpoint",
                                                str(tmp_path / "missing.pt")))
    assert "--clip-checkpoint" in line and "missing.pt" in line

    line = _one_line_error(capsys, run_describe(*common))
    assert "--video" in line and "--features" in line


def test_feature_cache_is_reused_resumed_and_redone_when_its_sources_change(clip_weights: Path,
                                                                           extractions: list[Path],
                                                                           tmp_path: Path) -> None:
    import os

    from moviead.evaluation.film_input import FilmSource, ensure_features

    film = encode_film(tmp_path / "film.mp4", seconds=3.0)
    source = FilmSource(video=str(film), clip_model=TINY_CLIP.stem, clip_checkpoint=str(clip_weights),
                        clip_model_config=str(TINY_CLIP), device="cpu")
    out = tmp_path / "out"

    def extract() -> np.ndarray:
        path = ensure_features(source, out, "film", fps=5.0, feature_dim=768, progress=False)
        with h5py.File(path, "r") as f:
            return f["film"][:]

    first = extract()
    assert first.shape == (15, 768) and len(extractions) == 1
    assert np.array_equal(extract(), first) and len(extractions) == 1  # reused
    with h5py.File(out / "film.features.h5", "a") as f:
        f["film"].attrs["complete"] = False  # as a run killed mid-film leaves it
    assert np.array_equal(extract(), first) and len(extractions) == 2  # redone
    stat = film.stat()
    os.utime(film, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # another cut of the film at the same path
    assert np.array_equal(extract(), first) and len(extractions) == 3
    with pytest.raises(ValueError, match="768-d"):
        ensure_features(source, tmp_path / "other", "film", fps=5.0, feature_dim=512, progress=False)
