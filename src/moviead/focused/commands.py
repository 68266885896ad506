"""``moviead build-char-bank`` and ``moviead sweep-recognition`` (registered by :func:`add_focused_commands`).

- ``build-char-bank PORTRAITS --out best_query --weights vggface2.pt``: face embeddings of the portraits
  ``PORTRAITS/{imdbid}/{NAME}/*.jpg`` (MTCNN + InceptionResnetV1), then the best query of each character
  (:mod:`moviead.focused.char_bank`) written to ``best_query/{imdbid}/{NAME}.npy``. ``--embeddings FACES``
  clusters labelled embeddings instead (npz or folder, :mod:`moviead.focused.face_sets`), with no face model;
  ``--save-embeddings FACES.npz`` keeps the portraits' embeddings for that.
- ``sweep-recognition FACES --bank best_query``: recognition accuracy of labelled faces per threshold τ
  (FocusedAD Fig. 7).
- ``recognise --records R.json --bank best_query --tau 1.3 --out R2.json``: every detection of a Storyboard-v2 file
  recognised again from its face embedding with that bank (:mod:`moviead.focused.relabel`), written atomically, and
  the recognition accuracy against the detections' ground truth.

Heavy imports happen inside the commands, so registering them costs nothing.
"""

from __future__ import annotations

import argparse
import sys

DEFAULT_THRESHOLDS = (0.9, 1.0, 1.1, 1.2, 1.3, 1.4)


def cmd_build_char_bank(args: argparse.Namespace) -> int:
    from moviead.focused.char_bank import write_bank
    from moviead.focused.face_sets import read_face_set, write_face_set

    if (args.portraits is None) == (args.embeddings is None):
        print("moviead build-char-bank: error: give a portrait folder or --embeddings, not both", file=sys.stderr)
        return 2
    if args.embeddings is not None:
        faces = read_face_set(args.embeddings)
    else:
        from moviead.focused.faces import load_face_embedder, portrait_faces

        try:
            embedder = load_face_embedder(args.weights, device=args.device, min_confidence=args.min_confidence)
        except ImportError as err:
            print(f"moviead build-char-bank: error: {err}", file=sys.stderr)
            return 2
        found = portrait_faces(args.portraits, embedder)
        for path in found.without_face:
            print(f"  no face found in {path}")
        faces = found.faces
        if args.save_embeddings:
            print(f"saved {len(faces)} portrait embeddings to {write_face_set(faces, args.save_embeddings)}")
    if not len(faces):
        print("moviead build-char-bank: error: no face embeddings to cluster", file=sys.stderr)
        return 2
    report = write_bank(faces, args.out, k=args.k, max_rounds=args.rounds, min_cluster_size=args.min_cluster_size,
                        seed=args.seed)
    print(f"wrote {len(report.written)} best queries for {len(report.rounds)} movies to {args.out}")
    for movie in sorted(report.rounds):
        names = sorted(name for m, name in report.written if m == movie)
        state = "converged" if report.converged[movie] else "not converged"
        print(f"  {movie}: {len(names)} characters, {report.rounds[movie]} round(s), {state}: {', '.join(names)}")
    return 0


def cmd_sweep_recognition(args: argparse.Namespace) -> int:
    from moviead.data.formats.storyboard import read_best_query_bank
    from moviead.focused.face_sets import read_face_set
    from moviead.focused.recognition import sweep_thresholds

    faces = read_face_set(args.faces)
    bank = read_best_query_bank(args.bank)
    try:
        points = sweep_thresholds(faces, bank, args.thresholds, args.min_confidence)
    except KeyError as err:
        print(f"moviead sweep-recognition: error: {err.args[0]}", file=sys.stderr)
        return 2
    kept = points[0].total if points else 0
    print(f"{kept} of {len(faces)} faces with confidence >= {args.min_confidence:g}")
    print("threshold  accuracy  correct")
    for p in points:
        print(f"{p.threshold:9.2f}  {p.accuracy:8.4f}  {p.correct:>7d}")
    if points:
        best = max(points, key=lambda p: (p.accuracy, -p.threshold))
        print(f"best threshold: {best.threshold:g} (accuracy {best.accuracy:.4f})")
    return 0


