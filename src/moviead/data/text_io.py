"""Reading text files as UTF-8, falling back to cp1252 (the public MAD-Eval CSV has cp1252 bytes)."""

from __future__ import annotations

import io
from pathlib import Path

from moviead.data.errors import DataFormatError

ENCODINGS: tuple[str, ...] = ("utf-8-sig", "cp1252")


def read_text(path: str | Path) -> str:
    """Return the whole file decoded as UTF-8 (BOM allowed) or, failing that, cp1252.

    Raises:
        DataFormatError: if the file is missing or decodes in neither encoding.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(
            path, "file not found", "check the path in your data config (data.root and the file names)"
        )
    raw = path.read_bytes()
    for encoding in ENCODINGS:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise DataFormatError(
        path,
        "text is neither UTF-8 nor cp1252",
        "re-encode the file as UTF-8, e.g. `iconv -f <its encoding> -t utf-8 IN > OUT`",
    )


def open_text(path: str | Path) -> io.StringIO:
    """A text stream over :func:`read_text`'s result, for readers that want a file object (csv, pandas)."""
    return io.StringIO(read_text(path))
