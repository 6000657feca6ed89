"""The model registry: versions, aliases, and the lock that serialises champion decisions.

Each registered version gets the ``challenger`` alias; ``champion`` moves only when the promotion gate
says so, under a lock, against the champion of that moment.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from finsent.paths import sqlite_path
from finsent.registry import locks
from finsent.tracking import RegistryError

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class RegistrationSummary:
    run_id: str
    model_name: str
    version: str
    promoted: bool
    champion_version: str | None  # after the decision
    previous_champion_version: str | None
    reasons: list[str]
    experiment_id: str = ""  # the MLflow experiment of ``run_id``: with it, the run's page in the MLflow UI


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
    database = lock_url or (uri if uri.startswith("postgresql") else "")
    if database:
        with locks.advisory_lock(database, f"finsent-promotion:{name}", timeout_s):
            yield
        return
    db = sqlite_path(uri)
    path = db.with_suffix(".promotion.lock") if db is not None else Path(root) / ".finsent-promotion.lock"
    with locks.file_lock(path, timeout_s):
        yield


def load_pyfunc(uri: str):
    """``mlflow.pyfunc.load_model``, with any failure a ``RegistryError`` that names the model: a
    version whose files, code or MLmodel cannot be loaded cannot serve, whatever the cause."""
    import mlflow

    try:
        return mlflow.pyfunc.load_model(uri)
    except Exception as exc:  # noqa: BLE001 - missing files, an import its code needs, a broken MLmodel
        raise RegistryError(f"{uri} cannot be loaded ({type(exc).__name__}: {str(exc)[:300]})") from exc
