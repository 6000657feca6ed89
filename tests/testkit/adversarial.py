"""The shared pieces of the adversarial corpus (tests/integration/adversarial, issue 17).

- ``Snapshot``: what "nothing lost" compares before and after a command: ``data.dvc`` byte for byte, the
  content of ``data/`` (the batches included), the files kept in ``quarantine/``, the row counts of the
  predictions store's tables, the registry's champion, challenger and number of versions, git's HEAD and
  the params file. A store that is not a database is recorded by its bytes, so "left as it was" holds too.
- ``Cli``: runs ``finsent.cli.main`` in this process and checks what every failing command promises: its
  exit code, one ``finsent: error:`` line and no traceback on stderr, nothing on stdout, nothing changed.
- ``Spawned``: a ``finsent`` command in its own process (for kill -9 and concurrency); ``one_error``
  checks its stderr as ``Cli.fails`` does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from finsent.cli import main
from testkit import forked

MODEL = "finsent-sentiment"
STORE_TABLES = ("batches", "predictions", "drift_windows", "window_batches", "label_exports", "retrains")
REMOTE = ".dvc-storage"  # the DVC remote of tests/conftest.make_project (url ../.dvc-storage from .dvc/)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree_digest(folder: Path) -> tuple[tuple[str, str], ...]:
    """Every file under ``folder`` with its content hash (empty when there is no such folder)."""
    if not folder.is_dir():
        return ()
    return tuple((f.relative_to(folder).as_posix(), _sha(f.read_bytes())) for f in sorted(folder.rglob("*")) if f.is_file())


def _sqlite(path: Path) -> sqlite3.Connection:
    # Read-write without create: a reader after a kill -9 must see what the next writer sees (SQLite
    # rolls a hot journal back on open); on a read-only mount SQLite falls back to reading.
    return sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30)


def store_counts(db: Path) -> tuple:
    """Rows per table of a predictions store; its bytes' hash when it is not a readable database."""
    if not db.exists():
        return tuple((table, 0) for table in STORE_TABLES)
    try:
        with contextlib.closing(_sqlite(db)) as conn:
            present = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            return tuple((t, conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] if t in present else 0) for t in STORE_TABLES)
    except (sqlite3.Error, OSError):
        return ("unreadable", _sha(db.read_bytes()) if db.is_file() else "not a file")


def registry_state(db: Path) -> tuple:
    """(champion, challenger, number of versions, audit decisions) of the project's MLflow store."""
    if not db.exists():
        return (None, None, 0, 0)
    try:
        with contextlib.closing(_sqlite(db)) as conn:
            aliases = dict(conn.execute("SELECT alias, version FROM registered_model_aliases WHERE name = ?", (MODEL,)).fetchall())
            versions = conn.execute("SELECT count(*) FROM model_versions WHERE name = ?", (MODEL,)).fetchone()[0]
            decisions = conn.execute(
                "SELECT count(*) FROM runs JOIN experiments USING (experiment_id) WHERE experiments.name LIKE '%-audit'"
            ).fetchone()[0]
    except (sqlite3.Error, OSError):
        return ("unreadable", _sha(db.read_bytes()) if db.is_file() else "not a file")
    as_str = lambda v: None if v is None else str(v)  # noqa: E731
    return (as_str(aliases.get("champion")), as_str(aliases.get("challenger")), versions, decisions)


