"""MAD-v2 / AutoAD / MAD-v1 readers: exact values on tiny fixtures, and one clear error per bad input."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

from moviead.data.errors import DataFormatError
from moviead.data.formats.mad import (
    check_split,
    index_by_movie,
    merge_named_unnamed,
    read_ad_annotations,
    read_ad_csv,
    read_autoad_pickle,
    read_mad_v1_json,
    read_split_json,
    read_subtitles_csv,
)
from moviead.data.records import ADRecord, SubtitleRecord


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def assert_names(exc: pytest.ExceptionInfo, path, record: str) -> None:
    message = str(exc.value)
    assert path.name in message
    assert record in message
    assert "Fix:" in message and exc.value.fix


def test_ad_csv_reads_ids_as_strings_sorts_and_indexes_per_movie(tmp_path):
    path = write(tmp_path, "mad-v2-ad-named.csv", (
        "movie,start,end,text,extra\n"
        "0012,5.5,7.25,Mara closes the gate.,x\n"
        "0012,1.0,2.0,Mara walks in.,y\n"
        "3001,0.5,1.5, Tom waves. ,z\n"
    ))
    ads = read_ad_csv(path)
    assert ads == [
        ADRecord("0012", 0, 1.0, 2.0, "Mara walks in."),
        ADRecord("0012", 1, 5.5, 7.25, "Mara closes the gate."),
        ADRecord("3001", 0, 0.5, 1.5, "Tom waves."),
    ]


def test_ad_csv_accepts_sentence_column_and_quoted_commas(tmp_path):
    path = write(tmp_path, "ads.csv", 'movie,start,end,sentence\n7,0,1,"She stops, then turns."\n')
    assert read_ad_csv(path) == [ADRecord("7", 0, 0.0, 1.0, "She stops, then turns.")]


def test_ad_csv_ties_keep_file_order(tmp_path):
    path = write(tmp_path, "ads.csv", "movie,start,end,text\nm,1,2,first\nm,1,2,second\nm,0,1,zero\n")
    assert [(a.index, a.text) for a in read_ad_csv(path)] == [(0, "zero"), (1, "first"), (2, "second")]


def test_cp1252_fallback(tmp_path):
    path = tmp_path / "ads.csv"
    path.write_bytes(b"movie,start,end,text\n1,0,1,A caf\xe9 at night.\n")
    assert read_ad_csv(path)[0].text == "A café at night."


def test_autoad_pickle_reads_dict_of_dataframes(tmp_path):
    path = tmp_path / "MAD_named_anno_dict_pd.pkl"
    pd.to_pickle({
        "0042": pd.DataFrame({"start": [3.0, 1.0], "end": [4.0, 2.0], "text": ["Later.", "Earlier."]}),
        "0007": pd.DataFrame({"start": [0.25], "end": [0.75], "sentence": ["Only one."]}),
    }, path)
    assert read_autoad_pickle(path) == [
        ADRecord("0042", 0, 1.0, 2.0, "Earlier."),
        ADRecord("0042", 1, 3.0, 4.0, "Later."),
        ADRecord("0007", 0, 0.25, 0.75, "Only one."),
    ]


def test_mad_v1_json_reads_ext_timestamps(tmp_path):
    path = write(tmp_path, "mad_v1.json", json.dumps({
        "a1": {"movie": "0099", "movie_duration": 100.0, "ext_timestamps": [10.5, 12.0], "sentence": "Rain falls."},
        "a0": {"movie": "0099", "movie_duration": 100.0, "ext_timestamps": [2, 3], "sentence": "Dawn."},
    }))
    assert read_mad_v1_json(path) == [
        ADRecord("0099", 0, 2.0, 3.0, "Dawn."), ADRecord("0099", 1, 10.5, 12.0, "Rain falls.")
    ]


def test_read_ad_annotations_dispatches_by_suffix(tmp_path):
    csv_path = write(tmp_path, "a.csv", "movie,start,end,text\n1,0,1,x\n")
    json_path = write(tmp_path, "a.json", json.dumps({"k": {"movie": "1", "ext_timestamps": [0, 1], "sentence": "x"}}))
    assert read_ad_annotations(csv_path) == read_ad_annotations(json_path) == [ADRecord("1", 0, 0.0, 1.0, "x")]
    with pytest.raises(DataFormatError) as exc:
        read_ad_annotations(write(tmp_path, "a.txt", "x"))
    assert "a.txt" in str(exc.value) and ".csv" in exc.value.fix


def test_subtitles_skip_empty_text_and_zero_length_and_log_count(tmp_path, caplog):
    text = "movie,start,end,text\n1,5,6,Later line\n1,1,2,\n1,0,1,  Hello there  \n1,3,3,Zero length\n"
    path = write(tmp_path, "mad-v2-subs.csv", text)
    with caplog.at_level(logging.INFO, logger="moviead.data.formats.mad"):
        subs = read_subtitles_csv(path)
    assert subs == [SubtitleRecord("1", 0.0, 1.0, "Hello there"), SubtitleRecord("1", 5.0, 6.0, "Later line")]
    assert "skipped 2 subtitle" in caplog.text


def test_split_json_values_are_strings(tmp_path):
    path = write(tmp_path, "mad_split.json", json.dumps({"TRAIN": ["0012", 3001], "EVAL": []}))
    assert read_split_json(path) == {"TRAIN": ["0012", "3001"], "EVAL": []}


def test_check_split_names_file_split_and_unknown_ids(tmp_path):
    path = tmp_path / "mad_split.json"
    check_split({"TRAIN": ["a"], "EVAL": ["b"]}, {"a", "b"}, path)
    with pytest.raises(DataFormatError) as exc:
        check_split({"TRAIN": ["a"], "EVAL": ["b", "12", "13"]}, {"a", "b"}, path)
    assert_names(exc, path, "split 'EVAL'")
    assert "'12', '13'" in str(exc.value) and "2 of 3" in str(exc.value)


def test_merge_named_unnamed_joins_on_movie_start_end(tmp_path):
    named = read_ad_csv(write(tmp_path, "named.csv", "movie,start,end,text\n1,0,1,Mara sits.\n1,2,3,Tom runs.\n"))
    unnamed_csv = "movie,start,end,text\n1,2.000,3,He runs.\n1,4,5,Someone sings.\n"
    unnamed = read_ad_csv(write(tmp_path, "unnamed.csv", unnamed_csv))
    assert merge_named_unnamed(named, unnamed) == [
        ADRecord("1", 0, 0.0, 1.0, "Mara sits.", text_named="Mara sits.", text_unnamed=None),
        ADRecord("1", 1, 2.0, 3.0, "Tom runs.", text_named="Tom runs.", text_unnamed="He runs."),
        ADRecord("1", 2, 4.0, 5.0, "Someone sings.", text_named=None, text_unnamed="Someone sings."),
    ]


def test_index_by_movie_groups_sorts_and_reindexes():
    ads = [ADRecord("b", 7, 3.0, 4.0, "y"), ADRecord("a", 9, 1.0, 2.0, "x"), ADRecord("b", 8, 1.0, 2.0, "z")]
    subs = [
        SubtitleRecord("b", 5.0, 6.0, "s2"), SubtitleRecord("b", 0.0, 1.0, "s1"), SubtitleRecord("c", 0.0, 1.0, "s")
    ]
    movies = index_by_movie(ads, subs)
    assert list(movies) == ["b", "a", "c"]
    assert [(a.index, a.text) for a in movies["b"].ads] == [(0, "z"), (1, "y")]
    assert [s.text for s in movies["b"].subtitles] == ["s1", "s2"]
    assert movies["a"].ads == [ADRecord("a", 0, 1.0, 2.0, "x")] and movies["c"].ads == []


@pytest.mark.parametrize(("body", "record", "words"), [
    ("movie,start,end,text\n1,0,1,ok\n1,0,1,   \n", "line 3", "empty"),
    ("movie,start,end,text\n1,2,2,same time\n", "line 2", "not before"),
    ("movie,start,end,text\n1,abc,2,bad\n", "line 2", "not a number"),
    ("movie,start,end,text\n1,nan,2,bad\n", "line 2", "not finite"),
    ("movie,start,end,text\n,0,1,no movie\n", "line 2", "empty"),
    ("movie,start,end,text\n1,0,1,a,b\n", "line 2", "5 fields"),
    ('movie,start,end,text\n1,0,1,"multi\nline"\n1,5,4,x\n', "line 4", "not before"),
])
def test_bad_ad_csv_rows_name_the_line(tmp_path, body, record, words):
    path = write(tmp_path, "bad.csv", body)
    with pytest.raises(DataFormatError) as exc:
        read_ad_csv(path)
    assert_names(exc, path, record)
    assert words in str(exc.value)


def test_bad_input_start_not_before_end_names_row(tmp_path):
    path = write(tmp_path, "ads.csv", "movie,start,end,text\n1,0,1,fine\n1,9.5,3,backwards\n")
    with pytest.raises(DataFormatError, match=r"ads\.csv \[line 3\]: start \(9\.5\) is not before end \(3\)") as exc:
        read_ad_csv(path)
    assert "start < end" in exc.value.fix


def test_missing_columns_lists_missing_and_found(tmp_path):
    path = write(tmp_path, "ads.csv", "film,begin,end,caption\n1,0,1,x\n")
    with pytest.raises(DataFormatError) as exc:
        read_ad_csv(path)
    assert_names(exc, path, "line 1")
    expected = "missing column(s) movie, start, text (or sentence); columns found: film, begin, end, caption"
    assert expected in str(exc.value)


def test_empty_csv_file_is_an_error(tmp_path):
    path = write(tmp_path, "ads.csv", "")
    with pytest.raises(DataFormatError, match="empty") as exc:
        read_ad_csv(path)
    assert path.name in str(exc.value) and "header" in exc.value.fix


def test_bad_mad_v1_json(tmp_path):
    broken = write(tmp_path, "v1.json", '{"a": {"movie": "1",\n "sentence": }}')
    with pytest.raises(DataFormatError, match="malformed JSON") as exc:
        read_mad_v1_json(broken)
    assert_names(exc, broken, "line 2")
    missing = write(tmp_path, "v1b.json", json.dumps({"a7": {"movie": "1", "sentence": "x"}}))
    with pytest.raises(DataFormatError, match="ext_timestamps") as exc:
        read_mad_v1_json(missing)
    assert_names(exc, missing, "key 'a7'")


def test_bad_autoad_pickle_names_movie_and_row(tmp_path):
    path = tmp_path / "anno.pkl"
    pd.to_pickle({"0042": pd.DataFrame({"start": [0.0, 2.0], "end": [1.0, 1.0], "text": ["a", "b"]})}, path)
    with pytest.raises(DataFormatError, match="not before") as exc:
        read_autoad_pickle(path)
    assert_names(exc, path, "movie '0042', row 1")
    pd.to_pickle({"0042": pd.DataFrame({"begin": [0.0], "text": ["a"]})}, path)
    with pytest.raises(DataFormatError, match="missing column") as exc:
        read_autoad_pickle(path)
    assert_names(exc, path, "movie '0042'")


def test_bad_split_json_values(tmp_path):
    path = write(tmp_path, "split.json", json.dumps({"TRAIN": "0012"}))
    with pytest.raises(DataFormatError, match="list of movie ids") as exc:
        read_split_json(path)
    assert_names(exc, path, "split 'TRAIN'")
