"""What real AD files get wrong: negative starts, duplicate rows, named/unnamed files that disagree on times."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from moviead.data.errors import DataFormatError
from moviead.data.formats.autoad import read_cmdad_csv
from moviead.data.formats.lsmdc import read_lsmdc_tsv
from moviead.data.formats.mad import merge_named_unnamed, read_ad_csv, read_mad_v1_json
from moviead.data.formats.storyboard import read_storyboard_json
from moviead.data.records import ADRecord

VALIDATE = "moviead.data.formats._validate"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_negative_starts_are_clamped_to_0_and_counted(tmp_path: Path, caplog) -> None:
    path = write(tmp_path, "ads.csv", "movie,start,end,text\nm,-0.4,2,Dawn.\nm,-1.5,3,Birds.\nm,4,5,Later.\n")
    with caplog.at_level(logging.WARNING, logger=VALIDATE):
        ads = read_ad_csv(path)
    assert [(ad.index, ad.start, ad.end, ad.text) for ad in ads] == [
        (0, 0.0, 2.0, "Dawn."), (1, 0.0, 3.0, "Birds."), (2, 4.0, 5.0, "Later.")]
    assert f"{path}: 2 AD(s) started before 0 s: clamped to 0" in caplog.text


def test_an_ad_ending_at_or_before_0_is_dropped_with_its_own_count(tmp_path: Path, caplog) -> None:
    path = write(tmp_path, "ads.csv", "movie,start,end,text\nm,-3,0,Gone.\nm,-3,-1,Also gone.\nm,-1,2,Kept.\n")
    with caplog.at_level(logging.WARNING, logger=VALIDATE):
        ads = read_ad_csv(path)
    assert ads == [ADRecord("m", 0, 0.0, 2.0, "Kept.")]
    assert f"{path}: 1 AD(s) started before 0 s: clamped to 0; 2 AD(s) ended at or before 0 s: dropped" in caplog.text


def test_exact_duplicate_ad_rows_are_dropped_and_counted(tmp_path: Path, caplog) -> None:
    body = "movie,start,end,text\nm,1,2,Twice.\nm,1,2,Twice.\nm,1,2,Same time other text.\nn,1,2,Twice.\n"
    path = write(tmp_path, "ads.csv", body)
    with caplog.at_level(logging.WARNING, logger=VALIDATE):
        ads = read_ad_csv(path)
    assert [(ad.movie, ad.index, ad.text) for ad in ads] == [
        ("m", 0, "Twice."), ("m", 1, "Same time other text."), ("n", 0, "Twice.")]
    assert f"{path}: 1 exact duplicate AD row(s) (same movie, start, end and text): dropped" in caplog.text


def test_every_ad_reader_repairs_the_same_way(tmp_path: Path) -> None:
    cmdad = write(tmp_path, "cmdad.csv", "text,start,end,movie\nA.,-1,2,7\nA.,-1,2,7\n")
    v1 = write(tmp_path, "mad.json", json.dumps({
        "1": {"movie": "7", "ext_timestamps": [-1, 2], "sentence": "A."},
        "2": {"movie": "7", "ext_timestamps": [-1, 2], "sentence": "A."},
    }))
    assert read_cmdad_csv(cmdad) == read_mad_v1_json(v1) == [ADRecord("7", 0, 0.0, 2.0, "A.")]


def test_duplicate_lsmdc_lines_are_dropped_and_counted(tmp_path: Path, caplog) -> None:
    line = "\t".join(("0001_M_00.00.01.000-00.00.02.500", "1", "2.5", "1", "2.5", "SOMEONE waits."))
    path = write(tmp_path, "LSMDC16_annos_val.csv", "\n".join([line, line, line.replace("waits", "runs")]) + "\n")
    with caplog.at_level(logging.WARNING, logger="moviead.data.formats.lsmdc"):
        records = read_lsmdc_tsv(path)
    assert [(r.row, r.text) for r in records] == [(0, "SOMEONE waits."), (2, "SOMEONE runs.")]
    assert f"{path}: 1 exact duplicate line(s) dropped (line 2)" in caplog.text


def test_duplicate_storyboard_records_are_dropped_and_counted(tmp_path: Path, caplog) -> None:
    rec = {"movie_id": "tt1", "global_id": 5, "type": 3, "resolution": [720, 1280], "main characters": [],
           "#characters": 0, "synopses": "Rain falls.", "movie_clips": "c/5.mp4"}
    path = write(tmp_path, "sb.json", json.dumps([rec, rec, dict(rec, global_id=6)]))
    with caplog.at_level(logging.WARNING, logger="moviead.data.formats.storyboard"):
        records = read_storyboard_json(path)
    assert [r.global_id for r in records] == ["5", "6"]
    assert f"{path}: 1 exact duplicate record(s) dropped (item 1)" in caplog.text


def test_named_and_unnamed_times_that_disagree_are_an_error_naming_both_rows(tmp_path: Path) -> None:
    named_path = write(tmp_path, "named.csv", "movie,start,end,text\nm,0,1,Mara sits.\nm,2,3,Tom runs.\n")
    unnamed_path = write(tmp_path, "unnamed.csv", "movie,start,end,text\nm,0,1,She sits.\nm,2,3.5,He runs.\n")
    with pytest.raises(DataFormatError) as err:
        merge_named_unnamed(read_ad_csv(named_path), read_ad_csv(unnamed_path), named_path, unnamed_path)
    assert str(err.value) == (
        f"{unnamed_path} [movie 'm', 2.000-3.500 s]: 1 AD(s) have different times in the named and unnamed files, "
        f"e.g. the named row (2.000-3.000 s, 'Tom runs.') of {named_path} and the unnamed row "
        "(2.000-3.500 s, 'He runs.') of this file. Fix: give the same AD the same start and end (to the millisecond) "
        "in both files, or remove the stray row from one of them"
    )


def test_ads_in_only_one_file_that_overlap_nothing_are_kept_and_counted(caplog) -> None:
    named = [ADRecord("m", 0, 0.0, 1.0, "Mara sits.")]
    unnamed = [ADRecord("m", 0, 4.0, 5.0, "Someone sings.")]
    with caplog.at_level(logging.WARNING, logger="moviead.data.formats.mad"):
        merged = merge_named_unnamed(named, unnamed)
    assert [(ad.start, ad.text_named, ad.text_unnamed) for ad in merged] == [
        (0.0, "Mara sits.", None), (4.0, None, "Someone sings.")]
    assert "1 AD(s) only in the named file (no unnamed text), 1 only in the unnamed file" in caplog.text
