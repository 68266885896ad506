"""``moviead preview`` and ``moviead speak``: the listener's side of an AD track written by ``moviead describe``
(a self-contained HTML page; eSpeak NG speech on the film's timeline, ducked under the programme audio).

Registered by :func:`moviead.cli.build_parser`; heavy imports stay inside the command functions.
"""

from __future__ import annotations

import argparse
import sys


def cmd_preview(args: argparse.Namespace) -> int:
    from moviead.evaluation.preview import PreviewError, PreviewRequest, write_preview

    request = PreviewRequest(out_dir=args.out_dir, movie=args.movie, video=args.video,
                             words_per_second=args.words_per_second, page=args.page)
    try:
        page = write_preview(request)
    except (PreviewError, FileNotFoundError) as err:
        print(f"moviead preview: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {page}")
    return 0


def cmd_speak(args: argparse.Namespace) -> int:
    from moviead.speech.audio_io import OutputFolderError, ProgrammeAudioError
    from moviead.speech.commands import CueFileError, SpeakRequest, speak
    from moviead.speech.synth import MissingAudioDependencyError
    from moviead.speech.track import TimelineError

    request = SpeakRequest(
        track=args.track, out=args.out, film_audio=args.film_audio, duration=args.duration, duck_db=args.duck_db,
        words_per_second=args.words_per_second, max_speedup=args.max_speedup, sample_rate=args.sample_rate,
        target_lufs=args.target_lufs,
    )
    try:
        report = speak(request)
    except (CueFileError, TimelineError, ProgrammeAudioError, OutputFolderError, MissingAudioDependencyError) as err:
        print(f"moviead speak: error: {err}", file=sys.stderr)
        return 2
    print("\n".join(report.lines()))
    return 0


def add_ad_track_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``preview`` and ``speak`` to the ``moviead`` sub-command parser ``sub``."""
    preview = sub.add_parser("preview", help="one self-contained HTML page to watch an AD track (of `describe`)")
    preview.add_argument("out_dir", help="the --out folder of `moviead describe` (<movie>.vtt, <movie>.ad.jsonl)")
    preview.add_argument("--movie", help="which track when the folder holds several")
    preview.add_argument("--video", help="the film (default: <movie>.mix.wav, else <movie>.ad.wav)")
    preview.add_argument("--words-per-second", type=float, default=2.7, help="rate above which an AD is flagged")
    preview.add_argument("--page", help="output HTML (default: OUT_DIR/<movie>.preview.html)")
    preview.set_defaults(func=cmd_preview)

    speak = sub.add_parser("speak", help="speak an AD track (.ad.jsonl) with eSpeak NG: <movie>.ad.wav, and with "
                           "--film-audio a ducked, loudness-normalised <movie>.mix.wav")
    speak.add_argument("track", help="a <movie>.ad.jsonl as `moviead describe` writes (rows start, end, text)")
    speak.add_argument("--out", required=True, help="output folder")
    speak.add_argument("--film-audio", help="the programme audio: a WAV or any file PyAV decodes, e.g. the film")
    speak.add_argument("--duration", type=float, help="the film's length (s); default: the film audio's, else the "
                       "last cue's end")
    speak.add_argument("--duck-db", type=float, default=12.0, help="programme lowered by this while an AD speaks")
    speak.add_argument("--words-per-second", type=float, default=175 / 60, help="speaking rate (default 2.92, "
                       "eSpeak NG's 175 words per minute)")
    speak.add_argument("--max-speedup", type=float, default=1.5,
                       help="fastest rate, as a multiple of the normal one, for cues that would overrun (default 1.5)")
    speak.add_argument("--sample-rate", type=int, default=48000, help="of the written WAVs (Hz)")
    speak.add_argument("--target-lufs", type=float, default=-23.0, help="integrated loudness of the mix (BS.1770)")
    speak.set_defaults(func=cmd_speak)
