"""Train and evaluate every (seed, run) of an ablation spec, in parallel worker processes, resumably.

Layout under ``out`` (default ``runs/ablations``)::

    data/                      the toy world (``moviead make-toy-data``), with world.json saying which one
    seed<S>/<run>/             a ``moviead train`` run folder (``eval/`` holds ``moviead evaluate``'s output)
    seed<S>/<run>.result.json  the run's metrics, written last: a rerun skips a (seed, run) that has one
    logs/seed<S>-<run>.log     everything the run's commands printed

Each run is a subprocess (its training, then for a Stage-II run its evaluation, in one process:
:mod:`moviead.cli_sequence`), so a crash loses one run, not the sweep, and a rerun resumes: finished runs are
read back, an interrupted training goes on from its ``last.ckpt``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from moviead.ablation.spec import STAGE1_PREFIX, AblationSpec, AblationSpecError, RunResult, RunSpec
from moviead.atomic_files import write_text_atomically
from moviead.metrics.distinctive import distinctive_word_recall
from moviead.metrics.toy import toy_context_selection, toy_name_copying
from moviead.plots import read_metrics
from moviead.toy.lm_pretraining import pretrained_decoder_dir
from moviead.toy.storyboard_patches import PATCH_FILE

Command = list[str]


@dataclass(frozen=True)
class AblationPaths:
    """Where a sweep writes; see the module docstring."""

    out: Path

    @property
    def data(self) -> Path:
        return self.out / "data"

    def run_dir(self, seed: int, run: str) -> Path:
        return self.out / f"seed{seed}" / run

    def result(self, seed: int, run: str) -> Path:
        return self.out / f"seed{seed}" / f"{run}.result.json"

    def log(self, seed: int, run: str) -> Path:
        return self.out / "logs" / f"seed{seed}-{run}.log"


def _moviead(*args: str) -> Command:
    return [sys.executable, "-m", "moviead", *args]


def _moviead_arguments(command: Command) -> list[str]:
    """The arguments of a :func:`_moviead` command (what follows ``python -m moviead``)."""
    prefix = _moviead()
    if command[:len(prefix)] != prefix or len(command) == len(prefix):
        raise ValueError(f"not a `python -m moviead` command: {command}")
    return command[len(prefix):]


def pretrain_world_decoder(spec: AblationSpec, paths: AblationPaths, run: Callable[[Command, Path], None]) -> None:
    """``moviead pretrain-toy-lm`` on the written world when the spec asks (``world.pretrain_lm_steps``) and it has
    not been pretrained with that many steps; nothing otherwise."""
    steps = spec.world.pretrain_lm_steps
    report = pretrained_decoder_dir(paths.data) / "pretraining.json"
    if steps > 0 and (not report.is_file() or json.loads(report.read_text(encoding="utf-8")).get("steps") != steps):
        run(_moviead("pretrain-toy-lm", "--data", str(paths.data), "--steps", str(steps)),
            paths.out / "logs" / "pretrain-toy-lm.log")


def ensure_world_data(spec: AblationSpec, paths: AblationPaths, run: Callable[[Command, Path], None]) -> Path:
    """Write the spec's toy world under ``paths.data`` unless it is there; returns the MAD-layout root.

    Raises:
        AblationSpecError: ``paths.data`` holds another world (other version, movie count or seed).
    """
    marker = paths.data / "world.json"
    wanted = {"version": spec.world.version, "movies": spec.world.movies, "seed": spec.world.seed}
    if marker.is_file():
        found = json.loads(marker.read_text(encoding="utf-8"))
        if found != wanted:
            raise AblationSpecError(f"{paths.data} holds the toy world {found}, the spec wants {wanted}: "
                                    "remove that folder or give another --out")
        storyboard = any(run.data == "storyboard" for run in spec.runs.values())
        if storyboard and not (paths.data / "storyboard" / PATCH_FILE).is_file():
            raise AblationSpecError(f"{paths.data} was written before the toy Storyboard-v2 part had patch features "
                                    "(and background-dominated frames): remove that folder (its MAD-v2 and LSMDC files "
                                    f"come back byte-identical) and {paths.out}/seed*/focused_*, or give another --out")
        return paths.data / "mad"
    paths.data.mkdir(parents=True, exist_ok=True)
    run(_moviead("make-toy-data", "--out", str(paths.data), "--world", spec.world.version, "--movies",
                 str(spec.world.movies), "--seed", str(spec.world.seed)), paths.out / "logs" / "make-toy-data.log")
    marker.write_text(json.dumps(wanted, indent=1) + "\n", encoding="utf-8")
    return paths.data / "mad"


def train_command(spec: AblationSpec, paths: AblationPaths, data_root: Path, seed: int, run: RunSpec) -> Command:
    """``moviead train`` of one (seed, run): files, ``data.root`` (the world's ``run.data`` folder beside the MAD-layout
    ``data_root``), the spec's common overrides (and its Stage-II ones for a Stage-II run), the run's own,
    then the seed, the name, the run folder, the W&B group (the run: its seeds together) and tags (``ablation`` and
    the rows the run is a side of), and the Stage-I export a Stage-II run builds on."""
    rows = sorted(row.name for row in spec.rows.values() if run.name in (row.better.run, row.worse.run))
    overrides = [f"data.root={data_root.parent / run.data}", *spec.overrides_of(run), f"seed={seed}",
                 f"name={run.name}",
                 f"trainer.default_root_dir={paths.out / f'seed{seed}'}", f"logger.wandb.group=ablation-{run.name}",
                 f"logger.wandb.tags=[ablation,{','.join(rows)}]"]
    if run.stage1:
        overrides.append(f"captioning.stage1={paths.run_dir(seed, run.stage1) / 'export'}")
    return _moviead("train", *run.files, *overrides)


def evaluate_command(spec: AblationSpec, paths: AblationPaths, seed: int, run: RunSpec) -> Command:
    """``moviead evaluate`` of a Stage-II run on the test split, in the modes its rows need."""
    return _moviead("evaluate", "--checkpoint", str(paths.run_dir(seed, run.name)), "--split", "test", "--mode",
                    ",".join(spec.modes_of(run.name)), "--restart", *spec.eval_args)


def stage2_metrics(spec: AblationSpec, paths: AblationPaths, seed: int, run: RunSpec) -> dict[str, dict[str, float]]:
    """Per mode: ``moviead evaluate``'s numeric metrics plus, from the predictions, ``distinct_recall``, how well
    the context given serves the target (``context_name_recall``, ``context_place_precision``:
    :func:`~moviead.metrics.toy.toy_context_selection`) and what the model does with a name the context holds
    (``name_acc_in_context``, ``context_several_names``, ``name_acc_several_names``:
    :func:`~moviead.metrics.toy.toy_name_copying`)."""
    out: dict[str, dict[str, float]] = {}
    for mode in spec.modes_of(run.name):
        folder = paths.run_dir(seed, run.name) / "eval" / f"test-{mode}"
        metrics = read_metrics(folder / "metrics.json")
        rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
        metrics["distinct_recall"] = distinctive_word_recall(
            ((r["movie"], r["index"], r["gt"], r["pred"]) for r in rows), spec.distinct_context)
        metrics.update(context_metrics(rows))
        out[mode] = metrics
    return out


def context_metrics(rows: list[dict]) -> dict[str, float]:
    """What the context given served and what the model did with it, from ``moviead evaluate``'s prediction rows
    (``gt``, ``pred``, ``context``: items ``{"ad", "subtitles": [...]}``; none for a row without it):
    :func:`~moviead.metrics.toy.toy_context_selection` and :func:`~moviead.metrics.toy.toy_name_copying`."""
    contexts = [[(item["ad"], " ".join(item["subtitles"])) for item in row.get("context", [])] for row in rows]
    return {**toy_context_selection((row["gt"], context) for row, context in zip(rows, contexts)),
            **toy_name_copying((row["gt"], row["pred"], context) for row, context in zip(rows, contexts))}


def _identity(arguments: list[str]) -> list[str]:
    """What decides a run's result: its command without the logger settings (W&B group and tags)."""
    return [a for a in arguments if not a.startswith("logger.")]


