# finsent: `make run` trains, evaluates and registers a model; `make test` runs the checks and the tests.
# Both create or reuse the virtual environment in .venv and install what the project needs, at the
# versions pinned in requirements/lock.txt (`make lock` refreshes the pins).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# The CPU wheel of torch (on disk on this project's machines). GPU users: install their CUDA build of
# torch into .venv first (see README); an importable torch is never replaced. torch is left out of the
# lock for that reason.
TORCH_SPEC ?= torch==2.13.0
LOCK := requirements/lock.txt
STAMP := $(VENV)/.installed

# Quiet and offline, whatever the shell has (the code sets the same defaults itself).
export HF_HUB_OFFLINE ?= 1
export DO_NOT_TRACK ?= true
export MLFLOW_DISABLE_TELEMETRY ?= true
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DVC_NO_ANALYTICS ?= 1
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: install lock run tune check test test-fast repro serve clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml $(LOCK) | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet --constraint $(LOCK) -e ".[test,check]"
	touch $(STAMP)

install: $(STAMP)

# Re-resolve every pin from pyproject.toml (after a dependency changes there); review with git diff.
lock: | $(PY)
	$(PY) -m pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --upgrade --extra test --extra check --strip-extras --unsafe-package torch --unsafe-package finsent \
		--constraint requirements/torch-cpu.txt --no-emit-index-url --no-emit-find-links --output-file $(LOCK) pyproject.toml

run: install
	$(BIN)/finsent train

tune: install
	$(BIN)/finsent tune

# The fast checks: lint and format, types, import layers (about half a minute).
check: install
	$(BIN)/ruff check src flows
	$(BIN)/ruff format --check src flows
	$(BIN)/mypy
	$(BIN)/lint-imports

test: check
	$(BIN)/pytest -q --durations=15

# Unit, data and model tests without servers or whole flows (tests/integration and slow ones skipped).
test-fast: check
	$(BIN)/pytest -q -m "not slow and not integration"

serve: install
	$(BIN)/finsent serve

# data/ first (a fresh clone has only data.dvc): DVC will not start a stage whose dependency is missing.
repro: install
	$(BIN)/finsent data init
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

clean:
	rm -rf artifacts/runs artifacts/pipeline
