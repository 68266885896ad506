"""``moviead preview OUT_DIR``: one self-contained HTML page to watch (or hear) an AD track.

The page (``<movie>.preview.html`` in ``OUT_DIR``) has inline CSS and script and no network access: the media is
referenced by a path relative to the page (``--video`` if given, else ``<movie>.mix.wav``, else
``<movie>.ad.wav``), the WebVTT of ``describe`` is inlined as a ``data:`` URL in a
``<track kind="descriptions">``, the AD list shows each cue's times (a click seeks the media there) and its words
per second, flagged when over the rate (more words than its word budget,
:func:`moviead.evaluation.budget.word_budget`), and the spoken AD track ``<movie>.ad.wav`` has a player of its own.
The page's script writes the number of cues the browser loaded from the track into ``#cue-count`` and any script
error into ``#errors`` (what the headless-browser test reads).
"""

from __future__ import annotations

import base64
import html
import json
import os
from dataclasses import dataclass
from pathlib import Path

from moviead.evaluation.budget import WORDS_PER_SECOND, word_budget, word_count
from moviead.export import read_jsonl


class PreviewError(ValueError):
    """The output folder holds no AD track to preview (or more than one without ``--movie``)."""


@dataclass
class PreviewRequest:
    """The arguments of ``moviead preview`` (see ``moviead preview --help``)."""

    out_dir: str
    movie: str | None = None  # which <movie>.ad.jsonl when the folder holds several
    video: str | None = None  # the film; default: the mix, else the AD speech
    words_per_second: float = WORDS_PER_SECOND
    page: str | None = None  # where to write the page (default <out_dir>/<movie>.preview.html)


def _movie(folder: Path, movie: str | None) -> str:
    found = sorted(p.name[: -len(".ad.jsonl")] for p in folder.glob("*.ad.jsonl"))
    if movie is not None:
        if movie not in found:
            raise PreviewError(f"{folder} has no {movie}.ad.jsonl (it has {found or 'none'})")
        return movie
    if len(found) != 1:
        raise PreviewError(f"{folder} holds {len(found)} AD tracks (*.ad.jsonl: {found}); "
                           + ("run `moviead describe --out` into it first" if not found else "pass --movie"))
    return found[0]


def _relative(target: Path, page: Path) -> str:
    return Path(os.path.relpath(target.resolve(), page.parent.resolve())).as_posix()


def write_preview(request: PreviewRequest) -> Path:
    """Write the preview page of the AD track in ``request.out_dir``; returns its path.

    Raises:
        PreviewError: no (or no single) ``*.ad.jsonl``, or no ``<movie>.vtt`` next to it.
        FileNotFoundError: ``video`` does not exist.
    """
    folder = Path(request.out_dir)
    if not folder.is_dir():
        raise PreviewError(f"{folder} is not a folder (give the --out folder of `moviead describe`)")
    movie = _movie(folder, request.movie)
    vtt = folder / f"{movie}.vtt"
    if not vtt.is_file():
        raise PreviewError(f"{vtt} is missing: the preview needs the WebVTT that `moviead describe` writes")
    page = Path(request.page) if request.page else folder / f"{movie}.preview.html"
    speech = folder / f"{movie}.ad.wav"
    if request.video is not None:
        media = Path(request.video)
        if not media.is_file():
            raise FileNotFoundError(f"--video {media} not found")
    else:
        media = next((p for p in (folder / f"{movie}.mix.wav", speech) if p.is_file()), None)
    cues = [row for row in read_jsonl(folder / f"{movie}.ad.jsonl") if str(row.get("text", "")).strip()]
    body = render_page(movie, vtt.read_text(encoding="utf-8"), cues, request.words_per_second,
                       _relative(media, page) if media else None, _relative(speech, page) if speech.is_file() else None)
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(body, encoding="utf-8")
    return page


def cue_rows(cues: list[dict], words_per_second: float) -> list[dict]:
    """Per cue: start, end, text, words, words per second and whether that is over the rate."""
    out = []
    for cue in cues:
        start, end, text = float(cue["start"]), float(cue["end"]), str(cue["text"])
        words, duration = word_count(text), end - start
        out.append({"start": start, "end": end, "text": text, "words": words,
                    "wps": words / duration if duration > 0 else 0.0,
                    "over": words > word_budget(duration, words_per_second)})
    return out


