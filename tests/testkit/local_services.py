"""Throw-away servers on loopback for the scale-out tests: a PostgreSQL cluster, an S3 endpoint (moto)
and an MLflow tracking server on both. ``from testkit import local_services``."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "finsent-tests", "AWS_SECRET_ACCESS_KEY": "finsent-tests", "AWS_DEFAULT_REGION": "us-east-1"}


class ServiceUnavailable(RuntimeError):
    """The software for a service is not installed here (the tests that need it skip)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prefect_env(home: Path, url: str, **extra: str) -> dict[str, str]:
    """The environment of a Prefect server, worker or client subprocess: its own PREFECT_HOME, the
    server at ``url``, no analytics, warnings only; ``extra`` adds settings."""
    return {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        **extra,
    }


def wait_for(condition, timeout_s: float, what: str, every_s: float = 1.0):
    """Poll ``condition`` until it returns something truthy (returned), or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def postgres_bin() -> Path | None:
    """The folder of pg_ctl and initdb: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    installed = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(installed[-1]).parent if installed else None


def _account_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A PostgreSQL cluster on a free loopback port; yields its SQLAlchemy URL without a database."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise ServiceUnavailable("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    if os.geteuid() == 0 and not _account_exists("postgres"):
        raise ServiceUnavailable("running as root, and there is no 'postgres' account to run the server as (PostgreSQL refuses root)")
    base = Path(tempfile.mkdtemp(prefix="finsent-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the package's account
        as_postgres = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
    port = free_port()
    data = base / "data"
    run = lambda *cmd: subprocess.run([*as_postgres, *map(str, cmd)], check=True, capture_output=True, text=True)  # noqa: E731
    run(bin_dir / "initdb", "-D", data, "-A", "trust", "-U", "finsent", "-E", "UTF8", "--no-sync")
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    run(bin_dir / "pg_ctl", "-D", data, "-l", base / "server.log", "-o", options, "-w", "start")
    try:
        yield f"postgresql+psycopg2://finsent@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def create_database(server_url: str, name: str) -> str:
    """A new empty database on the server; returns its URL."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(f"{server_url}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return f"{server_url}/{name}"


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """An S3 endpoint (moto, in a thread of this process); yields its URL. Set S3_CREDENTIALS."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # moto is a test dependency; its absence is a broken install
        raise ServiceUnavailable(f"moto is not installed: {exc}") from exc
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_client(endpoint: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=S3_CREDENTIALS["AWS_DEFAULT_REGION"],
        aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def bucket_keys(endpoint: str, name: str) -> list[str]:
    pages = s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=name)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


@contextlib.contextmanager
def mlflow_server(backend_url: str, artifacts: str, s3_endpoint: str, workdir: Path, timeout_s: float = 180) -> Iterator[str]:
    """``mlflow server`` with its backend store in ``backend_url`` and the artifacts it serves in
    ``artifacts`` (an s3:// URL at ``s3_endpoint``); yields its http URL once /health answers."""
    import requests

    port = free_port()
    # Job execution (GenAI jobs) would start a pool of worker processes that nothing here uses.
    env = {**os.environ, **S3_CREDENTIALS, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = open(workdir / "mlflow-server.log", "w")  # noqa: SIM115 - closed below
    cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--backend-store-uri",
        backend_url,
        "--artifacts-destination",
        artifacts,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # Its own process group: the server runs uvicorn as a child, and teardown stops them together.
    process = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start: {(workdir / 'mlflow-server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
