"""Commands in their own OS process, forked from a process that has already imported the heavy libraries.

Why: every ``finsent`` process the tests start pays its imports before it does anything. Measured on
this 2-core machine: ``import torch`` 3.8 CPU-s, ``transformers.modeling_utils`` 11 with torch,
``mlflow.pyfunc`` 4.7, ``great_expectations`` 8.3, ``evidently`` 11.8. The kill -9, concurrency,
promotion and service tests start dozens of such processes: about a quarter of the suite's CPU was
these imports (profile of 911 tests, 2026-12-01: 21 of 40 CPU-minutes in child processes).

A multiprocessing *forkserver* imports those libraries once per test worker, and forks each command from
it. The command is still a process of its own: its own pid and session (``os.setsid``, so that a kill of
its group reaches what it starts), its own environment and working directory, its standard output and
error in files, a real ``kill -9`` and a real exit status. It runs ``finsent.cli.main`` as the console
script does (exit code, ``SystemExit``, a traceback on an uncaught exception, atexit handlers).

Prefect is not preloaded: its settings are read at import, and each command must see the environment
the test gave it (``PREFECT_API_URL``, ``PREFECT_HOME``). The console script itself is still started
as an executable by the tests that are about it (test_orphan_servers, test_dvc_pipeline, test_schedules).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import multiprocessing
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

# What the commands spend their start on (see above). Only libraries whose import reads no per-test
# setting and starts no thread: a fork copies one thread only.
PRELOAD = (
    "torch",
    "transformers.modeling_utils",
    "transformers.models.bert.modeling_bert",
    "mlflow",
    "mlflow.pyfunc",
    "sklearn.metrics",
    "pandas",
    "great_expectations",
    "evidently",
    "fastapi",
    "uvicorn",
)

_context: multiprocessing.context.ForkServerContext | None = None


def _forkserver() -> multiprocessing.context.ForkServerContext:
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(list(PRELOAD))
    return _context


def _exit_code(value: object) -> int:
    """As the interpreter turns ``SystemExit(value)`` into an exit status (printing a message)."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    print(value, file=sys.stderr)
    return 1


def _child(target: str, args: Sequence[object], argv: Sequence[str], env: Mapping[str, str], cwd: str, stdout: str, stderr: str) -> None:
    os.setsid()
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    with open(stdout, "wb") as out:  # a fresh file, as a shell's redirection gives
        os.dup2(out.fileno(), 1)
    if stderr == stdout:  # one file for both: one descriptor, so neither overwrites the other
        os.dup2(1, 2)
    else:
        with open(stderr, "wb") as err:
            os.dup2(err.fileno(), 2)
    sys.argv = list(argv)
    code = 1
    try:
        module, _, name = target.partition(":")
        result = getattr(importlib.import_module(module), name)(*args)
        code = result if isinstance(result, int) else 0
    except SystemExit as exit_:
        code = _exit_code(exit_.code)
    except BaseException:  # noqa: BLE001 - as an uncaught exception ends a process: traceback, status 1
        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()  # multiprocessing's children skip them; a process's exit runs them
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


class Forked:
    """The subset of ``subprocess.Popen`` the tests use, for a call run in a forked process."""

    def __init__(
        self,
        target: str,
        args: Sequence[object] = (),
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | str | None = None,
        stdout: Path | str = os.devnull,
        stderr: Path | str = os.devnull,
        argv: Sequence[str] = (),
    ) -> None:
        self.args = list(argv) or [target]
        self._process = _forkserver().Process(
            target=_child,
            args=(
                target,
                list(args),
                self.args,
                dict(os.environ if env is None else env),
                str(cwd or os.getcwd()),
                str(stdout),
                str(stderr),
            ),
            daemon=False,
        )
        self._process.start()
        self.pid: int = self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self._process.exitcode

    def send_signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def signal_group(self, sig: int) -> None:
        """``sig`` to the command's session (its own id), or to the command alone before it made one."""
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            self.send_signal(sig)


def finsent(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    stdout: Path | str = os.devnull,
    stderr: Path | str = os.devnull,
) -> Forked:
    """``finsent *argv`` in a forked process (see the module's docstring)."""
    argv = [str(a) for a in argv]
    return Forked("finsent.cli:main", [argv], argv=["finsent", *argv], env=env, cwd=cwd, stdout=stdout, stderr=stderr)
