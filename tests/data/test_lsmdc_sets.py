"""LSMDC context sets: an AD's context comes from its own 5-clip set, and a duplicated clip's twin is never context."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from moviead.config import ContextMode, load_config
from moviead.data.context import ContextBuilder, PredictionContext
from moviead.data.datasets import ADClipDataset
from moviead.data.records import ADRecord, MovieAnnotations
from moviead.data.requirements import DataRequirements
from moviead.data.sources import SplitData, load_split, make_dataset

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "data"
MOVIE, OTHER = "0001_Test_Movie", "0002_Other_Movie"
DIM, FPS, WIDE = 8, 5.0, 10  # WIDE: a context size that would reach back past any set boundary


def _hms(seconds: float) -> str:
    """LSMDC's ``HH.MM.SS.mmm``."""
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}.{ms // 60_000 % 60:02d}.{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _write_lsmdc(root: Path, duplicate: int) -> None:
    """A val TSV: ``MOVIE`` with 11 clips, clip ``duplicate`` listed twice (12 rows), then ``OTHER`` with 3 clips;
    one npy of features per clip id."""
    (root / "feats").mkdir(parents=True)
    lines = []
    clips = [(MOVIE, i) for i in range(11)] + [(OTHER, i) for i in range(3)]
    for movie, i in clips:
        start, end = 10.0 * i + 1, 10.0 * i + 5
        clip_id = f"{movie}_{_hms(start)}-{_hms(end)}"
        times = [_hms(start), _hms(end), _hms(start), _hms(end)]
        sentences = [f"{movie} clip {i} sentence."]
        if movie == MOVIE and i == duplicate:
            sentences.append(f"{movie} clip {i} said another way.")
        lines += ["\t".join([clip_id, *times, sentence]) for sentence in sentences]
        np.save(root / "feats" / f"{clip_id}.npy", np.full((int((end - start) * FPS) + 1, DIM), i, np.float32))
    (root / "annos_val.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(params=[2, 4], ids=["twins-inside-a-set", "twins-across-a-boundary"])
def lsmdc(tmp_path: Path, request: pytest.FixtureRequest):
    """The config and loaded val split of a tiny LSMDC movie whose duplicated clip is clip ``request.param``."""
    _write_lsmdc(tmp_path, request.param)
    cfg = load_config([CONFIGS / "lsmdc.yaml"], [
        f"data.root={tmp_path}", f"data.feature_dim={DIM}", "data.lsmdc.features=feats",
        "data.lsmdc.val=annos_val.csv", f"data.lsmdc.clip_fps={FPS}", "loader.num_workers=0",
        "loader.frames.train_shift=0",
    ])
    return cfg, load_split(cfg.data, "val"), request.param


def _datasets(cfg, data: SplitData) -> dict[str, ADClipDataset]:
    """One dataset per context mode, each with DSM proposals and neighbouring clips, context size ``WIDE``."""
    predictions = PredictionContext(data.movies)
    for movie in data.movies.values():
        for ad in movie.ads:
            predictions.set_prediction(ad.movie, ad.index, f"predicted {ad.text}")
    made = {}
    for mode in ContextMode:
        needs = DataRequirements(context_mode=mode, context_size=WIDE, proposal=True, neighbour_clips=WIDE)
        provider = predictions if mode == ContextMode.recurrent else None
        made[mode.value] = make_dataset(data, cfg.data, cfg.loader.frames, needs, training=False, provider=provider)
    return made


def _context_indices(dataset: ADClipDataset, position: int) -> dict[str, list[int]]:
    """The movie indices of every context source of example ``position``: context ADs, proposal ADs, neighbours."""
    item = dataset.items[position]
    example = dataset[position]
    return {
        "ads": [ad.index for ad in example.context.ads],
        "proposal": [p.ad.index for p in example.proposal if p.ad is not None],
        "neighbours": [n.record.index for n in dataset.neighbours(item)],
    }


def test_loader_numbers_sets_of_five_per_movie_across_the_split(lsmdc) -> None:
    _, data, _ = lsmdc
    assert [ad.context_group for ad in data.movies[MOVIE].ads] == [0] * 5 + [1] * 5 + [2] * 2
    assert [ad.context_group for ad in data.movies[OTHER].ads] == [3] * 3  # a set never spans two movies
    assert len(data.items) == 15


def test_context_stays_inside_the_set_and_never_holds_the_twin(lsmdc) -> None:
    cfg, data, duplicate = lsmdc
    ads = data.movies[MOVIE].ads
    twins = {ad.index for ad in ads if (ad.start, ad.end) == (10.0 * duplicate + 1, 10.0 * duplicate + 5)}
    assert len(twins) == 2
    for mode, dataset in _datasets(cfg, data).items():
        for position, item in enumerate(dataset.items):
            record = item.record
            found = _context_indices(dataset, position)
            for source, indices in found.items():
                if mode == "local" and source != "neighbours":
                    assert indices == [], (mode, source, record.index)
                    continue
                context = [data.movies[record.movie].ads[i] for i in indices]
                assert all(ad.context_group == record.context_group for ad in context), (mode, source, record.index)
                assert all(ad.index < record.index for ad in context), (mode, source, record.index)
                assert all((ad.start, ad.end) != (record.start, record.end) for ad in context), (
                    mode, source, record.index)
                if record.movie == MOVIE and record.index in twins:
                    assert not twins & set(indices), (mode, source, record.index)
                before = data.movies[record.movie].ads[record.index - 1] if record.index else None
                if before is None or before.context_group != record.context_group:
                    assert indices == [], (mode, source, record.index)  # the first clip of a set
            if mode != "local" and record.movie == MOVIE and record.index == 5:  # the 6th clip
                assert not {0, 1, 2, 3, 4} & set(found["ads"] + found["proposal"] + found["neighbours"])


def test_context_holds_every_earlier_clip_of_the_set(lsmdc) -> None:
    cfg, data, _ = lsmdc
    oracle = _datasets(cfg, data)["oracle"]
    last = next(p for p, item in enumerate(oracle.items) if (item.record.movie, item.record.index) == (MOVIE, 9))
    found = _context_indices(oracle, last)
    assert found["ads"] == found["proposal"] == found["neighbours"] == [5, 6, 7, 8]  # the set's 5th clip
    assert [ad.text for ad in oracle[last].context.ads] == [data.movies[MOVIE].ads[i].text for i in range(5, 9)]


def test_without_a_set_every_earlier_ad_of_the_movie_is_context() -> None:
    """MAD, toy and Storyboard records carry no set: context crosses any five-AD boundary, as before."""
    ads = [ADRecord("m", i, float(i), i + 0.5, f"ad {i}") for i in range(8)]
    builder = ContextBuilder({"m": MovieAnnotations("m", ads)}, context_size=WIDE, use_subtitles=False)
    assert [item.index for item in builder.build(ads[7]).ads] == list(range(7))
    assert [item.ad.index for item in builder.build_proposal(ads[7]) if item.ad is not None] == list(range(7))
