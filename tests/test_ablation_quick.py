"""`make ablations QUICK=1` end to end (slow: 15.8, 18.2 and 19.7 minutes on 2 cores, measured 2026-12-03 from an
empty folder as the machine's speed varied; the decoder pretraining 5.6 to 7.2 of them): toy world v2, seed 0, the
Table 6 rows and DistinctAD's EM rows, trained and evaluated by `moviead ablate --quick`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moviead.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICK_ROWS = {"t6_dsm_k2", "t6_dsm_k3", "em_repetition", "em_distinct_recall"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_summary(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("ablations")
    assert main(["ablate", str(ROOT / "configs" / "ablations" / "toy.yaml"), "--out", str(out), "--quick"]) == 0
    return json.loads((out / "summary.json").read_text(encoding="utf-8")) | {"out": str(out)}


def test_quick_ablations_measure_every_row_and_plot_each_table(quick_summary):
    rows = {row["name"]: row for row in quick_summary["rows"]}
    assert set(rows) == QUICK_ROWS and quick_summary["seeds"] == [0]
    for row in rows.values():
        assert row["missing"] is None and row["holds"] is not None, row
        assert set(row["better"]["values"]) == set(row["worse"]["values"]) == {"0"}
    plots = sorted(p.name for p in (Path(quick_summary["out"]) / "plots").glob("*.png"))
    assert plots == ["distinctad_stage_ii.png", "loco_mad_table_6.png"]


# Measured by QUICK=1 itself (session 15, 2026-12-03; every figure equal to seed 0 of the full sweep in
# docs/ablations/summary.md): the DSM rows hold (top 2 of 10 name 83.7 % of test ADs against 47.7 % for the last 2;
# top 3 89.5 % against 53.5 %) and DistinctAD's EM bases (from the neighbouring clips) lower repetition (11.5 against
# 14.9); they give fewer distinctive words than no EM (62.9 against 70.1), as on every seed of the full sweep.
HOLDING_ROWS = {"t6_dsm_k2", "t6_dsm_k3", "em_repetition"}


def test_quick_rows_hold(quick_summary):
    rows = {row["name"]: row for row in quick_summary["rows"]}
    assert {name: rows[name]["holds"] for name in HOLDING_ROWS} == dict.fromkeys(HOLDING_ROWS, True)


# Not asserted: em_distinct_recall (EM bases > no EM on distinctive words) does not hold on toy world v2 (62.9 against
# 70.1 on seed 0; 0 of 3 seeds in the full sweep) and is reported as measured (README, Ablations; summary.md says so).
# test_quick_ablations_measure_every_row_and_plot_each_table checks that it is measured on seed 0 like the others.
