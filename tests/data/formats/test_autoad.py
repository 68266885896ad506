"""TV-AD and CMD-AD CSV readers (AutoAD-III): ids, times, order and errors, on made-up rows."""

from __future__ import annotations

import pytest

from moviead.data.errors import DataFormatError
from moviead.data.formats.autoad import read_cmdad_csv, read_tvad_csv
from moviead.data.records import ADRecord

TVAD_HEADER = "text,start,end,imdbid,imdbid_pe,season,episode,scaled_end,scaled_start,duration,tvad_name,tvad_index"
CMDAD_HEADER = "text,start,end,movie,scaled_start,scaled_end,cmd_filename,imdbid,movie_title,cmd_clip_idx"


def write(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_tvad_uses_imdbid_pe_else_tvad_name(tmp_path):
    path = write(tmp_path, "tvad_anno.csv", [
        TVAD_HEADER,
        'Kim sits down.,12.5,14.0,tt900,tt901,1,2,14.0,12.5,1.5,show_s01e02_seg01_clip_00,"[1, 2]"',
        "Kim stands.,3.0,4.25,tt900,tt901,1,2,4.25,3.0,1.25,show_s01e02_seg01_clip_00,[0]",
        "Lee laughs.,1.0,2.0,tt900,,1,3,2.0,1.0,1.0,show_s01e03_seg01_clip_00,[0]",
    ])
    assert read_tvad_csv(path) == [
        ADRecord("tt901", 0, 3.0, 4.25, "Kim stands."),
        ADRecord("tt901", 1, 12.5, 14.0, "Kim sits down."),
        ADRecord("show_s01e03_seg01_clip_00", 0, 1.0, 2.0, "Lee laughs."),
    ]


def test_tvad_without_imdbid_pe_column_uses_tvad_name(tmp_path):
    path = write(tmp_path, "tvad.csv", ["text,start,end,tvad_name", "A door opens.,0,1,show_s02e01_seg03_clip_01"])
    assert read_tvad_csv(path) == [ADRecord("show_s02e01_seg03_clip_01", 0, 0.0, 1.0, "A door opens.")]


def test_cmdad_movie_id_kept_as_string(tmp_path):
    path = write(tmp_path, "cmdad_anno.csv", [
        CMDAD_HEADER,
        "A car stops.,101.5,103.0,0712,4.0,5.5,2014/abc,tt0000002,Some Film,1",
        '"Rex, the dog, barks.",99.0,100.0,0712,1.0,2.0,2014/abc,tt0000002,Some Film,1',
    ])
    assert read_cmdad_csv(path) == [
        ADRecord("0712", 0, 99.0, 100.0, "Rex, the dog, barks."),
        ADRecord("0712", 1, 101.5, 103.0, "A car stops."),
    ]


def test_cp1252_fallback_tvad(tmp_path):
    path = tmp_path / "tvad.csv"
    path.write_bytes(b"text,start,end,tvad_name\nA caf\xe9 sign.,0,1,ep1\n")
    assert read_tvad_csv(path)[0].text == "A café sign."


def test_tvad_missing_columns_lists_missing_and_found(tmp_path):
    path = write(tmp_path, "tvad.csv", ["text,start,end,imdbid", "x,0,1,tt1"])
    with pytest.raises(DataFormatError) as exc:
        read_tvad_csv(path)
    message = str(exc.value)
    assert "tvad.csv [line 1 (header)]" in message
    assert "missing column(s) imdbid_pe (or tvad_name); columns found: text, start, end, imdbid" in message
    assert "Fix:" in message


def test_tvad_row_without_any_id_names_the_line(tmp_path):
    path = write(tmp_path, "tvad.csv", ["text,start,end,imdbid_pe,tvad_name", "x,0,1,tt1,ep", "y,1,2,,"])
    with pytest.raises(DataFormatError, match=r"tvad\.csv \[line 3\]: no episode id") as exc:
        read_tvad_csv(path)
    assert "imdbid_pe" in exc.value.fix


@pytest.mark.parametrize(("row", "words"), [
    ("   ,0,1,7", "empty"),
    ("x,1,1,7", "start (1) is not before end (1)"),
    ("x,one,2,7", "not a number"),
])
def test_cmdad_bad_rows_name_the_line(tmp_path, row, words):
    path = write(tmp_path, "cmdad.csv", ["text,start,end,movie", "fine,0,1,7", row])
    with pytest.raises(DataFormatError) as exc:
        read_cmdad_csv(path)
    message = str(exc.value)
    assert "cmdad.csv [line 3]" in message and words in message and "Fix:" in message
