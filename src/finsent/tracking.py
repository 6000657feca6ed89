"""The MLflow connection: which store, is it up, and what a run records about the code that made it.

Every room that logs to MLflow (training runs, tuning trials, monitoring windows, the registry) opens
the store here, so the tracking URI is resolved one way (``MLFLOW_TRACKING_URI`` wins, a relative
SQLite path is taken from the project root) and a store that is down fails in seconds with
``StoreUnavailable`` instead of minutes later.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import platform
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from finsent.config import RegisterParams
from finsent.errors import FinsentError
from finsent.paths import is_server_database, resolve_url, shown_url, sqlite_path


class RegistryError(FinsentError, RuntimeError):
    """A registry operation cannot be done (unknown version, no champion, missing artifacts)."""


class StoreUnavailable(RegistryError):
    """The MLflow tracking store cannot be reached or written."""


def resolve_tracking_uri(p: RegisterParams, root: Path) -> str:
    """MLFLOW_TRACKING_URI wins over params; a relative sqlite path is taken from the project root."""
    return resolve_url(os.environ.get("MLFLOW_TRACKING_URI") or p.tracking_uri, root)


def artifact_location(p: RegisterParams, root: Path, uri: str) -> str | None:
    """Artifacts of a local store live under mlruns/ in the project; a server decides its own."""
    if uri.startswith(("sqlite:", "file:")) or "://" not in uri:
        return (Path(root) / p.artifact_dir).resolve().as_uri()
    return None


# MLflow retries a refused connection to a database server for over a minute, so the server is tried
# once first, with a connect timeout.
def reach_database(uri: str, timeout_s: float) -> None:
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    try:
        engine = sqlalchemy.create_engine(uri, poolclass=NullPool, connect_args={"connect_timeout": max(1, round(timeout_s))})
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except ImportError as exc:  # the URL's driver: psycopg2 comes with the `scale` extra
        raise StoreUnavailable(f"MLflow tracking store {shown_url(uri)} cannot be used: no driver for it is installed ({exc})") from exc
    except sqlalchemy.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreUnavailable(f"MLflow tracking store {shown_url(uri)} is unreachable: {reason}") from exc


def check_store(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, before any training, when the tracking store is down or not writable."""
    parsed = urlparse(uri)
    if parsed.scheme in {"http", "https"}:
        import requests

        try:
            response = requests.get(uri.rstrip("/") + "/health", timeout=timeout_s)
        except requests.RequestException as exc:
            raise StoreUnavailable(f"MLflow tracking server {shown_url(uri)} is unreachable: {exc.__class__.__name__}") from exc
        if response.status_code != 200:
            raise StoreUnavailable(f"MLflow tracking server {shown_url(uri)} answered {response.status_code} on /health")
        return
    db = sqlite_path(uri)
    if db is not None:
        if not db.parent.is_dir() or not os.access(db.parent, os.W_OK):
            raise StoreUnavailable(f"MLflow store {uri}: folder {db.parent} does not exist or is not writable")
        if db.exists() and not db.is_file():  # MLflow would retry opening it for over a minute
            raise StoreUnavailable(f"MLflow store {uri}: {db} is not a database file")
        return
    if is_server_database(uri):
        reach_database(uri, timeout_s)
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(uri).search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - any backend error means the store is unusable
        raise StoreUnavailable(f"MLflow tracking store {shown_url(uri)} is unusable: {exc}") from exc


def connect(p: RegisterParams, root: Path):
    """Point MLflow at the configured store (checked first) and return a client."""
    import mlflow
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    # MLflow logs a database error with its traceback, then raises it: the caller reports it, in one line.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    uri = resolve_tracking_uri(p, root)
    check_store(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    db = sqlite_path(uri)
    if db is None:
        return MlflowClient(uri, registry_uri=uri)
    # Opening a fresh SQLite store creates and migrates it; two processes doing that at once collide
    # (alembic: "table ... already exists"), so stores are opened in turn.
    from filelock import FileLock

    with FileLock(str(db.with_suffix(".init.lock")), timeout=300):
        try:
            client = MlflowClient(uri, registry_uri=uri)
            client.search_experiments(max_results=1)
            client.search_registered_models(max_results=1)  # the registry store is opened lazily
        except Exception as exc:  # noqa: BLE001 - a truncated or foreign file, a read-only folder: the store is unusable
            reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise StoreUnavailable(f"MLflow store {db} cannot be opened as an MLflow database: {reason}") from exc
    return client


def ensure_experiment(client, name: str, location: str | None) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # noqa: BLE001 - created meanwhile by a concurrent run
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def flatten(prefix: str, value) -> dict[str, str]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(flatten(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    return {prefix: json.dumps(value) if isinstance(value, (list, tuple)) else str(value)}


def code_version(root: Path) -> dict[str, str]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "HEAD") or "none"
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return {"git.commit": commit, "git.dirty": str(dirty).lower()}


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"lib.python": platform.python_version()}
    for name in ("torch", "transformers", "mlflow", "prefect", "dvc", "great_expectations", "evidently", "pandas"):
        try:
            out[f"lib.{name}"] = version(name)
        except PackageNotFoundError:
            out[f"lib.{name}"] = "not installed"
    return out


def frame_sha256(df: pd.DataFrame) -> str:
    """Content hash of an evaluation frame (texts and labels, in order)."""
    h = hashlib.sha256()
    for text, label in zip(df["text"], df["label"]):
        h.update(str(text).encode("utf-8", "surrogatepass") + b"\x00" + str(int(label)).encode() + b"\n")
    return h.hexdigest()