def git_head(project: Path) -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True, check=False)
    return done.stdout.strip()


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What must survive a failing command unchanged (see the module's docstring)."""

    data_dvc: bytes | None
    data: tuple[tuple[str, str], ...]
    quarantine: tuple[str, ...]
    store: tuple
    registry: tuple  # (champion, challenger, versions, audit decisions)
    git_head: str
    params: bytes | None

    @classmethod
    def take(cls, project: Path, store: Path | None = None) -> Snapshot:
        project = Path(project)
        dvc_file, params = project / "data.dvc", project / "params.yaml"
        quarantine = project / "quarantine"
        return cls(
            data_dvc=dvc_file.read_bytes() if dvc_file.is_file() else None,
            data=tree_digest(project / "data"),
            quarantine=tuple(sorted(f.relative_to(quarantine).as_posix() for f in quarantine.rglob("*") if f.is_file()))
            if quarantine.is_dir()
            else (),
            store=store_counts(store or project / "artifacts" / "predictions.db"),
            registry=registry_state(project / "mlflow.db"),
            git_head=git_head(project),
            params=params.read_bytes() if params.is_file() else None,
        )

    @property
    def champion(self) -> str | None:
        return self.registry[0]

    @property
    def versions(self) -> int:
        return self.registry[2]

    def rows(self, table: str = "predictions") -> int:
        return dict(self.store)[table]

    def diff(self, other: Snapshot, *, ignore: tuple[str, ...] = ()) -> dict[str, tuple]:
        """The fields that differ (``ignore`` names fields a case expects to change)."""
        out = {}
        for f in dataclasses.fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if f.name not in ignore and mine != theirs:
                out[f.name] = (_short(mine), _short(theirs))
        return out


def _short(value) -> str:
    text = repr(value)
    return text if len(text) < 400 else text[:400] + "..."


def assert_nothing_lost(before: Snapshot, after: Snapshot, *, ignore: tuple[str, ...] = ()) -> None:
    changed = before.diff(after, ignore=ignore)
    assert not changed, f"changed by a failing command: {changed}"


def one_error(err: str, says: str | tuple[str, ...] | None = None) -> str:
    """A failing command's stderr: exactly one ``finsent: error:`` line and no traceback. Returns the
    message (from that line on: a validation report continues on the next lines)."""
    errors = [line for line in err.splitlines() if line.startswith("finsent: error:")]
    assert len(errors) == 1, f"expected one 'finsent: error:' line, got {len(errors)}:\n{err[-4000:]}"
    assert "Traceback" not in err, err[-4000:]
    message = err[err.index("finsent: error:") :]
    for part in (says,) if isinstance(says, str) else says or ():
        assert part in message, f"{part!r} not in the error:\n{message[-3000:]}"
    return message


# --- copies of a project -----------------------------------------------------------------------------


# --- in-process commands -------------------------------------------------------------------------------


class Cli:
    """``finsent --root PROJECT ...`` in this process, with pytest's ``capsys``."""

    def __init__(self, project: Path, capsys, store: Path | None = None) -> None:
        self.project, self.capsys, self.store = Path(project), capsys, store

    def snapshot(self) -> Snapshot:
        return Snapshot.take(self.project, self.store)

    def run(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["--root", str(self.project), *map(str, args)])
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *args: str):
        """A command that must succeed: its JSON result."""
        code, out, err = self.run(*args)
        assert code == 0, err[-4000:]
        assert "Traceback" not in err, err[-4000:]
        return json.loads(out)

    def fails(self, *args: str, says: str | tuple[str, ...] | None = None, code: int = 2, ignore: tuple[str, ...] = ()) -> str:
        """A command that must fail cleanly and change nothing; returns its error message."""
        before = self.snapshot()
        got, out, err = self.run(*args)
        assert got == code, f"exit code {got}, expected {code}:\n{err[-4000:]}"
        message = one_error(err, says)
        assert out == "", f"a failing command printed a result: {out[:1000]}"
        assert_nothing_lost(before, self.snapshot(), ignore=ignore)
        return message


# --- commands in their own process ---------------------------------------------------------------------


def command_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(extra)
    return env


class Spawned:
    """A ``finsent`` process in its own session (so that a kill reaches everything it started), forked
    from a process that has imported the heavy libraries once (testkit.forked)."""

    def __init__(self, project: Path, *args: str, logs: Path, env: dict[str, str] | None = None, tag: str = "cmd") -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self.out_path, self.err_path = logs / f"{tag}.out", logs / f"{tag}.err"
        self.process = forked.finsent(
            ["--root", str(project), *map(str, args)], env=env or command_env(), cwd=project, stdout=self.out_path, stderr=self.err_path
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout_s: float = 300) -> tuple[int, str, str]:
        try:
            code = self.process.wait(timeout=timeout_s)
        finally:
            self.kill()
        return code, self._read(self.out_path), self._read(self.err_path)

    @staticmethod
    def _read(path: Path) -> str:
        return path.read_text(errors="replace") if path.exists() else ""

    def kill_when(self, condition: Callable[[], object], timeout_s: float = 240, every_s: float = 0.02) -> None:
        """kill -9 the command (and what it started) as soon as ``condition()`` holds."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            if not self.running():
                code, _, err = self.wait()
                raise AssertionError(f"the command ended (exit {code}) before the moment to kill it:\n{err[-3000:]}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"timed out after {timeout_s} s waiting for the moment to kill the command")
            time.sleep(every_s)
        self.kill()

    def kill(self) -> None:
        """SIGKILL to the command's process group (the command's own id): nothing it started survives."""
        self.process.signal_group(signal.SIGKILL)
        self.process.wait(timeout=60)


def opened_by(pid: int, name: str) -> bool:
    """True when process ``pid`` has a file whose name ends with ``name`` open."""
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}").endswith(name):
                    return True
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return False
