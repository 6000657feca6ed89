# finsent: `make run` trains, evaluates and registers a model; `make test` runs the tests.
# Both create or reuse the virtual environment in .venv and install what the project needs.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel of torch (on disk on this project's machines). GPU users: install their CUDA build of
# torch into .venv first (see README); an importable torch is never replaced.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

# Quiet and offline, whatever the shell has (the code sets the same defaults itself).
export HF_HUB_OFFLINE ?= 1
export DO_NOT_TRACK ?= true
export MLFLOW_DISABLE_TELEMETRY ?= true
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DVC_NO_ANALYTICS ?= 1
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: install run tune test test-fast repro serve bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/finsent train

tune: install
	$(VENV)/bin/finsent tune

test: install
	$(VENV)/bin/pytest -q --durations=15

test-fast: install
	$(VENV)/bin/pytest -q -m "not slow"

serve: install
	$(VENV)/bin/finsent serve

# data/ first (a fresh clone has only data.dvc): DVC will not start a stage whose dependency is missing.
repro: install
	$(VENV)/bin/finsent data init
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro

clean:
	rm -rf artifacts/runs artifacts/pipeline
