# `make test` and `make demo` do all set-up on a fresh machine: a .venv, the pinned CPU torch
# where there is no CUDA (an unpinned torch would pull a multi-GB CUDA build), the package in
# editable mode with its extras.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_CPU := torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup test lint demo plots clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1; then \
	    $(BIN)/python -m pip install --quiet "torch>=2.6"; \
	else \
	    $(BIN)/python -m pip install --quiet $(TORCH_CPU); \
	fi
	$(BIN)/python -m pip install --quiet -e ".[cli,test]"
	touch $(STAMP)

setup: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff format --check fused_sched kernels tests bench
	$(BIN)/ruff check fused_sched kernels tests bench

test: lint
	TRITON_DEFAULT_FP_FUSION=1 $(BIN)/python -m pytest -q -n 2 --durations=15

demo: $(STAMP)
	$(BIN)/fused-sched train --out runs/demo

plots: $(STAMP)
	$(BIN)/python bench/plot_schedules.py --out docs

clean:
	rm -rf $(VENV) runs .pytest_cache
