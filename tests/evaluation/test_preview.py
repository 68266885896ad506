"""``moviead preview``: the self-contained HTML page, checked as text and in a real headless browser (chromium)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import wave
from pathlib import Path

import pytest

from moviead.cli import main
from moviead.export import Cue, write_webvtt

CUES = [(1.0, 3.0, "A man opens the door."),  # 5 words in 2 s: within 2.7 words/s
        (4.0, 5.0, "She runs across the wet street, shouting his name."),  # 9 words in 1 s: over
        (6.0, 9.0, "Rain falls.")]


def _track(folder: Path, movie: str = "film", with_speech: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_webvtt([Cue(s, e, t) for s, e, t in CUES], folder / f"{movie}.vtt")
    (folder / f"{movie}.ad.jsonl").write_text(
        "".join(json.dumps({"start": s, "end": e, "text": t}) + "\n" for s, e, t in CUES), encoding="utf-8")
    if with_speech:
        with wave.open(str(folder / f"{movie}.ad.wav"), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
            w.writeframes(b"\0\0" * 8000 * 10)
    return folder


def test_the_page_holds_the_track_the_list_and_relative_media(tmp_path: Path, capsys) -> None:
    folder = _track(tmp_path / "out")
    assert main(["preview", str(folder)]) == 0
    page = (folder / "film.preview.html").read_text(encoding="utf-8")
    assert str(folder / "film.preview.html") in capsys.readouterr().out
    src = re.search(r'<track id="ad-track" kind="descriptions"[^>]* src="data:text/vtt;charset=utf-8;base64,([^"]+)"',
                    page)
    assert src and base64.b64decode(src.group(1)).decode() == (folder / "film.vtt").read_text(encoding="utf-8")
    assert 'src="film.ad.wav"' in page  # relative, no absolute path of this machine
    assert str(tmp_path) not in page
    rows = re.findall(r'<tr class="cue( over)?" data-start="([\d.]+)"', page)
    assert rows == [("", "1.000"), (" over", "4.000"), ("", "6.000")]
    assert "9.00 w/s" in page and "http" not in page.replace("http-equiv", "")


def test_missing_track_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["preview", str(tmp_path)]) == 2
    assert "moviead describe" in capsys.readouterr().err


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="no chromium on this machine (Debian: apt-get install chromium); "
                    "the preview page is then only checked as text")
def test_the_page_loads_in_headless_chromium_with_every_cue(tmp_path: Path) -> None:
    folder = _track(tmp_path / "out")
    assert main(["preview", str(folder)]) == 0
    page = folder / "film.preview.html"
    result = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    count = re.search(r'<span id="cue-count">(\d+)</span>', dom)
    assert count and int(count.group(1)) == len(CUES), dom[-2000:]
    errors = re.search(r'<div id="errors">(.*?)</div>', dom, re.DOTALL)
    assert errors is not None and errors.group(1).strip() == ""
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line and "film.preview.html" in line]
    assert console == []
