"""Schedules: a Prefect server and the two deployments, nightly retraining and hourly monitoring.

``finsent serve`` (or ``python -m flows.serve``) starts ``prefect server start`` on loopback, waits until
it answers, points the Prefect client at it and serves both deployments from this process until
interrupted; then it stops the server. Schedules need a real server: on the temporary API that a plain
flow call starts they never fire. With ``--no-server`` it serves against the server that
``PREFECT_API_URL`` names.

``finsent deploy`` is the scale-out form: it registers the same two deployments on a work pool of the
server that ``PREFECT_API_URL`` names (a process pool, created when missing) and returns. Workers started
with ``prefect worker start --pool NAME``, on this machine or on others that see the project folder at
the same path, then run them; more workers, more runs at once.

Cron strings, their timezone, the inbox folder and the server address are in ``params.yaml``
(section ``schedule``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import httpx

from finsent.config import Params, load_params
from finsent.errors import FinsentError
from finsent.paths import Layout


class ServerError(FinsentError, RuntimeError):
    """The Prefect server did not start or did not become healthy in time."""


# Seconds to wait for a server that should already be running (--no-server, deploy); one this command
# starts gets the startup timeout instead (a first start migrates its database: about 20 s here).
RUNNING_SERVER_TIMEOUT_S = 15.0


def api_url(host: str, port: int) -> str:
    return f"http://{host}:{port}/api"


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((host, port)) == 0


def ui_host(host: str) -> str:
    """The host a browser should call: a server bound to every address is reached at this machine's name."""
    return socket.gethostname() if host in ("0.0.0.0", "::") else host