class AblationRunner:
    """Runs a spec's jobs with ``jobs`` worker processes at a time; :meth:`run` returns every result.

    ``execute(command, log)`` runs one command (tests replace it); by default a subprocess whose output goes to
    ``log``, with the CPU threads shared between the workers. By default a run's commands share one subprocess
    (:meth:`_execute_all`); a given ``execute`` gets them one at a time.
    """

    def __init__(self, spec: AblationSpec, out: Path, jobs: int = 2,
                 execute: Callable[[Command, Path], None] | None = None) -> None:
        if jobs < 1:
            raise AblationSpecError(f"--jobs must be >= 1, got {jobs}")
        self.spec, self.paths, self.jobs = spec, AblationPaths(Path(out)), jobs
        self.execute = execute or self._subprocess
        self._one_process = execute is None

    def _execute_all(self, commands: list[Command], log: Path) -> None:
        """Run ``moviead`` commands in order: in one subprocess (:mod:`moviead.cli_sequence`) by default,
        else each through the given ``execute``."""
        if self._one_process and len(commands) > 1:
            together = [_moviead_arguments(command) for command in commands]
            self._subprocess([sys.executable, "-m", "moviead.cli_sequence", json.dumps(together)], log,
                             what="moviead " + " then ".join(arguments[0] for arguments in together))
            return
        for command in commands:
            self.execute(command, log)

    def _subprocess(self, command: Command, log: Path, what: str | None = None) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        threads = str(max(1, (os.cpu_count() or 1) // self.jobs))
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "HF_HUB_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"$ {' '.join(command)}\n")
            handle.flush()
            code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env, check=False).returncode
        if code != 0:
            raise RuntimeError(f"`{what or ' '.join(command[2:5])} ...` exited with {code}: see {log}")

    def _job(self, seed: int, run: RunSpec, data_root: Path, before: Future | None, decoder: Future | None
             ) -> RunResult:
        failed = decoder.result().error if decoder is not None else None
        if failed:
            return RunResult(error=f"the world's decoder pretraining failed: {failed}")
        if before is not None and before.result().error:
            return RunResult(error=f"its Stage-I run {run.stage1!r} failed")
        result_path = self.paths.result(seed, run.name)
        command = train_command(self.spec, self.paths, data_root, seed, run)
        if result_path.is_file():
            saved = json.loads(result_path.read_text(encoding="utf-8"))
            if _identity(saved.get("command") or []) == _identity(command[1:]):
                return RunResult(metrics=saved["metrics"])
        folder, log = self.paths.run_dir(seed, run.name), self.paths.log(seed, run.name)
        started = time.monotonic()
        try:
            if (folder / "checkpoints" / "last.ckpt").is_file() and not result_path.is_file():
                train = [*command, "--resume"]  # an interrupted training goes on
            else:
                train = [*command, "--overwrite"] if folder.exists() else command
            if run.stage == 1:
                self._execute_all([train], log)
                metrics = {"-": {f"{STAGE1_PREFIX}{k}": v for k, v in read_metrics(folder / "metrics.csv").items()}}
            else:
                self._execute_all([train, evaluate_command(self.spec, self.paths, seed, run)], log)
                metrics = stage2_metrics(self.spec, self.paths, seed, run)
        except (RuntimeError, OSError, KeyError, ValueError) as err:
            return RunResult(error=str(err))
        # written last and atomically: its presence means the run is complete
        minutes = round((time.monotonic() - started) / 60, 2)  # training + evaluation, this (seed, run) alone
        write_text_atomically(result_path, json.dumps({"command": command[1:], "minutes": minutes, "metrics": metrics},
                                                      indent=1) + "\n")
        return RunResult(metrics=metrics)

    def _pretraining(self) -> RunResult:
        try:
            pretrain_world_decoder(self.spec, self.paths, self.execute)
        except (RuntimeError, OSError) as err:
            return RunResult(error=str(err))
        return RunResult(metrics={})

    def run(self) -> dict[tuple[int, str], RunResult]:
        """Every (seed, run) of the spec: Stage-I runs are queued first, a Stage-II run waits for its Stage-I and for
        the world's decoder pretraining, which runs beside the Stage-I runs (one worker), not before them."""
        data_root = ensure_world_data(self.spec, self.paths, self.execute).resolve()
        ordered = sorted(self.spec.runs.values(), key=lambda r: r.stage)
        futures: dict[tuple[int, str], Future] = {}
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=self.jobs) as pool, tqdm(total=len(ordered) * len(self.spec.seeds),
                                                                      desc="ablation runs", unit="run") as bar:
            decoder = pool.submit(self._pretraining)  # first: a job only waits for jobs submitted before it
            decoder.add_done_callback(lambda f: bar.write(
                f"[{(time.monotonic() - started) / 60:5.1f} min] decoder pretraining: "
                f"{'FAILED: ' + f.result().error if f.result().error else 'done'}"))
            for run in ordered:
                for seed in self.spec.seeds:
                    before = futures[(seed, run.stage1)] if run.stage1 else None
                    future = pool.submit(self._job, seed, run, data_root, before, decoder if run.stage == 2 else None)
                    future.add_done_callback(lambda f, s=seed, r=run.name: self._report(bar, s, r, f, started))
                    futures[(seed, run.name)] = future
            results = {key: future.result() for key, future in futures.items()}
        return results

    @staticmethod
    def _report(bar: tqdm, seed: int, run: str, future: Future, started: float) -> None:
        result = future.result()
        minutes = (time.monotonic() - started) / 60
        state = f"FAILED: {result.error}" if result.error else "done"
        bar.write(f"[{minutes:5.1f} min] seed {seed} {run}: {state}")
        bar.update(1)