def cmd_recognise(args: argparse.Namespace) -> int:
    from moviead.data.errors import DataFormatError
    from moviead.focused.relabel import relabel_records

    try:
        result = relabel_records(args.records, args.bank, args.out, args.tau, args.min_confidence)
    except DataFormatError as err:
        print(f"moviead recognise: error: {err}", file=sys.stderr)
        return 2
    detections = sum(len(r.detections) for r in result.records)
    print(f"recognised {detections} detection(s) of {len(result.records)} record(s) with {args.bank} "
          f"(τ = {args.tau:g} on the L2 distance, confidence >= {args.min_confidence:g})")
    if args.out is not None:
        print(f"wrote {args.out}")
    s = result.score
    if s.total:
        print(f"recognition accuracy: {s.accuracy:.4f} ({s.correct}/{s.total} detections with a ground-truth name)")
        if s.named_total:
            print(f"  bank characters: {s.named_correct / s.named_total:.4f} ({s.named_correct}/{s.named_total})")
        if s.other_total:
            print(f"  unknown ('other' or not in the bank, right when 'other'): "
                  f"{s.other_correct / s.other_total:.4f} ({s.other_correct}/{s.other_total})")
    else:
        print("no detection with a ground-truth name and enough confidence: no accuracy")
    return 0


def add_focused_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``build-char-bank``, ``sweep-recognition`` and ``recognise`` on the ``moviead`` sub-command parser."""
    bank = sub.add_parser("build-char-bank", help="FocusedAD best-query bank from each character's portrait faces")
    bank.add_argument("portraits", nargs="?", help="folder of portraits {imdbid}/{NAME}/*.jpg (needs --weights)")
    bank.add_argument("--embeddings", help="labelled face embeddings to cluster instead (npz or {imdbid}/{NAME}/*.npy)")
    bank.add_argument("--out", required=True, help="the best_query folder to write ({imdbid}/{NAME}.npy)")
    bank.add_argument("--weights", help="InceptionResnetV1 weights (facenet-pytorch's 20180402-114759-vggface2.pt)")
    bank.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    bank.add_argument("--min-confidence", type=float, default=0.7, help="faces less certain are skipped (default 0.7)")
    bank.add_argument("--save-embeddings", help="also save the portraits' embeddings to this npz")
    bank.add_argument("--k", type=int, default=3, help="k-means clusters per character (default 3)")
    bank.add_argument("--rounds", type=int, default=10, help="most rounds over the characters (default 10)")
    bank.add_argument("--min-cluster-size", type=int, default=2,
                      help="smaller clusters are candidates only when none is this large (default 2)")
    bank.add_argument("--seed", type=int, default=0, help="k-means seed")
    bank.set_defaults(func=cmd_build_char_bank)

    sweep = sub.add_parser("sweep-recognition", help="FocusedAD recognition accuracy per threshold on labelled faces")
    sweep.add_argument("faces", help="labelled faces: npz (embeddings, labels, movies[, confidences]) or folder")
    sweep.add_argument("--bank", required=True, help="the best_query folder ({imdbid}/{NAME}.npy)")
    sweep.add_argument("--thresholds", type=float, nargs="+", default=list(DEFAULT_THRESHOLDS),
                       help=f"L2-distance thresholds τ (default {' '.join(map(str, DEFAULT_THRESHOLDS))})")
    sweep.add_argument("--min-confidence", type=float, default=0.7, help="faces less certain are skipped")
    sweep.set_defaults(func=cmd_sweep_recognition)

    recognise = sub.add_parser("recognise", help="re-label Storyboard-v2 detections with a best-query bank (from each "
                               "face's embedding) and report recognition accuracy")
    recognise.add_argument("--records", required=True, help="Storyboard-v2 JSON whose detections have face embeddings")
    recognise.add_argument("--bank", required=True, help="the best_query folder ({imdbid}/{NAME}.npy)")
    recognise.add_argument("--tau", type=float, default=1.3,
                           help="a face is its nearest character when the L2 distance is below τ (default 1.3)")
    recognise.add_argument("--min-confidence", type=float, default=0.7, help="less certain faces are skipped")
    recognise.add_argument("--out", help="write the re-labelled records here (atomically); omit to only score")
    recognise.set_defaults(func=cmd_recognise)
