"""The ablation spec (``configs/ablations/*.yaml``): the world, the seeds, the runs and the rows compared.

A *run* is one ``moviead train`` (Stage-I or Stage-II) with its config files and overrides; a *row* is a paper's
claim written as two ``(run, mode)`` results of which ``better`` should score higher on ``metric`` than ``worse``
(lower with ``lower_is_better``). A metric named ``stage1:<key>`` is read from a Stage-I run's ``metrics.csv`` (the
last logged value of ``<key>``); any other metric from ``moviead evaluate``'s ``metrics.json`` of the mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from moviead.user_errors import UserError

STAGE1_PREFIX = "stage1:"
MODES = ("local", "oracle", "recurrent")
DATA_PARTS = ("mad", "lsmdc", "storyboard")  # the folders `moviead make-toy-data` writes


class AblationSpecError(UserError, ValueError):
    """An ablation spec that cannot be run: says which entry is wrong and what it should be."""


@dataclass(frozen=True)
class WorldSpec:
    """The toy world every run trains on: ``moviead make-toy-data --world VERSION --movies N --seed SEED``, then, when
    ``pretrain_lm_steps`` > 0, ``moviead pretrain-toy-lm`` with that many steps (``decoders/tiny-opt-lm``)."""

    version: str = "v2"
    movies: int = 12
    seed: int = 0
    pretrain_lm_steps: int = 0


@dataclass(frozen=True)
class RunSpec:
    """One training: ``stage`` 1 or 2, config files, overrides, the Stage-I run it builds on, evaluation modes, and
    which part of the toy world it reads (``mad``, ``lsmdc`` or ``storyboard``: the folder given as ``data.root``)."""

    name: str
    stage: int
    files: tuple[str, ...]
    overrides: tuple[str, ...] = ()
    stage1: str | None = None
    modes: tuple[str, ...] = ("oracle",)
    data: str = "mad"


@dataclass(frozen=True)
class Side:
    """One side of a row: a run's result in one evaluation mode (Stage-I metrics ignore the mode)."""

    run: str
    mode: str = "oracle"


@dataclass(frozen=True)
class RowSpec:
    """A paper's claim: ``better`` beats ``worse`` on ``metric`` in every seed."""

    name: str
    paper: str
    table: str
    row: str
    metric: str
    better: Side
    worse: Side
    lower_is_better: bool = False

    @property
    def direction(self) -> str:
        """The paper's direction in words, e.g. ``"distinct_full < distinct_no_em"``."""
        sign = "<" if self.lower_is_better else ">"
        return f"{self.better.run}/{self.better.mode} {sign} {self.worse.run}/{self.worse.mode}"


@dataclass(frozen=True)
class AblationSpec:
    """A whole spec; :meth:`restricted` gives the quick subset."""

    world: WorldSpec
    seeds: tuple[int, ...]
    runs: dict[str, RunSpec]
    rows: dict[str, RowSpec]
    common: tuple[str, ...] = ()
    eval_args: tuple[str, ...] = ()
    distinct_context: int = 3
    stage2_common: tuple[str, ...] = ()  # overrides of every Stage-II run, after ``common``
    quick_seeds: tuple[int, ...] = ()
    quick_rows: tuple[str, ...] = ()
    source: str = ""

    def restricted(self) -> AblationSpec:
        """The quick spec: its seeds and rows, and only the runs those rows need (with their Stage-I runs)."""
        return self._subset([self.rows[name] for name in self.quick_rows], self.quick_seeds or self.seeds[:1])

    def only(self, patterns: Sequence[str]) -> AblationSpec:
        """The rows named by ``patterns`` (a row's name, or a prefix ending in ``*``, e.g. ``focused_*``) with the
        runs they need, in every seed of this spec.

        Raises:
            AblationSpecError: a pattern that names no row.
        """
        def match(name: str, pattern: str) -> bool:
            return name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern

        unmatched = [p for p in patterns if not any(match(name, p) for name in self.rows)]
        if unmatched:
            raise AblationSpecError(f"--rows {unmatched} name no row of {self.source} (rows: {', '.join(self.rows)})")
        return self._subset([r for name, r in self.rows.items() if any(match(name, p) for p in patterns)], self.seeds)

    def with_seeds(self, seeds: Sequence[int]) -> AblationSpec:
        """This spec on ``seeds`` only, each one of its own seeds (a partial sweep; a full run later reuses it).

        Raises:
            AblationSpecError: a seed the spec does not have.
        """
        unknown = [seed for seed in seeds if seed not in self.seeds]
        if unknown or not seeds:
            raise AblationSpecError(f"--seeds {list(seeds)}: give one or more of {self.source}'s seeds "
                                    f"{list(self.seeds)}")
        return self._subset(list(self.rows.values()), tuple(seeds))

    def _subset(self, rows: Sequence[RowSpec], seeds: tuple[int, ...]) -> AblationSpec:
        """``rows`` and only the runs they need (with their Stage-I runs), in ``seeds``."""
        needed = {side.run for row in rows for side in (row.better, row.worse)}
        needed |= {self.runs[name].stage1 for name in needed if self.runs[name].stage1}
        runs = {name: run for name, run in self.runs.items() if name in needed}
        return AblationSpec(self.world, seeds, runs, {row.name: row for row in rows}, self.common, self.eval_args,
                            self.distinct_context, stage2_common=self.stage2_common, source=self.source)

    def overrides_of(self, run: RunSpec) -> list[str]:
        """The spec's overrides of ``run``: ``common``, then ``stage2_common`` for a Stage-II run, then its own."""
        return [*self.common, *(self.stage2_common if run.stage == 2 else ()), *run.overrides]

    def modes_of(self, run: str) -> tuple[str, ...]:
        """The evaluation modes a run needs: its own plus those its rows ask for."""
        wanted = list(self.runs[run].modes)
        for row in self.rows.values():
            for side in (row.better, row.worse):
                if side.run == run and side.mode not in wanted and not row.metric.startswith(STAGE1_PREFIX):
                    wanted.append(side.mode)
        return tuple(wanted)


