"""``bench/gpu.py --dry-run``: the GPU benchmark's code path on the CPU with tiny shapes prints its full table."""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_gpu_bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_gpu"] = module
    spec.loader.exec_module(module)
    return module


def test_dry_run_prints_every_part_with_finite_figures(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    gpu = load_gpu_bench()
    readme_before = (BENCH / "README.md").read_text(encoding="utf-8")
    rows = gpu.main(["--dry-run", "--peak-tflops", "1", "--warmup", "0"])  # a made-up peak: exercises MFU
    out = capsys.readouterr().out
    assert [r["part"] for r in rows] == ["pme", "opt-1.3b", "opt-2.7b"]
    for r in rows:
        for key in ("step_ms", "tokens_per_s", "peak_gib", "tflop_step", "counted_tflop_step", "tflops", "mfu"):
            assert math.isfinite(r[key]) and r[key] > 0, (r["part"], key, r[key])
        # the 6·N·tokens formula and the counted matmul FLOPs agree roughly (attention and padding aside)
        assert 0.5 < r["tflop_step"] / r["counted_tflop_step"] < 1.5, r
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| part | shape | batch | tokens/step")
    body = {line.split("|")[1].strip(): line for line in table[1:]}
    assert set(body) == {"pme", "opt-1.3b", "opt-2.7b"}
    for line in body.values():
        numbers = [float(x.replace(",", "")) for x in re.findall(r"-?[\d,]*\.?\d+(?:e[-+]?\d+)?", line)]
        assert numbers and all(math.isfinite(x) for x in numbers)
        assert "%" in line.split("|")[-2]  # MFU printed
    assert (BENCH / "README.md").read_text(encoding="utf-8") == readme_before  # a dry run writes nothing


def test_peaks_and_readme_section(tmp_path: Path) -> None:
    gpu = load_gpu_bench()
    assert gpu.peak_tflops("NVIDIA H200") == gpu.peak_tflops("NVIDIA H100 80GB HBM3") == 989.4
    assert gpu.peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert gpu.peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert gpu.peak_tflops("NVIDIA L4") == 121.0 and gpu.peak_tflops("NVIDIA L40S") == 362.1
    assert gpu.peak_tflops("Tesla T4") is None
    readme = tmp_path / "README.md"
    readme.write_text("# B\n\n## a\n\ntext\n\n## GPU figures\n\nold\n\n## z\n\nend\n", encoding="utf-8")
    gpu.write_readme("## GPU figures\n\nnew table\n", readme)
    assert readme.read_text(encoding="utf-8") == "# B\n\n## a\n\ntext\n\n## GPU figures\n\nnew table\n\n## z\n\nend\n"
    readme.write_text("# B\n\n## a\n\ntext\n", encoding="utf-8")
    gpu.write_readme("## GPU figures\n\nfirst\n", readme)
    gpu.write_readme("## GPU figures\n\nsecond\n", readme)
    assert readme.read_text(encoding="utf-8") == "# B\n\n## a\n\ntext\n\n## GPU figures\n\nsecond\n"