def start_server(host: str, port: int, *, env: dict[str, str] | None = None, log: IO | None = None) -> subprocess.Popen:
    """``prefect server start`` in its own process group (so that stopping it stops its workers too)."""
    if port_in_use(host, port):
        # Otherwise the health check would find the other process and report success.
        raise ServerError(f"{host}:{port} is already in use: another server? Use --no-server with PREFECT_API_URL, or --port")
    prefect = Path(sys.executable).with_name("prefect")
    command = [str(prefect)] if prefect.is_file() else [sys.executable, "-m", "prefect"]
    # The UI calls the API at PREFECT_UI_API_URL, which otherwise comes from PREFECT_API_URL or the default
    # port 4200, not from --port: on another port every page said "Can't connect to Server API".
    environment = {
        **os.environ,
        **(env or {}),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_API_HOST": host,
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_UI_API_URL": api_url(ui_host(host), port),
    }
    return subprocess.Popen(
        [*command, "server", "start", "--host", host, "--port", str(port)],
        env=environment,
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_until_healthy(url: str, process: subprocess.Popen | None = None, timeout_s: float = 120.0) -> None:
    """Poll ``<url>/health`` until it answers 200; fail early if the server process exits."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerError(f"prefect server exited with code {process.returncode} before becoming healthy")
        try:
            response = httpx.get(f"{url}/health", timeout=2.0)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = exc.__class__.__name__
        time.sleep(0.5)
    raise ServerError(f"prefect server at {url} not healthy after {timeout_s:.0f} s ({last})")


def stop_process_group(process: subprocess.Popen, timeout_s: float = 20.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout_s)
    except ProcessLookupError:
        pass


def build_deployments(params: Params, params_path: str, root: Path, job_variables: dict | None = None) -> list:
    """The nightly retrain and the hourly monitoring deployments, with their cron schedules."""
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    from flows.monitoring import monitoring_flow, retrain_flow

    s = params.schedule
    shared = {"params_path": params_path, "root": str(Path(root).resolve())}
    # Module entrypoints: the runner re-imports the flows by name, wherever it was started from.
    return [
        retrain_flow.to_deployment(
            name="nightly-retrain",
            schedules=[Cron(s.retrain_cron, timezone=s.timezone)],
            parameters={**shared, "reasons": ["schedule"]},
            concurrency_limit=1,
            description="Add new labelled rows as a data version, train, and let the registry gate decide.",
            entrypoint_type=EntrypointType.MODULE_PATH,
            job_variables=job_variables,
        ),
        monitoring_flow.to_deployment(
            name="hourly-monitor",
            schedules=[Cron(s.monitor_cron, timezone=s.timezone)],
            parameters=shared,  # no path: the inbox, schedule.monitor_inbox
            concurrency_limit=1,
            description="Score new files in the inbox, check drift and alerts, apply the retrain policy.",
            entrypoint_type=EntrypointType.MODULE_PATH,
            job_variables=job_variables,
        ),
    ]


def serve_deployments(deployments: Sequence, url: str) -> None:
    """Serve ``deployments`` against the server at ``url`` until interrupted (blocks)."""
    import prefect
    from prefect.settings import PREFECT_API_URL, temporary_settings

    os.environ["PREFECT_API_URL"] = url  # also for anything that reads the environment itself
    with temporary_settings(updates={PREFECT_API_URL: url}):
        prefect.serve(*deployments)


def ensure_process_pool(client, name: str) -> str:
    """The type of work pool ``name``, which is created as a process pool when the server has none."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    try:
        return client.read_work_pool(name).type
    except ObjectNotFound:
        try:
            return client.create_work_pool(WorkPoolCreate(name=name, type="process")).type
        except ObjectAlreadyExists:  # another deploy created it in between
            return client.read_work_pool(name).type


def deploy_to_pool(params: Params, params_path: str, root: str | Path, pool: str | None = None) -> dict[str, Any]:
    """Register both deployments on work pool ``pool`` (default ``schedule.work_pool``) of the server
    that ``PREFECT_API_URL`` names, and say where they are and how to run them. Runs start only when a
    worker polls the pool."""
    import prefect
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    root = Path(root).resolve()
    pool = pool or params.schedule.work_pool
    url = os.environ.get("PREFECT_API_URL", "")
    if not url:
        raise ServerError("finsent deploy needs PREFECT_API_URL to name a running Prefect server (work pools live there)")
    wait_until_healthy(url, None, timeout_s=RUNNING_SERVER_TIMEOUT_S)
    # The server checked above, whatever Prefect's settings held when they were first read.
    with temporary_settings(updates={PREFECT_API_URL: url}):
        with get_client(sync_client=True) as client:
            pool_type = ensure_process_pool(client, pool)
        # A process worker starts each run in the project folder, so relative paths mean the same as here.
        job_variables = {"working_dir": str(root)} if pool_type == "process" else None
        deployments = build_deployments(params, params_path, root, job_variables)
        ids = prefect.deploy(
            *deployments, work_pool_name=pool, build=False, push=False, print_next_steps_message=False, ignore_warnings=True
        )
    return {
        "deployments": [str(i) for i in ids],
        "work_pool": pool,
        "pool_type": pool_type,
        "api_url": url,
        "worker_command": f"prefect worker start --pool {pool}",
    }


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def serve(
    params_path: str = "params.yaml",
    root: str | Path = ".",
    *,
    host: str | None = None,
    port: int | None = None,
    start: bool = True,
    startup_timeout_s: float = 120.0,
) -> None:
    """Start a Prefect server (unless ``start`` is false: then ``PREFECT_API_URL`` names one), then
    serve the deployments until interrupted; the server started here is stopped on the way out."""
    root = Path(root).resolve()
    params = load_params(root / params_path)
    host = host or params.schedule.server_host
    port = port or params.schedule.server_port
    server = None
    if start:
        url = api_url(host, port)
        if threading.current_thread() is threading.main_thread():
            # Until the runner installs its own graceful handler, SIGTERM must still reach the finally below.
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
    else:
        url = os.environ.get("PREFECT_API_URL", "")
        if not url:
            raise ServerError("--no-server needs PREFECT_API_URL to name a running Prefect server")
    try:
        if start:
            log_path = Layout.of(root, params).prefect_server_log
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "ab") as log:
                server = start_server(host, port, log=log)
            print(f"prefect server starting at {url} (log: {log_path})", flush=True)
        wait_until_healthy(url, server, startup_timeout_s if start else RUNNING_SERVER_TIMEOUT_S)
        print(f"prefect server healthy at {url}; UI at {url.removesuffix('/api')}", flush=True)
        serve_deployments(build_deployments(params, params_path, root), url)
    finally:
        if server is not None:
            stop_process_group(server)


if __name__ == "__main__":
    from finsent.env import apply_quiet_offline

    apply_quiet_offline()
    serve()
