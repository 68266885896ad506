"""``moviead describe``, ``preview`` and ``speak``: an AD track for a film (cues in its dialogue gaps, decoded
recurrently within word budgets) and the listener's side of it (a self-contained HTML page; eSpeak NG speech on the
film's timeline, ducked under the programme audio).

Registered by :func:`moviead.cli.build_parser`; heavy imports stay inside the command functions.
"""

from __future__ import annotations

import argparse

from moviead.cli_args import (
    add_decoding_arguments,
    at_least,
    decode_settings,
    load_config,
    positive_seconds,
    require_input,
)
from moviead.evaluation.locks import folder_lock


def cmd_describe(args: argparse.Namespace) -> int:
    for path, flag in ((args.checkpoint, "--checkpoint"), (args.features, "--features"),
                       (args.subtitles, "--subtitles"), (args.video, "--video"),
                       (args.clip_checkpoint, "--clip-checkpoint"), (args.clip_model_config, "--clip-model-config")):
        require_input(path, flag)
    film = _film_source(args)
    load_config([], args.set or [])  # unknown keys, bad values: refused before torch loads

    from moviead.evaluation.describe import DescribeRequest, describe

    request = DescribeRequest(
        features=args.features, movie=args.movie, checkpoint=args.checkpoint, out=args.out, subtitles=args.subtitles,
        min_gap=args.min_gap, max_cue=args.max_cue, window=args.window, decode=decode_settings(args),
        config=args.set or [], restart=args.restart, words_per_second=args.words_per_second,
        no_repeat_ngram=args.no_repeat_ngram, audio=args.audio, film_audio=args.film_audio, duck_db=args.duck_db,
        html=args.html, video=args.video, film=film,
    )
    with folder_lock(args.out):  # one writer per output folder; user errors: one line from main()
        result = describe(request)
    print(f"{result['cues']} AD cues for {args.movie}:")
    for path in result["files"]:
        print(f"  {path}")
    empty = f", {result['empty']} empty prediction(s) left out" if result.get("empty") else ""
    print(f"{args.movie}: {result['figures'].line()}{empty}, decoded in {result['seconds']:.1f} s")
    return 0


def _film_source(args: argparse.Namespace):  # -> moviead.evaluation.film_input.FilmSource | None
    """Without ``--features``: the ``--video`` to extract them from, checked before torch loads (a video stream,
    subtitles from ``--subtitles`` or the file, CLIP weights); ``--movie`` defaults to the video's file name."""
    if args.features is not None:
        if args.movie is None:
            raise ValueError("--features needs --movie (the film's key in the features file)")
        return None
    if args.video is None:
        raise ValueError("give the film (--video FILM) or its frame features (--features FILE.h5 --movie KEY)")
    from pathlib import Path

    from moviead.evaluation.film_input import FilmSource, check_clip_weights, check_film

    check_clip_weights(args.clip_model, args.clip_checkpoint)
    check_film(args.video, need_subtitles=args.subtitles is None)
    args.movie = args.movie or Path(args.video).stem
    return FilmSource(video=args.video, clip_model=args.clip_model, clip_checkpoint=args.clip_checkpoint,
                      clip_model_config=args.clip_model_config, batch_size=args.clip_batch_size, device=args.device)


def cmd_preview(args: argparse.Namespace) -> int:
    from moviead.evaluation.preview import PreviewRequest, write_preview

    request = PreviewRequest(out_dir=args.out_dir, movie=args.movie, video=args.video,
                             words_per_second=args.words_per_second, page=args.page)
    page = write_preview(request)
    print(f"wrote {page}")
    return 0


def cmd_speak(args: argparse.Namespace) -> int:
    from moviead.speech.commands import SpeakRequest, speak

    request = SpeakRequest(
        track=args.track, out=args.out, film_audio=args.film_audio, duration=args.duration, duck_db=args.duck_db,
        words_per_second=args.words_per_second, max_speedup=args.max_speedup, sample_rate=args.sample_rate,
        target_lufs=args.target_lufs,
    )
    report = speak(request)
    print("\n".join(report.lines()))
    return 0


def add_ad_track_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``describe``, ``preview`` and ``speak`` to the ``moviead`` sub-command parser ``sub``."""
    describe = sub.add_parser("describe", help="write an AD track (WebVTT, SRT, JSONL) for a film's dialogue gaps "
                              "(from the film file, or from its features and subtitles)")
    describe.add_argument("--video", help="the film: its frame features are extracted into "
                          "OUT/<movie>.features.h5 (reused by a rerun) and, without --subtitles, its subtitle "
                          "stream is read; with --features: only the film the --html page plays")
    describe.add_argument("--features", help="instead of extracting them: frame features, an .h5 keyed by movie "
                          "(MAD-v2 layout, as `moviead extract-features` writes) or a folder of {movie}.npy")
    describe.add_argument("--movie", help="the film's key in the features file (default with --video: its file name)")
    describe.add_argument("--checkpoint", required=True, help="a Stage-II .ckpt, its run folder or its export/ folder")
    describe.add_argument("--out", required=True, help="output folder")
    describe.add_argument("--subtitles", help="the film's subtitles (.srt or .vtt); without them: fixed windows")
    describe.add_argument("--min-gap", type=positive_seconds, default=2.0, help="shortest dialogue-free gap that gets an AD (s)")
    describe.add_argument("--max-cue", type=positive_seconds, default=8.0, help="longer gaps are split into cues of at most this")
    describe.add_argument("--window", type=positive_seconds, default=8.0, help="cue length without subtitles (s)")
    describe.add_argument("--set", nargs="*", help="key=value overrides of the checkpoint's config, e.g. data.fps=5")
    describe.add_argument("--words-per-second", type=float, default=2.7, help="speaking rate of the word budgets: "
                          "a cue of d s gets floor(d x rate) words (default 2.7, the usual narration pace)")
    describe.add_argument("--no-repeat-ngram", type=int, default=3, help="no AD repeats an n-gram of this size "
                          "(default 3; 0: off)")
    describe.add_argument("--audio", action="store_true", help="also speak the track with eSpeak NG: <movie>.ad.wav")
    describe.add_argument("--film-audio", help="with --audio: the programme audio, ducked under the AD in "
                          "<movie>.mix.wav")
    describe.add_argument("--duck-db", type=float, default=12.0, help="programme lowered by this while an AD speaks")
    describe.add_argument("--html", action="store_true", help="also write the preview page (see `moviead preview`)")
    describe.add_argument("--clip-model", default="ViT-L-14", help="with --video: the open_clip architecture "
                          "that extracts the features (as extract-features), or local-dir:PATH")
    describe.add_argument("--clip-checkpoint", help="with --video: the weights file of --clip-model")
    describe.add_argument("--clip-model-config", help="an open_clip architecture JSON for --clip-model (its file stem)")
    describe.add_argument("--clip-batch-size", type=at_least(1), default=64, help="frames per CLIP batch")
    add_decoding_arguments(describe)
    describe.set_defaults(func=cmd_describe)

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
