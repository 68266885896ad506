"""The argument side of ``moviead``: argparse types that check ranges, a parser whose errors are one line, and the
exceptions that count as user errors (one ``moviead <command>: error: ...`` line and exit 2, no traceback).

Nothing here imports omegaconf, torch or transformers: a bad flag is reported within a fraction of a second.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from moviead.data.errors import DataFormatError
from moviead.data.records import ContextMode
from moviead.evaluation.locks import FolderLockedError
from moviead.user_errors import UserError

if TYPE_CHECKING:  # annotations only: nothing below imports omegaconf or torch at module load
    from omegaconf import DictConfig

    from moviead.evaluation.decode import DecodeSettings


def at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low`` (else a one-line error naming the flag)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def positive_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be > 0 seconds, got {text}")
    return value


def mode_list(text: str) -> list[str]:
    """An argparse type: comma-separated context modes (local, oracle, recurrent)."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    known = [m.value for m in ContextMode]
    bad = [m for m in modes if m not in known]
    if bad or not modes:
        raise argparse.ArgumentTypeError(f"unknown mode {bad[0] if bad else text!r}: choose from {', '.join(known)} "
                                         "(comma-separated)")
    return modes


def export_list(text: str) -> list[str]:
    """An argparse type: comma-separated subtitle formats (vtt, srt)."""
    formats = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in ("vtt", "srt")]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown format {bad[0]!r}: choose from vtt, srt (comma-separated)")
    return formats


def caption_metric_list(text: str) -> list[str]:
    """An argparse type: comma-separated pycocoevalcap metrics (bleu, meteor, rouge, cider, spice), or none."""
    from moviead.metrics.captioning import METRICS, normalise_metric_names

    metrics = [m.strip() for m in text.split(",") if m.strip()]
    if [m.lower() for m in metrics] == ["none"]:
        return []
    for metric in metrics or [text]:
        try:
            normalise_metric_names([metric])
        except ValueError:
            raise argparse.ArgumentTypeError(f"unknown captioning metric {metric!r}: choose from {', '.join(METRICS)} "
                                             "(comma-separated), or none") from None
    return normalise_metric_names(metrics)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (``moviead <command>: error: ...``) and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# Errors in what the user gave (flags, config, input files, the output folder): one line and exit 2. ValueError
# covers moviead.config.ConfigError (not imported here: omegaconf loads only when a command reads a config).
USER_ERRORS: tuple[type[BaseException], ...] = (
    DataFormatError, FolderLockedError, FileNotFoundError, FileExistsError, NotADirectoryError,
    IsADirectoryError, PermissionError, ValueError, UserError,
)


def error_message(err: BaseException) -> str:
    """One line for a user error (an OSError from the system names its file)."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.strerror}: {err.filename}"
    return str(err) or type(err).__name__


def load_config(files: Sequence[str], overrides: Sequence[str]) -> DictConfig:
    """:func:`moviead.config.load_config`, imported on first use: a bad flag errors before omegaconf loads."""
    from moviead.config import load_config as load

    return load(files, overrides)


def split_config_args(items: Sequence[str]) -> tuple[list[str], list[str]]:
    """:func:`moviead.config.split_config_args`, imported on first use (a config is read right after)."""
    from moviead.config import split_config_args as split

    return split(items)


def decode_settings(args: argparse.Namespace) -> DecodeSettings:
    """The decoding settings that ``evaluate`` and ``describe`` take from their flags (imported on first use)."""
    from moviead.evaluation.decode import DecodeSettings

    return DecodeSettings(num_beams=args.beams, batch_size=args.batch_size, batch_movies=args.batch_movies,
                          device=args.device, progress=not args.no_progress)


def require_input(path: str | None, flag: str) -> None:
    """Refuse a missing input file or folder before anything heavy is imported.

    Raises:
        FileNotFoundError: ``path`` does not exist (names the flag).
    """
    if path is not None and not Path(path).exists():
        raise FileNotFoundError(f"{flag} {path}: no such file or folder")


def add_decoding_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--beams", type=at_least(1), help="beam size (default: the checkpoint's captioning.generation)")
    parser.add_argument("--batch-size", type=at_least(1), default=16, help="ADs per batch in local and oracle mode")
    parser.add_argument("--batch-movies", type=at_least(1), default=8,
                        help="movies decoded side by side in recurrent mode")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:1, ...")
    parser.add_argument("--restart", action="store_true", help="discard earlier predictions instead of resuming")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
