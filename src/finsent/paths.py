"""The path catalogue: where every stage reads and writes, defined once.

``dvc repro`` (``finsent stage ...``, run folder ``artifacts/pipeline``) and the Prefect training flow
(a new run folder ``artifacts/runs/<UTC time>`` per run, so that runs never overwrite each other) lay
out a run the same way, from ``RunLayout``; ``dvc.yaml`` names the same files, and a test reads
``dvc.yaml`` against this module. Labelled data lives in ``data/`` (versioned by DVC as one folder);
what the stages derive from it (the prepared splits, the dev split, the augmented set) lives in the
run folder, so ``data/`` only ever holds labelled rows.

Relative SQLite URLs (the MLflow store, the predictions store, the Optuna study) are taken from the
project root, whatever the current folder: ``resolve_url``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from finsent import utc
from finsent.config import Params

SQLITE_PREFIX = "sqlite:///"
SQLITE_URI = "file:"  # SQLite's own URI form, sqlite:///file:PATH?mode=ro&uri=true: PATH is inside it
PIPELINE_RUN = "pipeline"  # artifacts/pipeline: the run folder of `dvc repro`


def resolve_url(url: str, root: str | Path) -> str:
    """A database URL with a relative SQLite path made absolute under ``root``; others unchanged."""
    relative = url.startswith(SQLITE_PREFIX) and not url.startswith(SQLITE_PREFIX + "/")
    if not relative or url == SQLITE_PREFIX + ":memory:":
        return url
    rest = url[len(SQLITE_PREFIX) :]
    if rest.startswith(SQLITE_URI):  # resolve the path inside the URI, keep its query (mode=ro, ...)
        path, sep, query = rest[len(SQLITE_URI) :].partition("?")
        return url if path.startswith("/") else f"{SQLITE_PREFIX}{SQLITE_URI}{(Path(root) / path).resolve()}{sep}{query}"
    return SQLITE_PREFIX + str((Path(root) / rest).resolve())


def is_loopback(host: str) -> bool:
    """Whether a server bound to ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def shown_url(url: str) -> str:
    """A database URL with its password hidden, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot parse is shown without what precedes an @
        return url.split("@")[-1]


# Database servers (as opposed to SQLite files): reached over the network, with a connect timeout.
SERVER_DATABASES = ("postgresql", "mysql")


def is_server_database(url: str) -> bool:
    """Whether the SQLAlchemy ``url`` names a database server (``postgresql+psycopg2://...``)."""
    return url.split(":", 1)[0].split("+")[0] in SERVER_DATABASES


def sqlite_path(url: str) -> Path | None:
    """The database file of an (absolute) SQLite URL; None for any other database."""
    if not url.startswith(SQLITE_PREFIX) or url == SQLITE_PREFIX + ":memory:":
        return None
    rest = url[len(SQLITE_PREFIX) :]
    if rest.startswith(SQLITE_URI):
        return Path(rest[len(SQLITE_URI) :].partition("?")[0])
    return Path(rest)


def stamp() -> str:
    """A folder name that sorts by time: 20261130T072153123456Z."""
    return utc.now().strftime("%Y%m%dT%H%M%S%fZ")


@dataclass(frozen=True)
class PreparedFiles:
    """What the prepare stage writes: the training rows, the test set and the dev split."""

    dir: Path

    @property
    def train(self) -> Path:
        return self.dir / "train.csv"

    @property
    def eval(self) -> Path:  # the test set: reported, never trained or selected on
        return self.dir / "eval.csv"

    @property
    def dev(self) -> Path:  # absent with data.dev_fraction 0
        return self.dir / "dev.csv"

    def dev_if_any(self) -> Path | None:
        return self.dev if self.dev.is_file() else None

    @property
    def unlabelled(self) -> Path:  # unlabelled news for TAPT and self-training, no dev or test text; absent without news
        return self.dir / "unlabelled.csv"

    def unlabelled_if_any(self) -> Path | None:
        return self.unlabelled if self.unlabelled.is_file() else None


@dataclass(frozen=True)
class RunLayout:
    """One training run's files, relative to its folder."""

    dir: Path

    @property
    def validation(self) -> Path:
        return self.dir / "validation.json"

    @property
    def prepared(self) -> PreparedFiles:
        return PreparedFiles(self.dir / "data")

    @property
    def augmented_train(self) -> Path:
        return self.dir / "augmented" / "train.csv"

    @property
    def train_dir(self) -> Path:  # model/, train_summary.json, checkpoint
        return self.dir / "train"

    @property
    def model_dir(self) -> Path:
        return self.train_dir / "model"

    @property
    def eval_dir(self) -> Path:  # metrics.json, predictions.csv, behaviour.json, plots
        return self.dir / "eval"

    @property
    def registration(self) -> Path:
        return self.dir / "registration.json"


@dataclass(frozen=True)
class Layout:
    """The project's folders, from ``params`` and the project root."""

    root: Path
    params: Params

    @classmethod
    def of(cls, root: str | Path, params: Params) -> Layout:
        return cls(Path(root).resolve(), params)

    # --- labelled data (DVC-tracked as one folder) ---
    @property
    def data_dir(self) -> Path:
        return self.root / self.params.data.data_dir

    @property
    def train_file(self) -> Path:
        return self.data_dir / self.params.data.train_file

    @property
    def eval_file(self) -> Path:
        return self.data_dir / self.params.data.eval_file

    @property
    def batches_dir(self) -> Path:
        return self.data_dir / self.params.data.batches_dir

    @property
    def shipped_dir(self) -> Path:
        return self.root / self.params.data.shipped_dir

    @property
    def quarantine_dir(self) -> Path:
        return self.root / self.params.data.quarantine_dir

    # --- runs ---
    @property
    def artifacts(self) -> Path:
        return self.root / self.params.artifacts_dir

    @property
    def pipeline(self) -> RunLayout:
        return RunLayout(self.artifacts / PIPELINE_RUN)

    def new_run(self) -> RunLayout:
        return RunLayout(self.artifacts / "runs" / stamp())

    # --- monitoring ---
    @property
    def monitoring_dir(self) -> Path:
        return self.artifacts / "monitoring"

    def new_monitoring_dir(self, kind: str = "runs") -> Path:
        """A fresh folder for one monitoring run (``runs``), ad-hoc drift report (``drift``) or retrain."""
        return self.monitoring_dir / kind / stamp()

    @property
    def index_dir(self) -> Path:
        return self.monitoring_dir / "index"

    @property
    def monitoring_windows(self) -> Path:
        """One folder per monitoring window (``new_monitoring_dir()``), named by its start time."""
        return self.monitoring_dir / "runs"

    @property
    def evidently_workspace(self) -> Path:
        """The local Evidently workspace of ``finsent ui``, unless ``workspace.location`` names another."""
        return self.artifacts / "evidently"

    def reference_dir(self, model_name: str, version: str) -> Path:
        """The champion's training rows and cached outputs: the drift reference."""
        return self.monitoring_dir / "reference" / f"{model_name}-v{version}"

    @property
    def inbox(self) -> Path:
        return self.root / self.params.schedule.monitor_inbox

    # --- stores ---
    @property
    def store_url(self) -> str:
        return resolve_url(self.params.monitor.store_url, self.root)

    @property
    def tuning_dir(self) -> Path:
        return self.artifacts / "tuning"

    def new_log(self, command: str) -> Path:
        """The full log of one flow command (tracebacks included; the console shows their messages)."""
        return self.artifacts / "logs" / f"{stamp()}-{command}.log"

    @property
    def prefect_server_log(self) -> Path:
        return self.artifacts / "prefect-server.log"