def _side(raw: Any, where: str, runs: dict[str, RunSpec]) -> Side:
    if not isinstance(raw, dict) or "run" not in raw:
        raise AblationSpecError(f"{where}: expected {{run: NAME, mode: MODE}}, got {raw!r}")
    side = Side(str(raw["run"]), str(raw.get("mode", "oracle")))
    if side.run not in runs:
        raise AblationSpecError(f"{where}: unknown run {side.run!r} (runs: {', '.join(sorted(runs))})")
    if side.mode not in MODES:
        raise AblationSpecError(f"{where}: unknown mode {side.mode!r} (one of {', '.join(MODES)})")
    return side


def _run(name: str, raw: dict[str, Any]) -> RunSpec:
    stage = int(raw.get("stage", 0))
    if stage not in (1, 2):
        raise AblationSpecError(f"run {name!r}: stage must be 1 or 2, got {raw.get('stage')!r}")
    files = tuple(str(f) for f in raw.get("files") or ())
    if not files:
        raise AblationSpecError(f"run {name!r}: give its config files (files: [...])")
    modes = tuple(str(m) for m in raw.get("modes") or ("oracle",))
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise AblationSpecError(f"run {name!r}: unknown mode(s) {bad} (one of {', '.join(MODES)})")
    data = str(raw.get("data", "mad"))
    if data not in DATA_PARTS:
        raise AblationSpecError(f"run {name!r}: data must be one of {', '.join(DATA_PARTS)}, got {data!r}")
    return RunSpec(name, stage, files, tuple(str(o) for o in raw.get("overrides") or ()), raw.get("stage1"), modes,
                   data)


def load_spec(path: str | Path) -> AblationSpec:
    """Read and check an ablation spec.

    Raises:
        AblationSpecError: a missing file, an unknown run or mode, a Stage-II run building on a missing or
            non-Stage-I run, a Stage-I metric on a Stage-II run, or a quick row that is not a row.
    """
    path = Path(path)
    if not path.is_file():
        raise AblationSpecError(f"{path}: no such ablation spec (the default is configs/ablations/toy.yaml)")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    runs = {name: _run(name, body or {}) for name, body in (raw.get("runs") or {}).items()}
    for run in runs.values():
        if run.stage1 is not None and (run.stage1 not in runs or runs[run.stage1].stage != 1):
            raise AblationSpecError(f"run {run.name!r}: stage1 {run.stage1!r} is not a Stage-I run of this spec")
    rows = {}
    for name, body in (raw.get("rows") or {}).items():
        missing = [k for k in ("paper", "table", "row", "metric", "better", "worse") if k not in body]
        if missing:
            raise AblationSpecError(f"row {name!r}: missing {', '.join(missing)}")
        row = RowSpec(name, str(body["paper"]), str(body["table"]), str(body["row"]), str(body["metric"]),
                      _side(body["better"], f"row {name!r} better", runs), _side(body["worse"], f"row {name!r} worse",
                                                                                 runs),
                      bool(body.get("lower_is_better", False)))
        stage1_metric = row.metric.startswith(STAGE1_PREFIX)
        for side in (row.better, row.worse):
            if stage1_metric != (runs[side.run].stage == 1):
                raise AblationSpecError(f"row {name!r}: metric {row.metric!r} does not fit run {side.run!r} "
                                        f"(Stage-{runs[side.run].stage}); Stage-I metrics are written stage1:<key>")
        rows[name] = row
    quick = raw.get("quick") or {}
    unknown = [r for r in quick.get("rows") or () if r not in rows]
    if unknown:
        raise AblationSpecError(f"quick rows {unknown} are not rows of {path}")
    seeds = tuple(int(s) for s in raw.get("seeds") or (0,))
    return AblationSpec(
        world=WorldSpec(**(raw.get("world") or {})), seeds=seeds, runs=runs, rows=rows,
        common=tuple(str(o) for o in raw.get("common") or ()), eval_args=tuple(str(a) for a in raw.get("eval_args")
                                                                                 or ()),
        stage2_common=tuple(str(o) for o in raw.get("stage2_common") or ()),
        distinct_context=int(raw.get("distinct_context", 3)), quick_seeds=tuple(int(s) for s in quick.get("seeds")
                                                                                   or ()),
        quick_rows=tuple(quick.get("rows") or ()), source=str(path),
    )


@dataclass
class RunResult:
    """What one (seed, run) produced: metrics per mode (Stage-II) or ``stage1:<key>`` values, or why it failed."""

    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    error: str | None = None
