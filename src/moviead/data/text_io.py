"""Reading text files as UTF-8, falling back to cp1252 line by line (the public MAD-Eval CSV has cp1252 bytes).

A file that is valid UTF-8 (with or without a byte-order mark) is decoded as UTF-8. Otherwise each line is
decoded on its own: lines that are valid UTF-8 stay UTF-8 and only the others are read as cp1252, so one stray
cp1252 byte does not turn every accented UTF-8 character of the file into mojibake. How many lines needed the
fallback (and the first few of them) is logged as a warning.
"""

from __future__ import annotations

import codecs
import io
import logging
import re
from pathlib import Path

from moviead.data.errors import DataFormatError

logger = logging.getLogger(__name__)

ENCODINGS: tuple[str, ...] = ("utf-8", "cp1252")  # in the order tried, per line
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)?")
_SHOWN = 5  # line numbers listed in a warning or error


def _shown(lines: list[int]) -> str:
    return ", ".join(map(str, lines[:_SHOWN])) + (", ..." if len(lines) > _SHOWN else "")


def decode_lines(raw: bytes, path: str | Path = "<bytes>") -> str:
    """Decode ``raw`` as UTF-8 (a leading BOM dropped), falling back to cp1252 for just the lines that are not UTF-8.

    Line numbers are 1-based, counting ``\\n``, ``\\r\\n`` and ``\\r`` as line ends (as the csv module does).

    Raises:
        DataFormatError: naming the first line that decodes in neither encoding, or for a file that is not UTF-8
        and holds NUL bytes (UTF-16, a binary file).
    """
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if b"\x00" in raw:
        raise DataFormatError(
            path,
            "the file holds NUL bytes: it is not UTF-8 text (UTF-16?)",
            "re-encode the file as UTF-8, e.g. `iconv -f utf-16 -t utf-8 IN > OUT`",
        )
    parts: list[str] = []
    fallback: list[int] = []
    for number, match in enumerate(_LINE.finditer(raw), start=1):
        line = match.group()
        if not line:
            break  # the empty match at the very end
        try:
            parts.append(line.decode("utf-8"))
            continue
        except UnicodeDecodeError:
            pass
        try:
            parts.append(line.decode("cp1252"))
        except UnicodeDecodeError:
            raise DataFormatError(
                path,
                "text is neither UTF-8 nor cp1252",
                "re-encode the file as UTF-8, e.g. `iconv -f <its encoding> -t utf-8 IN > OUT`",
                record=f"line {number}",
            ) from None
        fallback.append(number)
    logger.warning(
        "%s: %d line(s) are not valid UTF-8 and were decoded as cp1252 (line %s); the other lines as UTF-8",
        path, len(fallback), _shown(fallback),
    )
    return "".join(parts)


def read_text(path: str | Path) -> str:
    """Return the whole file decoded by :func:`decode_lines` (UTF-8, cp1252 for the lines that are not UTF-8).

    Raises:
        DataFormatError: if the file is missing or a line decodes in neither encoding.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(
            path, "file not found", "check the path in your data config (data.root and the file names)"
        )
    return decode_lines(path.read_bytes(), path)


def open_text(path: str | Path) -> io.StringIO:
    """A text stream over :func:`read_text`'s result, for readers that want a file object (csv, pandas)."""
    return io.StringIO(read_text(path))
