"""Decoding text files: UTF-8, with cp1252 only for the lines that are not UTF-8."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from moviead.data.errors import DataFormatError
from moviead.data.formats.mad import read_ad_csv
from moviead.data.text_io import read_text


def test_one_cp1252_line_does_not_turn_the_utf8_lines_into_mojibake(tmp_path: Path, caplog) -> None:
    path = tmp_path / "ads.csv"
    path.write_bytes(
        "movie,start,end,text\n".encode() + "m,0,1,Zoë smiles.\n".encode("utf-8")
        + "m,2,3,Café noir.\r\n".encode("cp1252") + "m,4,5,Ørjan waves — twice.\n".encode("utf-8")
    )
    with caplog.at_level(logging.WARNING, logger="moviead.data.text_io"):
        ads = read_ad_csv(path)
    assert [ad.text for ad in ads] == ["Zoë smiles.", "Café noir.", "Ørjan waves — twice."]
    assert f"{path}: 1 line(s) are not valid UTF-8 and were decoded as cp1252 (line 3)" in caplog.text


def test_valid_utf8_with_a_bom_is_read_without_a_warning(tmp_path: Path, caplog) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes("\ufeffnaïve\nline".encode("utf-8"))
    with caplog.at_level(logging.WARNING, logger="moviead.data.text_io"):
        assert read_text(path) == "naïve\nline"
    assert caplog.text == ""


def test_a_line_in_neither_encoding_is_an_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"ok\ncaf\xe9\nbad \x81 byte\n")  # 0x81 is undefined in cp1252
    with pytest.raises(DataFormatError) as err:
        read_text(path)
    assert str(err.value).startswith(f"{path} [line 3]: text is neither UTF-8 nor cp1252. Fix: re-encode")


def test_utf16_text_is_an_error_not_mojibake(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes("movie,start,end,text\n".encode("utf-16"))
    with pytest.raises(DataFormatError, match=r"a\.csv: the file holds NUL bytes.*UTF-16.*iconv -f utf-16"):
        read_text(path)
