"""Two processes opening a new SQLite tracking store at the same moment both get a working store.

The first process to open a new store runs MLflow's schema migrations; two doing it at once collided
("table ... already exists"), so ``tracking.connect`` opens new stores in turn. The tests' projects start
with their store made (testkit.projects.make_tracking_store), so this is the test of that race.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration

# Each process imports MLflow first, says it is ready, then waits for the go file, so both open the store
# within milliseconds of each other.
OPEN_STORE = """
import sys, time
from pathlib import Path
from finsent.config import RegisterParams
from finsent.tracking import connect
import mlflow.store.tracking.sqlalchemy_store, mlflow.store.model_registry.sqlalchemy_store
Path(sys.argv[3]).touch()
go = Path(sys.argv[2])
deadline = time.monotonic() + 120
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit("no go file")
    time.sleep(0.005)
client = connect(RegisterParams(), Path(sys.argv[1]))
print(len(client.search_experiments()))
"""


def test_two_processes_opening_a_new_store_at_once_both_get_it(tmp_path):
    root, go = tmp_path / "project", tmp_path / "go"
    root.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_STORE, str(root), str(go), str(tmp_path / f"ready-{i}")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"ready-{i}").exists() for i in range(2)):
            assert time.monotonic() < deadline and all(p.poll() is None for p in processes), "a process did not get ready"
            time.sleep(0.05)
        go.touch()
        results = [p.communicate(timeout=120) for p in processes]
    finally:
        for process in processes:
            process.kill()
    for process, (out, err) in zip(processes, results):
        assert process.returncode == 0, err[-3000:]
        assert out.strip() == "1", out  # the default experiment, created once
    assert (root / "mlflow.db").is_file()
