"""scripts/ablation_name_copying.py: the Table 6 diagnosis table from a sweep's predictions."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ablation_name_copying.py"


def test_the_table_has_a_row_per_run_and_seed_and_a_dash_for_a_missing_run(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "sweep" / "seed0" / "loco_dsm_k2" / "eval" / "test-oracle"
    folder.mkdir(parents=True)
    kettle = {"ad": "Ada opens the kettle.", "subtitles": []}
    rows = [{"gt": "Ada inspects the ladle.", "pred": "Ada inspects the ladle.", "context": [kettle]},
            {"gt": "Cai opens the kettle.", "pred": "Ada opens the kettle.", "context": [kettle]}]
    (folder / "predictions.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / "metrics.json").write_text(json.dumps({"mode": "oracle", "name_acc": 0.5}))  # 1 of the 2 names
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), str(tmp_path / "sweep"), "--runs", "loco_dsm_k2,loco_recent_2"])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "| loco_dsm_k2 | 0 | 50.0 | 50.0 | 100.0 | 100.0 | 0.0 | 0.0 |"
    assert lines[3] == "| loco_recent_2 | 0 | – | – | – | – | – | – |"
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), str(tmp_path)])
    with pytest.raises(SystemExit):
        runpy.run_path(str(SCRIPT), run_name="__main__")
