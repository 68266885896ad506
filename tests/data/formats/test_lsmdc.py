"""LSMDC TSV reader: times, movie ids, duplicate clip ids, multi-sentence groups and errors."""

from __future__ import annotations

import pytest

from moviead.data.errors import DataFormatError
from moviead.data.formats.lsmdc import group_multi_sentence, movie_of_clip, parse_lsmdc_time, read_lsmdc_tsv
from moviead.data.records import LSMDCRecord


def tsv(tmp_path, lines: list[str], name: str = "LSMDC16_annos_val.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def row(clip: str, times=("00.00.01.000", "00.00.02.500", "00.00.01.000", "00.00.02.500"), text="SOMEONE waits."):
    return "\t".join((clip, *times, text))


def test_lsmdc_parses_times_movie_and_quotes(tmp_path):
    clip = "1012_Unbreakable_00.05.16.065-00.05.21.941"
    path = tsv(tmp_path, [
        row(clip, ("00.05.16.065", "00.05.21.941", "316.0", "322"), 'He says "wait" and leaves.'),
    ])
    assert read_lsmdc_tsv(path) == [
        LSMDCRecord(clip, "1012_Unbreakable", 0, 316.065, 321.941, 316.0, 322.0, 'He says "wait" and leaves.'),
    ]


def test_lsmdc_keeps_duplicate_clip_ids(tmp_path):
    clip = "0001_Some_Movie_01.02.03.004-01.02.05.000"
    path = tsv(tmp_path, [row(clip, text="First sentence."), row(clip, text="Second sentence.")])
    records = read_lsmdc_tsv(path)
    assert [(r.clip_id, r.row, r.text) for r in records] == [
        (clip, 0, "First sentence."), (clip, 1, "Second sentence.")
    ]
    assert records[0].movie == "0001_Some_Movie"


def test_lsmdc_time_formats():
    assert parse_lsmdc_time("01.02.03.004") == 3723.004
    assert parse_lsmdc_time("00.05.16.065") == 316.065
    assert parse_lsmdc_time(" 12.5 ") == 12.5
    for bad in ("00.61.00.000", "1:02", "", "nan"):
        with pytest.raises(ValueError):
            parse_lsmdc_time(bad)


def test_lsmdc_movie_of_clip_without_timestamp_suffix():
    assert movie_of_clip("3001_A_Film_00.00.01.000-00.00.02.000") == "3001_A_Film"
    assert movie_of_clip("3001_A_Film_clip7") == "3001_A_Film"
    assert movie_of_clip("lonely") == "lonely"


def test_lsmdc_cp1252_fallback(tmp_path):
    path = tmp_path / "annos.csv"
    path.write_bytes(b"0002_M_00.00.01.000-00.00.02.000\t1\t2\t1\t2\tA caf\xe9.\r\n")
    assert read_lsmdc_tsv(path)[0].text == "A café."


def test_group_multi_sentence_groups_of_five_within_movie():
    def rec(movie: str, i: int) -> LSMDCRecord:
        return LSMDCRecord(f"{movie}_{i}", movie, i, 0.0, 1.0, 0.0, 1.0, "x")

    records = [rec("A", i) for i in range(7)] + [rec("B", i) for i in range(7, 10)]
    groups = group_multi_sentence(records)
    assert [[r.row for r in g] for g in groups] == [[0, 1, 2, 3, 4], [5, 6], [7, 8, 9]]
    assert [[r.row for r in g] for g in group_multi_sentence(records[:4], group_size=2)] == [[0, 1], [2, 3]]
    with pytest.raises(ValueError):
        group_multi_sentence(records, group_size=0)


@pytest.mark.parametrize(("bad_line", "words"), [
    ("0003_M_x\t1\t2\t1\t2", "found 5 tab-separated columns, expected 6"),
    ("0003_M_x\t1\t2\t1\t2\ttext\textra", "found 7"),
    ("0003_M_x\t1\tlater\t1\t2\ttext", "'end aligned' is not a time"),
    ("0003_M_x\t5\t2\t1\t2\ttext", "start aligned (5) is not before end aligned (2)"),
    ("0003_M_x\t1\t2\t3\t3\ttext", "start extracted (3) is not before end extracted (3)"),
    ("0003_M_x\t1\t2\t1\t2\t   ", "sentence in column 'sentence' is empty"),
])
def test_lsmdc_bad_line_names_file_line_and_fix(tmp_path, bad_line, words):
    path = tsv(tmp_path, [row("0003_M_00.00.01.000-00.00.02.500"), bad_line])
    with pytest.raises(DataFormatError) as exc:
        read_lsmdc_tsv(path)
    message = str(exc.value)
    assert path.name in message and "[line 2]" in message and words in message
    assert exc.value.fix and "Fix:" in message
