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
# Where pip's configuration (files or PIP_FIND_LINKS) looks for wheels; read once the venv exists.
PIP_WHEEL_DIRS = $(shell $(PY) -m pip config list 2>/dev/null | sed -n "s/^.*find-links='\(.*\)'$$/\1/p" | tr ' ' '\n' | sort -u)

# Quiet and offline, whatever the shell has (the code sets the same defaults itself).
export HF_HUB_OFFLINE ?= 1
export DO_NOT_TRACK ?= true
export MLFLOW_DISABLE_TELEMETRY ?= true
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DVC_NO_ANALYTICS ?= 1
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: install lock run tune check test test-fast repro serve api dashboard ui clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# uv installs the locked set in about 20 s where pip takes about 4 minutes (fresh venv, this machine).
# uv reads no pip configuration, so it is handed the folders where pip's configuration finds wheels (the
# CPU torch on this project's machines): 41 s with its bytecode, where pip took 63 s.
# --compile-bytecode: uv writes no .pyc by default, so every process of a first `make test` compiled
# mlflow, transformers, prefect and evidently again while racing the others to cache them (fresh clone:
# 31m48s, against 20m for the same tests on a warm venv).
$(STAMP): pyproject.toml $(LOCK) | $(PY)
	$(PY) -m pip install --quiet --upgrade pip uv
	$(PY) -c "import torch" 2>/dev/null || $(BIN)/uv pip install --quiet --compile-bytecode --python $(PY) \
		$(addprefix --find-links ,$(PIP_WHEEL_DIRS)) --constraint $(LOCK) "$(TORCH_SPEC)"
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(PY) --constraint $(LOCK) -e ".[test,check]"
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
	$(BIN)/ruff check src flows tests bench
	$(BIN)/ruff format --check src flows tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# Tests run in TEST_WORKERS processes (pytest-xdist): most wait on subprocesses and servers, so more
# workers than cores pay, up to a point (2 workers: 28m52s, 3: 21m40s, 4: slower than 3, on 889 tests).
# What the time is, measured on this 2-core machine with the same 911 tests (warm venv, idle):
# - 42.4 CPU-minutes, pytest 25m51s: half the CPU was in the `finsent`, torchrun and server processes
#   the tests start, mostly their imports (torch 3.8 CPU-s, transformers' modeling_utils 7.5 more,
#   mlflow.pyfunc 4.7, great_expectations 8.3, evidently 11.8), and one Prefect server per worker;
# - 26.8 CPU-minutes, pytest 17m06s: the commands forked from a process that imported those once
#   (tests/testkit/forked.py), one Prefect server for the run (tests/testkit/shared_prefect.py), the
#   long tests handed out first (tests/conftest.py). `--dist worksteal` (18m10s) and handing tests out
#   two at a time (`--maxschedchunk 2`, 20m47s, all the heavy tests at once) were slower here.
# Fresh clone, 917 tests, installing: 11m22s (pytest 9m26s, 18.1 CPU-minutes with the install and checks),
# once the tests that share a module's fixture ran on one worker (tests/testkit/xdist_groups.py); 23m05s before.
# 2026-12-03, 935 tests, on a slower machine of the same size: 16m02s, then 14m16s (pytest 12m10s, 26.9
# CPU-minutes) with the checks beside the tests and the template's MLflow store made once. The three
# workers keep both cores busy (1.9 on average) and finish within 6 s of each other, so what is left to cut
# is CPU: the real MiniLM fine-tune, the TFNS embeddings and `dvc repro` are the largest (2-2.5 minutes each).
TEST_WORKERS ?= 3
XDIST = -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

# The checks run beside the tests, not before them: from a fresh clone `make check` took about 45 s, mostly
# mypy without its cache on one core, while the other core waited. Their output follows the tests', and
# either failing fails the target.
CHECK_LOG := $(VENV)/check.log
define pytest_beside_checks
	@$(MAKE) --no-print-directory check > $(CHECK_LOG) 2>&1 & checks=$$!; \
	$(BIN)/pytest -q $(XDIST) $(1); tests=$$?; \
	wait $$checks; checked=$$?; cat $(CHECK_LOG); \
	if [ $$checked -ne 0 ]; then echo "make: the checks failed (make check, output above)" >&2; fi; \
	[ $$tests -eq 0 ] && [ $$checked -eq 0 ]
endef

test: install
	$(call pytest_beside_checks,--durations=15)

# Unit, data and model tests without servers or whole flows (tests/integration and slow ones skipped).
test-fast: install
	$(call pytest_beside_checks,-m "not slow and not integration")

serve: install
	$(BIN)/finsent serve

# The live service on service.host:service.port (docs at /docs); it follows the registry's champion.
api: install
	$(BIN)/finsent api

# Evidently's UI on the model-health workspace (workspace.host:workspace.port unless UI_HOST / UI_PORT
# say otherwise, e.g. make ui UI_HOST=0.0.0.0 UI_PORT=9000); it prints where the MLflow and Prefect UIs are.
ui: install
	$(BIN)/finsent ui $(if $(UI_HOST),--host $(UI_HOST)) $(if $(UI_PORT),--port $(UI_PORT))

# The analysts' page over the predictions store, on http://127.0.0.1:8050/ (DASHBOARD_ARGS="--port 9000").
dashboard: install
	$(BIN)/finsent dashboard $(DASHBOARD_ARGS)

# data/ first (a fresh clone has only data.dvc): DVC will not start a stage whose dependency is missing.
repro: install
	$(BIN)/finsent data init
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

clean:
	rm -rf artifacts/runs artifacts/pipeline
