"""MLflow tracking and the model registry.

One MLflow run per training: params, data version, git commit, library versions, metrics, plots and
the pyfunc model. Each registered version gets the ``challenger`` alias; ``champion`` moves only when
the promotion gate says so, under a lock, against the champion of that moment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from finsent.config import LABELS, Params, RegisterParams

CHAMPION = "champion"
CHALLENGER = "challenger"


class RegistryError(RuntimeError):
    """A registry operation cannot be done (unknown version, no champion, missing artifacts)."""


class StoreUnavailable(RegistryError):
    """The MLflow tracking store cannot be reached or written."""


@dataclass(frozen=True)
class RegistrationSummary:
    run_id: str
    model_name: str
    version: str
    promoted: bool
    champion_version: str | None  # after the decision
    previous_champion_version: str | None
    reasons: list[str]


def resolve_tracking_uri(p: RegisterParams, root: Path) -> str:
    """MLFLOW_TRACKING_URI wins over params; a relative sqlite path is taken from the project root."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or p.tracking_uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = f"sqlite:///{(Path(root) / uri[len('sqlite:///'):]).resolve()}"
    return uri


def artifact_location(p: RegisterParams, root: Path, uri: str) -> str | None:
    """Artifacts of a local store live under mlruns/ in the project; a server decides its own."""
    if uri.startswith(("sqlite:", "file:")) or "://" not in uri:
        return (Path(root) / p.artifact_dir).resolve().as_uri()
    return None


def check_store(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, before any training, when the tracking store is down or not writable."""
    parsed = urlparse(uri)
    if parsed.scheme in {"http", "https"}:
        import requests

        try:
            response = requests.get(uri.rstrip("/") + "/health", timeout=timeout_s)
        except requests.RequestException as exc:
            raise StoreUnavailable(f"MLflow tracking server {uri} is unreachable: {exc.__class__.__name__}") from exc
        if response.status_code != 200:
            raise StoreUnavailable(f"MLflow tracking server {uri} answered {response.status_code} on /health")
        return
    if parsed.scheme == "sqlite":
        db = Path(uri[len("sqlite:///"):])
        if not db.parent.is_dir() or not os.access(db.parent, os.W_OK):
            raise StoreUnavailable(f"MLflow store {uri}: folder {db.parent} does not exist or is not writable")
        return
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(uri).search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - any backend error means the store is unusable
        raise StoreUnavailable(f"MLflow tracking store {uri} is unusable: {exc}") from exc


def connect(p: RegisterParams, root: Path):
    """Point MLflow at the configured store (checked first) and return a client."""
    import mlflow
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    uri = resolve_tracking_uri(p, root)
    check_store(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if not uri.startswith("sqlite:///"):
        return MlflowClient(uri, registry_uri=uri)
    # Opening a fresh SQLite store creates and migrates it; two processes doing that at once collide
    # (alembic: "table ... already exists"), so stores are opened in turn.
    from filelock import FileLock

    with FileLock(str(Path(uri[len("sqlite:///"):]).with_suffix(".init.lock")), timeout=300):
        client = MlflowClient(uri, registry_uri=uri)
        client.search_registered_models(max_results=1)  # the registry store is opened lazily
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
    if dataclasses.is_dataclass(value):
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


NOT_FOUND_CODES = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")  # no such model, version or alias


def get_version(client, name: str, version: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if exc.error_code in NOT_FOUND_CODES:
            raise RegistryError(f"model {name!r} has no version {version!r}") from exc
        raise RegistryError(f"model {name!r} version {version!r} could not be read: {exc}") from exc


def alias_version(client, name: str, alias: str) -> str | None:
    """The version holding ``alias``; None when the model or the alias does not exist. A store error
    is raised: read as "no champion", it would let a challenger through unchallenged."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code in NOT_FOUND_CODES:
            return None
        raise


WEIGHT_SUFFIXES = (".safetensors", ".bin")


def check_artifacts(client, name: str, version: str) -> None:
    """A version can serve only if its files are still there: the MLmodel file and, for each model
    folder it packs, a config and non-empty weights."""
    import mlflow
    import yaml

    get_version(client, name, version)
    try:
        base = client.get_model_version_download_uri(name, str(version)).rstrip("/")
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(artifact_uri=f"{base}/MLmodel", dst_path=tmp)
            mlmodel = yaml.safe_load(Path(local).read_text())
        packed = (mlmodel.get("flavors", {}).get("python_function", {}).get("artifacts") or {}).values()
        for folder in [entry["path"] for entry in packed]:
            files = {Path(f.path).name: f.file_size or 0 for f in mlflow.artifacts.list_artifacts(artifact_uri=f"{base}/{folder}")}
            if "config.json" not in files or not any(n.endswith(WEIGHT_SUFFIXES) and size > 0 for n, size in files.items()):
                raise FileNotFoundError(f"{folder} holds no config.json and weights (found {sorted(files) or 'nothing'})")
    except Exception as exc:  # noqa: BLE001 - whatever is missing or unreadable, the version cannot serve
        raise RegistryError(f"{name} version {version}: model artifacts are missing or unreadable ({exc})") from exc


@contextlib.contextmanager
def promotion_lock(uri: str, root: Path, *, lock_url: str = "", name: str = "finsent-sentiment", timeout_s: float = 600) -> Iterator[None]:
    """Serialise champion decisions: two runs finishing together compare against each other's result
    rather than against a stale champion. ``lock_url`` (``register.lock_url``), or a PostgreSQL tracking
    store itself, holds an advisory lock per model name, for promoters on several machines; otherwise a
    file next to a SQLite store, or in the project, serialises the promoters of one machine."""
    from finsent import locks

    database = lock_url or (uri if uri.startswith("postgresql") else "")
    if database:
        with locks.advisory_lock(database, f"finsent-promotion:{name}", timeout_s):
            yield
        return
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):]).with_suffix(".promotion.lock")
    else:
        path = Path(root) / ".finsent-promotion.lock"
    with locks.file_lock(path, timeout_s):
        yield


def log_model(model_dir: Path, registered_name: str):
    """Log the fine-tuned model as a pyfunc that returns class probabilities; register a version.

    Models-from-code (``serving_entry.py``) rather than a pickled object; the finsent package travels
    with the model so that it loads anywhere MLflow, torch and transformers are installed."""
    import warnings

    import mlflow
    from mlflow.models import infer_signature

    import finsent
    from finsent.serving import probabilities_frame

    package_dir = Path(finsent.__file__).parent
    example_out = probabilities_frame(np.full((1, len(LABELS)), 1.0 / len(LABELS)))
    signature = infer_signature(pd.DataFrame({"text": ["shares rise"]}), example_out)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*input example.*")
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(package_dir / "serving_entry.py"),
            artifacts={"model": str(model_dir)},
            signature=signature,
            code_paths=[str(package_dir)],
            pip_requirements=["torch", "transformers>=5,<6", "pandas<3", "numpy", "mlflow>=3,<4"],
            registered_model_name=registered_name,
        )
