import pytest

from moviead.config import FrameMode
from moviead.data.frames import FrameSampler, interval_frames


def test_interval_frames_floor_start_ceil_end() -> None:
    assert interval_frames(1.0, 2.0, 5.0) == (5, 9)
    assert interval_frames(1.1, 2.01, 5.0) == (5, 10)


def test_linspace_without_shift_is_exact() -> None:
    sampler = FrameSampler(fps=5.0, num_frames=4, train_shift=4)
    assert sampler.indices(1.0, 2.6, num_available=100).tolist() == [
        5,
        7,
        10,
        12,
    ]  # linspace(5, 12, 4) = 5, 7.33, 9.67, 12


def test_training_shift_moves_the_whole_window_by_at_most_train_shift() -> None:
    sampler = FrameSampler(fps=5.0, num_frames=4, train_shift=4)
    base = sampler.indices(1.0, 2.6, 100)
    assert (sampler.indices(1.0, 2.6, 100, shift=3) - base).tolist() == [3, 3, 3, 3]


def test_indices_never_leave_the_movie() -> None:
    sampler = FrameSampler(fps=5.0, num_frames=4, train_shift=4)
    assert sampler.indices(18.0, 20.0, 100, shift=4).tolist() == [94, 97, 99, 99]  # 90, 93, 96, 99 + 4, clipped


def test_all_mode_takes_every_frame_then_caps_at_max_frames() -> None:
    sampler = FrameSampler(fps=5.0, mode=FrameMode.all, max_frames=10)
    assert sampler.indices(0.0, 1.0, 100).tolist() == [0, 1, 2, 3, 4]
    capped = sampler.indices(0.0, 10.0, 100)
    assert len(capped) == 10 and capped[0] == 0 and capped[-1] == 49


@pytest.mark.parametrize("start,end,length,fits", [(0.0, 1.0, 5, True), (0.0, 1.2, 5, False), (2.0, 3.0, 10, False)])
def test_fits(start: float, end: float, length: int, fits: bool) -> None:
    assert FrameSampler(fps=5.0).fits(start, end, length) is fits
