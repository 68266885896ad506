#!/usr/bin/env bash
# GPU benchmark of the PME step and the Stage-II step at the papers' shapes (issue "Performance", item 6):
# one command, at most 8 minutes. On a CUDA machine it prints tokens/s, peak memory and MFU and rewrites the
# "GPU figures" section of bench/README.md; `--dry-run` checks the same code path on a CPU (tiny shapes, no README).
#   bash bench/gpu.sh [--dry-run] [more bench/gpu.py options]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3 || command -v python)"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
# 470 s for python, the parts' budgets sum to 360 s (+ start-up and model building); SIGINT first, KILL 10 s later
exec timeout -s INT -k 10 470 "$PY" bench/gpu.py "$@"
