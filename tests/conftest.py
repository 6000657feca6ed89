"""Shared fixtures: quiet/offline settings, the tiny random BERT (testkit.tiny_bert), the TFNS splits and a
throw-away project with its own git repo, DVC remote and MLflow store. The servers (Prefect harness,
PostgreSQL, S3) are fixtures of tests/integration/conftest.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from finsent.env import apply_quiet_offline
from testkit import shared_prefect, xdist_groups
from testkit.projects import clone_project, make_tracking_store
from testkit.tiny_bert import minilm_tokenizer, save_tiny_bert, tiny_bert

apply_quiet_offline()  # before any library reads its settings
# Prefect's log handlers write to the sys.stderr of the moment Prefect sets up logging (at import, and
# again at some flow and worker starts). Under a test's capsys that is a stream closed after the test,
# and every later log line in the worker failed with "I/O operation on closed file" (17 tests, once
# the tests of a module ran on one worker). The process's own stderr is never closed; pytest still
# captures it, at the file-descriptor level.
for handler in ("CONSOLE", "DEBUG"):
    os.environ.setdefault(f"PREFECT_LOGGING_HANDLERS_{handler}_STREAM", "ext://sys.__stderr__")

REPO = Path(__file__).resolve().parents[1]
RUN_DIR = pytest.StashKey["Path | None"]()
TFNS = REPO / "datasets" / "tfns"


def pytest_configure(config):
    """One torch thread per xdist worker: `make test` runs more workers than there are cores, and a
    second intra-op thread mostly waits for a descheduled peer (see ``one_torch_thread``). Processes
    the tests start keep torch's default. The run's main process makes the folder its workers share
    (testkit.shared_prefect: one Prefect server for the whole run)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
    else:
        config.stash[RUN_DIR] = shared_prefect.make_run_dir()


def pytest_collection_modifyitems(config, items):
    """The long tests first (slow, then integration), in their collected order otherwise: pytest-xdist
    hands tests out in this order, and a long test handed out last keeps one worker busy after the
    others have finished. Tests that share a module- or class-scoped fixture go to one worker
    (testkit.xdist_groups)."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("slow") else 1 if item.get_closest_marker("integration") else 2)
    run_dir = os.environ.get(shared_prefect.RUN_DIR_ENV)
    if os.environ.get("PYTEST_XDIST_WORKER") and run_dir:
        xdist_groups.record_groups(items, Path(run_dir))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup`` (`make test`): the groups of testkit.xdist_groups, in the order above."""
    run_dir = os.environ.get(shared_prefect.RUN_DIR_ENV)
    if config.getvalue("dist") == "loadgroup" and run_dir:
        return xdist_groups.GroupScheduling(config, log, Path(run_dir))
    return None


def pytest_unconfigure(config):
    folder = config.stash.get(RUN_DIR, None)
    if folder is not None:
        shared_prefect.stop_run_server(folder)


@pytest.fixture(scope="session")
def tokenizer():
    return minilm_tokenizer()


@pytest.fixture(scope="session")
def make_tiny_bert(tokenizer):
    return lambda seed=0: tiny_bert(tokenizer, seed)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer) -> Path:
    """A random-initialised 2-layer, 32-wide BERT with the real MiniLM tokenizer, saved like a hub model."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), tokenizer)


@pytest.fixture(scope="session")
def tfns_train() -> pd.DataFrame:
    from finsent.data.frames import read_dataset

    return read_dataset(TFNS / "sent_train.csv")


@pytest.fixture(scope="session")
def tfns_valid() -> pd.DataFrame:
    from finsent.data.frames import read_dataset

    return read_dataset(TFNS / "sent_valid.csv")


def _sample(df: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    from finsent.data.frames import stratified_sample

    return stratified_sample(df, n, seed)[["text", "label"]]


def make_project(root: Path, train: pd.DataFrame, valid: pd.DataFrame) -> Path:
    """A minimal finsent project: params.yaml, a shipped dataset, git + DVC with a local remote, and
    its MLflow store made (testkit.projects.make_tracking_store)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    shipped = root / "datasets" / "tfns"
    shipped.mkdir(parents=True)
    train.to_csv(shipped / "sent_train.csv", index=False)
    valid.to_csv(shipped / "sent_valid.csv", index=False)
    (root / ".gitignore").write_text("/mlflow.db\n/mlruns/\n/artifacts/\n/quarantine/\n/.dvc-storage/\n*.promotion.lock\n*.init.lock\n")
    run = lambda *cmd: subprocess.run(cmd, cwd=root, check=True, capture_output=True)  # noqa: E731
    run("git", "init", "-q", "-b", "main")
    run("git", "config", "user.email", "tests@finsent.invalid")
    run("git", "config", "user.name", "finsent tests")
    dvc = str(Path(sys.executable).parent / "dvc")
    run(dvc, "init", "-q")
    run(dvc, "config", "core.analytics", "false")
    (root / ".dvc" / "config").write_text(
        "[core]\n    analytics = false\n    remote = local\n['remote \"local\"']\n    url = ../.dvc-storage\n"
    )
    run("git", "add", "-A")
    run("git", "commit", "-q", "-m", "project")
    make_tracking_store(root)  # ignored by git, as in a user's project
    return root


@pytest.fixture(scope="session")
def project_template(tmp_path_factory, tfns_train, tfns_valid) -> Path:
    """The ``project`` fixture's project, made once per worker (a git and a DVC init cost ~2 CPU-s)."""
    return make_project(tmp_path_factory.mktemp("project-template") / "project", _sample(tfns_train, 400), _sample(tfns_valid, 200))


@pytest.fixture
def project(tmp_path, project_template) -> Path:
    """A throw-away project holding a stratified sample of TFNS (400 train, 200 eval rows)."""
    return clone_project(project_template, tmp_path)


@pytest.fixture
def one_torch_thread():
    """Like each torchrun worker (OMP_NUM_THREADS=1): on a busy machine, spinning OpenMP threads
    waiting for a descheduled peer make tiny models many times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
