"""One Prefect server for a whole test run, shared by pytest-xdist's workers.

Why: the flow tests need a Prefect API, and ``prefect_test_harness`` starts one server per process. With
`make test`'s three workers that was three servers, each about 20 CPU-s to start and 1 CPU-s a minute
idle (measured on this 2-core machine): about 45 CPU-s each over a run, for one server's work.

How: the run's main process makes a folder (``RUN_DIR_ENV``), which the workers it starts inherit. The
first worker that needs the API starts ``prefect server start`` there, under a file lock, and records its
URL and process id; the others read them. The main process stops it when the run ends
(``stop_run_server``); a watchdog stops it if the main process dies first. The periodic services that the
harness's ephemeral server does not run either (the scheduler, late runs, the foreman, ...) are switched
off: 1.1 CPU-s a minute idle instead of 2.1, and no run is scheduled behind a test's back.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testkit.local_services import free_port, prefect_env

RUN_DIR_ENV = "FINSENT_TEST_RUN_DIR"
START_TIMEOUT_S = 180  # about 25 s idle; the workers collect and import at the same time
PERIODIC_SERVICES = (
    "cancellation_cleanup", "cleanup_reconciler", "db_vacuum", "foreman", "late_runs", "pause_expirations",
    "repossessor", "scheduler", "triggers",
)  # fmt: skip

# Runs the server in its own process group and stops that group when the test run's main process is gone.
WATCHDOG = """
import os, signal, subprocess, sys, time
main_pid = int(sys.argv[1])
server = subprocess.Popen(sys.argv[2:])
while server.poll() is None:
    try:
        os.kill(main_pid, 0)
    except ProcessLookupError:
        os.killpg(0, signal.SIGTERM)
    time.sleep(2)
"""


def make_run_dir() -> Path | None:
    """In the run's main process: the folder the workers share (None where one already exists)."""
    if os.environ.get(RUN_DIR_ENV):
        return None
    folder = Path(tempfile.mkdtemp(prefix="finsent-test-run-"))
    os.environ[RUN_DIR_ENV] = str(folder)
    (folder / "main.pid").write_text(str(os.getpid()))
    return folder


def server_url() -> str:
    """The run's Prefect API URL, starting the server if no worker has yet."""
    from filelock import FileLock

    from flows.serve import ServerError, wait_until_healthy  # here: tests/conftest.py imports this module

    folder = Path(os.environ[RUN_DIR_ENV])
    info = folder / "prefect-server.json"
    with FileLock(str(folder / "prefect-server.lock"), timeout=START_TIMEOUT_S + 60):
        if info.exists():
            return json.loads(info.read_text())["url"]
        port = free_port()
        url = f"http://127.0.0.1:{port}/api"
        env = prefect_env(
            folder / "prefect-home", url,
            PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{folder / 'prefect.db'}",
            PREFECT_UI_ENABLED="false",
            **{f"PREFECT_SERVER_SERVICES_{name.upper()}_ENABLED": "false" for name in PERIODIC_SERVICES},
        )  # fmt: skip
        main_pid = (folder / "main.pid").read_text()
        prefect = str(Path(sys.executable).with_name("prefect"))
        command = [sys.executable, "-c", WATCHDOG, main_pid, prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)]
        with open(folder / "prefect-server.log", "wb") as log:
            process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until_healthy(url, process, timeout_s=START_TIMEOUT_S)
        except ServerError as exc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            tail = (folder / "prefect-server.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the test run's Prefect server: {exc}\n{tail}") from exc
        info.write_text(json.dumps({"url": url, "pid": process.pid}))
        return url


def _running_in_group(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies waiting for a parent's wait do not count)."""
    import psutil

    for process in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(process.pid) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                return True
    return False


def stop_run_server(folder: Path) -> None:
    """In the run's main process, at the end: stop the server (if a worker started one), remove the folder."""
    info = folder / "prefect-server.json"
    if info.exists():
        pid = json.loads(info.read_text())["pid"]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while _running_in_group(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    shutil.rmtree(folder, ignore_errors=True)