def _clock(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000 // 100:d}"


_STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:0;display:flex;gap:16px;padding:16px;background:#f6f6f4;color:#222}
#player{flex:0 0 55%} video{width:100%;background:#000;min-height:120px} h1{font-size:18px;margin:0 0 8px}
#list{flex:1;max-height:calc(100vh - 32px);overflow:auto;background:#fff;border:1px solid #ddd;border-radius:6px}
table{border-collapse:collapse;width:100%} td{padding:4px 8px;border-bottom:1px solid #eee;vertical-align:top}
tr.cue{cursor:pointer} tr.cue:hover{background:#eef4ff} tr.active{background:#fff3c4}
td.t{white-space:nowrap;font-variant-numeric:tabular-nums;color:#555} td.r{text-align:right;white-space:nowrap}
.over td.r{color:#b00020;font-weight:600} .over td.r::after{content:" \\26A0"} #now{min-height:2.8em;padding:6px 0}
.meta{color:#666;font-size:13px} #errors{color:#b00020;white-space:pre-wrap}
"""

_SCRIPT = """
const errors = document.getElementById('errors');
window.addEventListener('error', e => { errors.textContent += (e.message || String(e)) + '\\n'; });
window.addEventListener('unhandledrejection', e => { errors.textContent += String(e.reason) + '\\n'; });
const media = document.getElementById('media');
const trackEl = document.getElementById('ad-track');
const rows = Array.from(document.querySelectorAll('tr.cue'));
const now = document.getElementById('now');
function seek(t) { if (media) { media.currentTime = t; media.play().catch(() => {}); } }
rows.forEach(r => r.addEventListener('click', () => seek(parseFloat(r.dataset.start))));
function showCount() {
  document.getElementById('cue-count').textContent = String(trackEl.track.cues ? trackEl.track.cues.length : 0);
}
if (trackEl) {
  trackEl.track.mode = 'hidden';
  trackEl.addEventListener('load', showCount);
  trackEl.addEventListener('error', () => { errors.textContent += 'the descriptions track did not load\\n'; });
  if (trackEl.readyState === 2) showCount();
  trackEl.track.addEventListener('cuechange', () => {
    const cue = trackEl.track.activeCues && trackEl.track.activeCues[0];
    now.textContent = cue ? cue.text : '';
    rows.forEach(r => r.classList.toggle('active', !!cue && Math.abs(parseFloat(r.dataset.start) - cue.startTime) < 0.01));
  });
}
"""


def render_page(movie: str, vtt: str, cues: list[dict], words_per_second: float, media: str | None,
                speech: str | None) -> str:
    """The page's HTML: ``media`` and ``speech`` are URLs relative to the page (None: absent)."""
    esc = html.escape
    rows = cue_rows(cues, words_per_second)
    over = sum(r["over"] for r in rows)
    track_src = "data:text/vtt;charset=utf-8;base64," + base64.b64encode(vtt.encode("utf-8")).decode("ascii")
    track = f'<track id="ad-track" kind="descriptions" srclang="en" label="Audio description" default ' \
            f'src="{track_src}">'
    player = (f'<video id="media" controls preload="metadata" src="{esc(media)}">{track}</video>' if media else
              f'<video id="media" controls>{track}</video><p class="meta">no media: pass --video, or run '
              f'`moviead describe --audio` first</p>')
    spoken = (f'<p>AD track alone: <audio id="ad-audio" controls preload="none" src="{esc(speech)}"></audio></p>'
              if speech else '<p class="meta">no spoken AD track (&lt;movie&gt;.ad.wav): `moviead describe --audio`</p>')
    table = "\n".join(
        f'<tr class="cue{" over" if r["over"] else ""}" data-start="{r["start"]:.3f}" data-end="{r["end"]:.3f}">'
        f'<td class="t">{_clock(r["start"])}–{_clock(r["end"])}</td><td>{esc(r["text"])}</td>'
        f'<td class="r" title="{r["words"]} words in {r["end"] - r["start"]:.1f} s">{r["wps"]:.2f} w/s</td></tr>'
        for r in rows)
    mean = sum(r["wps"] for r in rows) / len(rows) if rows else 0.0
    info = json.dumps({"movie": movie, "cues": len(rows), "over_rate": over, "words_per_second": words_per_second})
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>AD preview: {esc(movie)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_STYLE}</style></head>
<body><div id="player"><h1>AD preview: {esc(movie)}</h1>{player}
<div id="now" aria-live="polite"></div>{spoken}
<p class="meta">{len(rows)} ADs, {over} over {words_per_second:g} words/s, mean {mean:.2f} words/s; track cues loaded:
<span id="cue-count">0</span></p><div id="errors"></div></div>
<div id="list"><table><tbody>
{table}
</tbody></table></div>
<script type="application/json" id="preview-info">{esc(info)}</script>
<script>{_SCRIPT}</script></body></html>
"""
