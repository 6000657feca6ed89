"""Tests that share a module- or class-scoped fixture run on one pytest-xdist worker.

Why: handed out one by one (``--dist load``), the tests of a module each went to whichever worker was
free, and each of those workers built the module's fixture again. In `make test` the TFNS embeddings
through MiniLM, the `finsent serve` server and the legacy model were each built two or three times
(about 100 CPU-s of the run, measured on this 2-core machine), and `finsent serve`'s last test, which
stops its server, could run on another worker before the others.

How: pytest-xdist's ``--dist loadgroup`` is the tool for this, but under pytest 9.2 it no longer groups
anything: it marks a group by rewriting a test's node id, which pytest 9.2 no longer reads back
(pytest-xdist issue #1386, open). So the workers, which collect the tests, write each grouped test's
group to the run folder (``record_groups``), and the main process, which only sees node ids, schedules
with pytest-xdist's own scope scheduler keyed on that file (``GroupScheduling``). Every worker collects
the same tests, so every worker writes the same file; xdist schedules only after all have collected.
Drop this module once pytest-xdist reads the groups under pytest 9 again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from xdist.scheduler import LoadScopeScheduling

GROUPS_FILE = "xdist-groups.json"
# Fixture scopes built once per module (or class) in each worker that runs one of its tests.
SHARED_SCOPES = frozenset({"module", "class", "package"})


def shares_a_fixture(item: pytest.Item) -> bool:
    """Whether ``item`` uses a fixture that outlives the test but not the worker's session."""
    # pytest has no public view of a test's resolved fixtures; _fixtureinfo is what it resolved.
    info = getattr(item, "_fixtureinfo", None)
    return info is not None and any(d.scope in SHARED_SCOPES for defs in info.name2fixturedefs.values() for d in defs)


def record_groups(items: list[pytest.Item], run_dir: Path) -> dict[str, str]:
    """In a worker: the group (the test's module) of each test that shares a fixture, written to
    ``run_dir`` atomically (every worker writes the same content)."""
    groups = {item.nodeid: item.nodeid.split("::")[0] for item in items if shares_a_fixture(item)}
    path = run_dir / GROUPS_FILE
    partial = path.with_name(f"{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(groups))
    partial.replace(path)
    return groups


class GroupScheduling(LoadScopeScheduling):
    """xdist's scope scheduler with a test's scope read from the workers' groups file: a grouped test's
    module, or the test itself (so the others are handed out one by one, in collection order)."""

    def __init__(self, config: pytest.Config, log, run_dir: Path) -> None:
        super().__init__(config, log)
        self._groups_path = run_dir / GROUPS_FILE
        self._groups: dict[str, str] | None = None

    def _split_scope(self, nodeid: str) -> str:
        if self._groups is None:  # first called once every worker has collected
            self._groups = json.loads(self._groups_path.read_text()) if self._groups_path.exists() else {}
        return self._groups.get(nodeid, nodeid)
