"""Throw-away projects made once and copied: making one costs a git and a DVC init (about 2 CPU-s), and
the adversarial corpus's trained project a whole training flow (about a minute), so the tests copy them.

- ``rewrite_paths`` / ``clone_project``: a copy of a project (its DVC remote, ``.dvc-storage``, inside
  it) whose MLflow store points at the copy's own artifacts, so that a test may change its copy freely.
- ``make_tracking_store``: the project's MLflow store, made in the template so that its copies skip
  MLflow's schema migrations.
- ``built_once``: a folder built by the first pytest-xdist worker that asks for it, under a file lock in
  the run's shared temporary folder; the other workers wait for it and copy it. (Per worker, the
  corpus's trained project was built three times per run.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

BUILT = ".built"  # written last: a folder without it was cut short and is built again


def rewrite_paths(db: Path, old: str, new: str) -> None:
    """Point every path an MLflow SQLite store holds (artifact locations, sources, run folders) from
    ``old`` to ``new``: a copied store then reads and writes its copy's artifacts only."""
    if not db.is_file():
        return
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for column in conn.execute(f"PRAGMA table_info('{table}')").fetchall():
                name, kind = column[1], (column[2] or "").upper()
                if any(word in kind for word in ("CHAR", "TEXT", "CLOB")):
                    conn.execute(f'UPDATE "{table}" SET "{name}" = REPLACE("{name}", ?, ?) WHERE "{name}" LIKE ?', (old, new, f"%{old}%"))


def clone_project(project: Path, dest: Path) -> Path:
    """Copy ``project`` under ``dest`` (its DVC remote, ``.dvc-storage``, lies inside it); returns the copy."""
    project = Path(project)
    dest.mkdir(parents=True, exist_ok=True)
    copy = dest / project.name
    shutil.copytree(project, copy, symlinks=True)
    rewrite_paths(copy / "mlflow.db", str(project), str(copy))
    for lock in copy.glob("*.lock"):
        lock.unlink()
    return copy


def make_tracking_store(project: Path) -> None:
    """Create the MLflow store that ``project``'s params.yaml names (its SQLite file, migrated), as the
    project's first command would.

    Why: the first process to open a new SQLite store runs all of MLflow's schema migrations, about
    2 CPU-s (3 in a fresh process; opening a migrated one, 0.1 in a process that has imported MLflow),
    and every copy of the template was a new store. Made with the project as the working folder, so
    the default experiment's artifact folder lies inside the project (``clone_project`` rewrites it).
    """
    from mlflow.tracking import MlflowClient

    from finsent.config import load_params
    from finsent.paths import resolve_url

    # params.yaml's store, whatever MLFLOW_TRACKING_URI says in the process that makes the template
    uri = resolve_url(load_params(project / "params.yaml").register.tracking_uri, project)
    with contextlib.chdir(project):
        client = MlflowClient(uri, registry_uri=uri)
        client.search_experiments(max_results=1)
        client.search_registered_models(max_results=1)  # the registry's tables too


def built_once(tmp_path_factory, name: str, build: Callable[[Path], Path]) -> Path:
    """``build(folder)`` run once per test run, whichever worker asks first; returns the path it returned.
    Callers must not change what it returns (other workers copy it): they clone it."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    folder = root / f"built-{name}"
    with FileLock(f"{folder}.lock"):
        marker = folder / BUILT
        if not marker.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            marker.write_text(build(folder).relative_to(folder).as_posix())
        return folder / marker.read_text()
