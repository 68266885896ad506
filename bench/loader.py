"""Benchmark: random 8-frame clips through MADDataModule's DataLoader (2 workers) from 1 GB and 4 GB h5 files.

Writes fp16 768-d MAD-v2-layout feature files (movies of 2 h at 5 fps) with 36,000 ADs spread over the movies
(the same number for every size, so that only the feature file grows) and split files beside them,
then reads batches of 64 random clips (linspace sampling, oracle context, no tokenizer) and reports
clips/s after a warm-up and the peak resident memory of the main process plus its workers, sampled every
20 ms. Targets (issue #2): ≥ 2,000 clips/s; peak RSS grows < 100 MB from the 1 GB to the 4 GB file.

    .venv/bin/python bench/loader.py [--sizes-gb 1 4] [--clips 30000] [--workdir bench/.work] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import psutil

from moviead.config import load_config
from moviead.datamodules import MADDataModule

DIM, FPS, MOVIE_FRAMES = 768, 5.0, 36_000  # 2 h at 5 fps
TOTAL_ADS = 36_000  # the same in every file size, so that only the feature file grows


def write_dataset(root: Path, size_gb: float, seed: int = 0) -> int:
    """MAD-v2 layout of about ``size_gb`` GB of fp16 features; returns the number of movies."""
    root.mkdir(parents=True, exist_ok=True)
    movies = max(1, round(size_gb * 1e9 / (MOVIE_FRAMES * DIM * 2)))
    rng = np.random.default_rng(seed)
    rows = ["movie,start,end,text"]
    with h5py.File(root / "CLIP_L14_frames_features_5fps.h5", "w") as h5:
        for m in range(movies):
            name = f"bench{m:04d}"
            data = h5.create_dataset(name, shape=(MOVIE_FRAMES, DIM), dtype=np.float16)
            for first in range(0, MOVIE_FRAMES, 6_000):
                data[first : first + 6_000] = rng.random((6_000, DIM), dtype=np.float32).astype(np.float16)
            starts = np.sort(rng.uniform(0, MOVIE_FRAMES / FPS - 10, TOTAL_ADS // movies))
            for s in starts:
                rows.append(f"{name},{s:.3f},{s + rng.uniform(1, 8):.3f},someone does something")
    (root / "ads.csv").write_text("\n".join(rows) + "\n")
    names = [f"bench{m:04d}" for m in range(movies)]
    (root / "split.json").write_text(json.dumps({"TRAIN": names, "EVAL": names[:1]}))
    return movies


class PeakRSS:
    """Samples the summed RSS of this process and its children in a background thread."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.interval)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measure(root: Path, clips: int, workers: int, batch_size: int) -> dict:
    cfg = load_config(
        overrides=[
            "data.dataset=mad",
            f"data.root={root}",
            "data.mad.annotations=ads.csv",
            "data.mad.annotations_unnamed=null",
            "data.mad.subtitles=null",
            "data.mad.split=split.json",
            "data.val_movies=1",  # validation is carved from TRAIN; the benchmark reads the training loader only
            f"loader.num_workers={workers}",
            f"loader.batch_size={batch_size}",
            "loader.frames.num_frames=8",
        ]
    ).data
    with PeakRSS() as rss:
        dm = MADDataModule(cfg)
        dm.setup("fit")
        loader = dm.train_dataloader()
        seen, began = 0, None
        for batch in loader:
            if began is None:  # the first batch pays for worker start-up
                began = time.perf_counter()
                continue
            seen += batch["frames"].shape[0]
            if seen >= clips:
                break
        elapsed = time.perf_counter() - began
    return {
        "clips": seen,
        "seconds": round(elapsed, 2),
        "clips_per_s": round(seen / elapsed),
        "peak_rss_mb": round(rss.peak / 2**20),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes-gb", type=float, nargs="+", default=[1.0, 4.0])
    parser.add_argument("--clips", type=int, default=30_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workdir", type=Path, default=Path("bench/.work"))
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    results = []
    for size in args.sizes_gb:
        root = args.workdir / f"loader_{size:g}gb"
        began = time.perf_counter()
        movies = write_dataset(root, size)
        file_gb = (root / "CLIP_L14_frames_features_5fps.h5").stat().st_size / 1e9
        print(f"wrote {file_gb:.2f} GB ({movies} movies) in {time.perf_counter() - began:.0f} s", flush=True)
        result = {
            "file_gb": round(file_gb, 2),
            "movies": movies,
            **measure(root, args.clips, args.workers, args.batch_size),
        }
        print(json.dumps(result), flush=True)
        results.append(result)
        if not args.keep:
            shutil.rmtree(root)
    if len(results) >= 2:
        print(
            f"peak RSS growth {results[0]['file_gb']} GB -> {results[-1]['file_gb']} GB: "
            f"{results[-1]['peak_rss_mb'] - results[0]['peak_rss_mb']} MB"
        )


if __name__ == "__main__":
    main()
