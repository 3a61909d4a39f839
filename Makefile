# `make demo` and `make test` are the two commands a new user needs (README).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2
export PATH := $(abspath $(BIN)):$(PATH)
export WANDB_MODE ?= offline

.PHONY: setup demo test test-unit report clean lock help

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# uv installs the exact versions in requirements.lock; torch comes from PyPI (the CUDA
# build, which also runs on CPU), not from a local CPU-only wheel (see DESIGN notes).
# Bytecode is compiled at install: where it cannot be written later (read-only software
# trees, PYTHONDONTWRITEBYTECODE) every import would otherwise recompile the sources.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --isolated --quiet uv==0.13.9
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -r requirements.lock -e .
	touch $@

setup: $(STAMP)  ## create .venv and install pinned dependencies (once)

demo: $(STAMP)  ## run the whole workflow on the demo config, write the report, print the headline scores
	$(BIN)/snakemake --cores $(CORES) --show-failed-logs --report results/report.html --report-after-run
	@echo
	@cat results/report/headline.txt
	@echo "Results: $(CURDIR)/results   Report: $(CURDIR)/results/report.html"

test: $(STAMP)  ## run the whole test suite (unit, tiny workflow, real local SLURM)
	$(BIN)/python -m pytest -ra --durations=15

test-unit: $(STAMP)  ## unit tests only (seconds)
	$(BIN)/python -m pytest -ra -m "not workflow and not slurm"

lock:  ## re-resolve requirements.lock after changing pins in pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 -o requirements.lock

clean:  ## remove results and logs (not the environment)
	rm -rf results logs .snakemake
