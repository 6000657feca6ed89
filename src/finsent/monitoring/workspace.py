"""Model health in Evidently's UI: every monitoring window's reports in one Evidently 0.7 workspace, and
a dashboard that plots them window by window.

The workspace is a local folder (``Layout.evidently_workspace`` unless ``workspace.location`` names
another) or the URL of a running ``evidently ui`` service (``RemoteWorkspace``). It holds one Evidently
project per registered model, named after ``register.model_name``, found or created on each use.

Each window (a folder ``artifacts/monitoring/runs/<start time>``) adds, stamped with its start time:
- ``health``: a small report of the numbers the dashboard plots (``HEALTH``, below), built from the
  window's ``summary.json``: each drift signal's value and threshold, the share of signals that fired,
  the predicted class shares, the rows scored, accuracy and macro-F1 when labels arrived, and beside them
  the label-free estimates of both (``estimated_performance`` of the summary: the chosen method's, with
  the accuracy interval), which every window has;
- ``drift`` and ``performance``: the window's own Evidently reports (``drift/*_snapshot.json``, written by
  ``drift.save_report``), to browse in the UI; only with ``workspace.full_reports``.
Each snapshot is tagged ``finsent-<kind>`` and ``window-<folder>``, with the same two in its metadata, so a
window is added once: ``backfill`` skips every (window, kind) the project already holds.

How the dashboard reads the numbers: an Evidently 0.7 panel selects values by metric type and labels
(``PanelMetric(metric=..., metric_labels=...)``), and a label is a metric parameter. So each number is one
``FinsentValue(series=<key>)`` metric over a one-row dataset holding the window's numbers, and each panel
line is ``PanelMetric(metric="FinsentValue", metric_labels={"series": <key>}, tags=["finsent-health"])``.
``HEALTH`` lists the panels; each ``Series`` says where its number comes from. A new number is one more
``Series`` in a panel's list: it reaches the health report, the dashboard and ``backfill`` with no other
change (the estimates are the ``estimate.*`` series of ``QUALITY``).

The panels live in the dashboard tab ``TAB``, which finsent owns: ``ensure_dashboard`` makes that tab
match ``HEALTH`` exactly (adding, updating or removing its panels, by title) and leaves other tabs alone,
so running it any number of times gives the same dashboard.

``monitor_window`` calls ``record_window`` once per window (a failure is logged, never raised);
``finsent monitor backfill-ui`` calls ``backfill``; ``finsent ui`` calls ``serve_ui``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import requests
from evidently import DataDefinition, Dataset, Report
from evidently.core.metric_types import SingleValueCalculation, SingleValueMetric
from evidently.core.report import Snapshot
from evidently.sdk.models import DashboardModel, DashboardPanelPlot, DashboardTabModel, PanelMetric
from evidently.sdk.panels import bar_plot_panel, counter_panel, line_plot_panel
from evidently.ui.storage.local.base import SNAPSHOTS_DIR_NAME
from evidently.ui.workspace import Project, RemoteWorkspace, Workspace, WorkspaceBase

from finsent.config import DRIFT_SIGNALS, Params
from finsent.errors import FinsentError
from finsent.monitoring.drift import DESCRIPTOR_COLUMNS
from finsent.paths import Layout, is_loopback
from finsent.vocabulary import LABELS

TAB = "Model health"  # the dashboard tab finsent owns
METRIC = "FinsentValue"
KINDS = ("drift", "performance", "health")  # added in this order: health last, once the reports are in
WINDOW_FORMAT = "%Y%m%dT%H%M%S%fZ"  # paths.stamp(): a window folder's name is its start time (UTC)
SECRET_ENV = "EVIDENTLY_SECRET"  # Evidently's own variable: the write secret of a service
LOCK_TIMEOUT_S = 120.0


class WorkspaceError(FinsentError):
    """The Evidently workspace cannot be opened or served, or a folder is not a monitoring window."""


# --- the numbers ----------------------------------------------------------------------------------


class FinsentValue(SingleValueMetric):
    """One number of a monitoring window, read from the one-row dataset of the window's numbers.

    Evidently plots a metric's value over time, and panels pick it by metric type and parameters: the
    parameter ``series`` names the number (``Series.key``)."""

    series: str


class FinsentValueCalculation(SingleValueCalculation[FinsentValue]):
    def calculate(self, context: Any, current_data: Dataset, reference_data: Dataset | None) -> Any:
        return self.result(float(current_data.column(self.metric.series).data.iloc[0]))

    def display_name(self) -> str:
        return LEGENDS.get(self.metric.series, self.metric.series)


@dataclass(frozen=True)
class Window:
    """One monitoring window's folder, as the dashboard needs it."""

    name: str
    dir: Path
    timestamp: datetime  # its start time, naive UTC (what Evidently stores)
    summary: dict[str, Any]  # summary.json: MonitoringSummary.to_dict()

    @classmethod
    def read(cls, folder: str | Path) -> Window:
        folder = Path(folder)
        try:
            timestamp = datetime.strptime(folder.name, WINDOW_FORMAT)
        except ValueError as exc:
            raise WorkspaceError(f"{folder}: not a monitoring window (its name is not a start time like 20261130T072153123456Z)") from exc
        summary_file = folder / "summary.json"
        if not summary_file.is_file():
            raise WorkspaceError(f"{folder}: no summary.json (a window still running, or one that scored nothing new)")
        try:
            summary = json.loads(summary_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise WorkspaceError(f"{summary_file}: not readable JSON ({exc})") from exc
        if not isinstance(summary, dict):
            raise WorkspaceError(f"{summary_file}: expected a monitoring summary (a JSON object)")
        return cls(folder.name, folder, timestamp, summary)

    @property
    def verdict(self) -> dict[str, Any]:
        return self.summary.get("drift") or {}  # the drift verdict; {} when drift was not computed

    def signal(self, name: str) -> dict[str, Any]:
        return (self.verdict.get("details") or {}).get(name) or {}

    def scored_files(self) -> list[dict[str, Any]]:
        return [s for s in self.summary.get("scoring") or [] if s.get("status") == "scored"]

    def report_snapshot(self, kind: str) -> Path:
        return self.dir / "drift" / f"{kind}_snapshot.json"


Reader = Callable[[Window], float | None]


@dataclass(frozen=True)
class Series:
    """One line of a panel: a number of each window (``read`` returns None when the window has none)."""

    key: str  # the health report's column and the FinsentValue parameter that panels select on
    legend: str
    read: Reader


@dataclass(frozen=True)
class Panel:
    title: str
    series: tuple[Series, ...]
    description: str = ""
    plot: str = "line"  # line | bar (stacked) | counter (the last window)
    size: str = "half"  # half | full


def _number(value: Any) -> float | None:
    """A number the dashboard can plot; None for anything else (missing, text, NaN)."""
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _signal_value(name: str, field_name: str) -> Reader:
    return lambda w: _number(w.signal(name).get(field_name))


def _descriptor_value(column: str) -> Reader:
    return lambda w: _number(((w.signal("text_descriptors").get("columns") or {}).get(column) or {}).get("value"))


def _descriptor_threshold(w: Window) -> float | None:
    columns = w.signal("text_descriptors").get("columns") or {}
    return next((_number(c.get("threshold")) for c in columns.values() if isinstance(c, dict)), None)


def _fired_share(w: Window) -> float | None:
    checked = w.verdict.get("signals_checked") or []
    return len(w.verdict.get("signals_fired") or []) / len(checked) if checked else None


def _fired_count(w: Window) -> float | None:
    return float(len(w.verdict.get("signals_fired") or [])) if w.verdict.get("signals_checked") else None


def _class_share(label: str) -> Reader:
    return lambda w: _number((w.signal("prediction").get("current_shares") or {}).get(label))


def _rows(field_name: str) -> Reader:
    return lambda w: float(sum(int(s.get(field_name) or 0) for s in w.scored_files())) if w.scored_files() else None


# What each drift signal's value is, and when it fires (the verdict's value and threshold).
SIGNAL_MEANING: dict[str, tuple[str, str]] = {
    "text_descriptors": ("descriptors drifted", "fires when at least the threshold drift (drift.descriptor_min_drifted)"),
    "text_content": ("ROC AUC", "a bag-of-words classifier telling reference from window; fires above the threshold"),
    "embeddings": ("ROC AUC", "a classifier on the champion's embeddings telling reference from window; fires above the threshold"),
    "prediction": ("distance", "of the predicted class shares (drift.prediction_method); fires above the threshold"),
    "performance": ("macro-F1", "on the labelled rows; fires BELOW the threshold (baseline - drift.max_macro_f1_drop)"),
}


def signal_panel(name: str) -> Panel:
    value, meaning = SIGNAL_MEANING.get(name, ("value", "fires past the threshold"))
    return Panel(
        title=f"Drift signal {name}: value and threshold",
        description=meaning,
        series=(
            Series(f"signal.{name}.value", value, _signal_value(name, "value")),
            Series(f"signal.{name}.threshold", "threshold", _signal_value(name, "threshold")),
        ),
    )


LAST_WINDOW = Panel(
    title="Last window",
    plot="counter",
    size="full",
    description="the latest window: drift signals that fired, their share of those checked, and its rows scored",
    series=(
        Series("signals.fired", "drift signals fired", _fired_count),
        Series("signals.fired_share", "share of signals fired", _fired_share),
        Series("rows.scored", "rows scored", _rows("rows_scored")),
    ),
)
SIGNALS_FIRED = Panel(
    title="Drift signals fired",
    description="share of the checked signals that fired (retrain.signals decides which count for retraining)",
    series=(Series("signals.fired_share", "share fired", _fired_share),),
)
CLASS_SHARES = Panel(
    title="Predicted class shares",
    plot="bar",
    description="the rows drift compared (the whole window up to drift.max_rows, a random sample beyond)",
    series=tuple(Series(f"classes.{label}.share", label, _class_share(label)) for label in LABELS),
)
ROWS = Panel(
    title="Rows scored",
    description="rows scored into the store from files, rows skipped as bad input, rows with a label, and the window's "
    "rows (also the news posted to the service or scored alone since the last window)",
    series=(
        Series("rows.scored", "scored", _rows("rows_scored")),
        Series("rows.window", "in the window", lambda w: _number(w.summary.get("window_rows"))),
        Series("rows.skipped", "skipped (bad input)", _rows("rows_skipped")),
        Series("rows.labelled", "labelled (used for accuracy)", _signal_value("performance", "labelled_rows")),
    ),
)


def _estimate_value(field_name: str) -> Reader:
    """A number of the window's chosen label-free estimate (``MonitoringSummary.estimated_performance``)."""

    def read(w: Window) -> float | None:
        estimated = w.summary.get("estimated_performance") or {}
        chosen = (estimated.get("methods") or {}).get(estimated.get("chosen") or "") or {}
        return _number(chosen.get(field_name))

    return read


# Realised quality, where labels arrived (at least drift.min_labelled_rows in the window), and beside it
# the label-free estimate of every window (estimate.chosen), the accuracy with its interval.
QUALITY: tuple[Series, ...] = (
    Series("quality.accuracy", "accuracy (labelled rows)", _signal_value("performance", "accuracy")),
    Series("quality.macro_f1", "macro-F1 (labelled rows)", _signal_value("performance", "value")),
    Series("estimate.accuracy", "estimated accuracy (no labels)", _estimate_value("estimated_accuracy")),
    Series("estimate.accuracy_low", "estimated accuracy: interval low", _estimate_value("accuracy_low")),
    Series("estimate.accuracy_high", "estimated accuracy: interval high", _estimate_value("accuracy_high")),
    Series("estimate.macro_f1", "estimated macro-F1 (no labels)", _estimate_value("estimated_macro_f1")),
)
DESCRIPTORS = Panel(
    title="Text descriptors: drift of each",
    description="drift.descriptor_method distance of each descriptor, reference vs window",
    size="full",
    series=(
        *(Series(f"descriptor.{c}.value", c, _descriptor_value(c)) for c in DESCRIPTOR_COLUMNS),
        Series("descriptor.threshold", "threshold", _descriptor_threshold),
    ),
)


def health_panels(quality: Sequence[Series] = QUALITY) -> list[Panel]:
    """The dashboard, in order."""
    return [
        LAST_WINDOW,
        SIGNALS_FIRED,
        Panel(
            "Accuracy and macro-F1: realised and estimated",
            tuple(quality),
            description="realised on windows with labelled rows; estimated without labels on every window (estimate.chosen)",
        ),
        *(signal_panel(name) for name in DRIFT_SIGNALS),
        DESCRIPTORS,
        CLASS_SHARES,
        ROWS,
    ]


HEALTH = health_panels()
LEGENDS = {s.key: s.legend for panel in HEALTH for s in panel.series}


def health_values(window: Window, panels: Sequence[Panel] = HEALTH) -> dict[str, float]:
    """Every number the panels plot that this window has, by series key."""
    values: dict[str, float] = {}
    for panel in panels:
        for s in panel.series:
            value = s.read(window)
            if value is not None and s.key not in values:
                values[s.key] = value
    return values


# --- snapshots ------------------------------------------------------------------------------------


def _labelled(snapshot: Snapshot, window: Window, kind: str, model_name: str) -> Snapshot:
    """The snapshot as the workspace stores it: the window's time, name, tags and metadata."""
    model = snapshot.to_snapshot_model()
    model.timestamp = window.timestamp
    model.name = f"{kind}: window {window.name}"
    model.tags = [f"finsent-{kind}", f"window-{window.name}"]
    model.metadata = {
        "finsent_kind": kind,
        "finsent_window": window.name,
        "model_name": model_name,
        "model_version": str(window.summary.get("champion_version") or ""),
    }
    return Snapshot.load_model(model)


def health_snapshot(window: Window, model_name: str, panels: Sequence[Panel] = HEALTH) -> Snapshot:
    values = health_values(window, panels)
    if not values:
        raise WorkspaceError(f"{window.dir}: the window has none of the numbers the dashboard plots")
    frame = pd.DataFrame([values])
    dataset = Dataset.from_pandas(frame, data_definition=DataDefinition(numerical_columns=list(values)))
    snapshot = Report([FinsentValue(series=key) for key in values]).run(dataset, None)
    return _labelled(snapshot, window, "health", model_name)


def report_snapshot(window: Window, kind: str, model_name: str) -> Snapshot | None:
    """The window's drift or performance report as written by ``drift.save_report``; None when absent."""
    path = window.report_snapshot(kind)
    if not path.is_file():
        return None
    try:
        snapshot = Snapshot.load(str(path))
    except (OSError, ValueError) as exc:
        raise WorkspaceError(f"{path}: not an Evidently snapshot ({str(exc).splitlines()[0][:200]})") from exc
    return _labelled(snapshot, window, kind, model_name)


# --- the workspace --------------------------------------------------------------------------------


def is_remote(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def local_dir(p: Params, root: Path) -> Path:
    """The local workspace folder (``workspace.location`` is not a URL)."""
    location = p.workspace.location
    if not location:
        return Layout.of(root, p).evidently_workspace
    path = Path(location).expanduser()
    return path if path.is_absolute() else Path(root).resolve() / path


def where(p: Params, root: Path) -> str:
    return p.workspace.location if is_remote(p.workspace.location) else str(local_dir(p, root))


def open_workspace(p: Params, root: Path) -> WorkspaceBase:
    location = p.workspace.location
    if not is_remote(location):
        return Workspace.create(str(local_dir(p, root)))
    url = location.rstrip("/")
    try:  # the SDK's own requests have no timeout: a service that is down is found here, in seconds
        requests.get(f"{url}/api/version", timeout=10).raise_for_status()
        return RemoteWorkspace(url, secret=os.environ.get(SECRET_ENV))
    except (requests.RequestException, ValueError) as exc:
        raise WorkspaceError(
            f"the Evidently service at {url} does not answer ({type(exc).__name__}); start it, or fix workspace.location"
        ) from exc


@contextlib.contextmanager
def _locked(p: Params, root: Path) -> Iterator[None]:
    """One writer at a time on a local workspace (a window ending while a backfill runs)."""
    if is_remote(p.workspace.location):
        yield
        return
    from filelock import FileLock, Timeout

    folder = local_dir(p, root)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / ".finsent.lock"), timeout=LOCK_TIMEOUT_S)
    try:
        lock.acquire()
    except Timeout as exc:
        raise WorkspaceError(f"another finsent has held the workspace {folder} for over {LOCK_TIMEOUT_S:.0f} s") from exc
    try:
        yield
    finally:
        lock.release()


def ensure_project(ws: WorkspaceBase, name: str) -> Project:
    """The project named ``name`` (the oldest, should there be several), created when there is none."""
    found = sorted((p for p in ws.search_project(name) if p.name == name), key=lambda p: str(p.id))
    if found:
        return found[0]
    return ws.create_project(name, description=f"Model health of the registered model {name}, one point per monitoring window (finsent)")


def _panel_plot(panel: Panel) -> DashboardPanelPlot:
    values = [PanelMetric(legend=s.legend, metric=METRIC, metric_labels={"series": s.key}, tags=["finsent-health"]) for s in panel.series]
    if panel.plot == "counter":
        return counter_panel(title=panel.title, values=values, description=panel.description, size=panel.size, aggregation="last")
    if panel.plot == "bar":
        return bar_plot_panel(title=panel.title, values=values, description=panel.description, size=panel.size, stacked=True)
    return line_plot_panel(title=panel.title, values=values, description=panel.description, size=panel.size)


def _content(plot: DashboardPanelPlot) -> dict[str, Any]:
    return plot.dict(exclude={"id"})


@dataclass
class DashboardChanges:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0


def ensure_dashboard(ws: WorkspaceBase, project: Project, panels: Sequence[Panel] = HEALTH) -> DashboardChanges:
    """Make the tab ``TAB`` hold exactly ``panels`` (matched by title, keeping their ids); other tabs and
    their panels are left as they are. Writes only when something changed."""
    dashboard: DashboardModel = ws.get_dashboard(project.id)
    tab = next((t for t in dashboard.tabs if t.title == TAB), None)
    if tab is None:
        tab = DashboardTabModel(title=TAB, panels=[])
        dashboard.tabs.append(tab)
    ours = {p.id: p for p in dashboard.panels if p.id in set(tab.panels)}
    by_title = {p.title: p for p in ours.values()}
    wanted, changes = [], DashboardChanges()
    for panel in panels:
        plot = _panel_plot(panel)
        old = by_title.pop(panel.title, None)
        if old is None:
            changes.added.append(panel.title)
        elif _content(old) == _content(plot):
            plot = old
            changes.unchanged += 1
        else:
            plot.id = old.id
            changes.updated.append(panel.title)
        wanted.append(plot)
    changes.removed.extend(sorted(by_title))
    if changes.added or changes.updated or changes.removed or [p.id for p in wanted] != tab.panels:
        tab.panels = [p.id for p in wanted]
        replacing = {p.id: p for p in wanted}
        panels = []
        for p in dashboard.panels:  # in place, so that nothing moves but what changed
            if p.id not in ours:
                panels.append(p)
            elif p.id in replacing:
                panels.append(replacing.pop(p.id))
        dashboard.panels = panels + list(replacing.values())
        ws.save_dashboard(project.id, dashboard)
    return changes


def snapshot_labels(ws: WorkspaceBase, project: Project) -> list[dict[str, Any]]:
    """Each snapshot's metadata in the project (read without parsing its metric results)."""
    if not isinstance(ws, Workspace):  # a service: its REST API lists the snapshots' metadata
        listed = ws._request(f"/api/projects/{project.id}/snapshots", "GET").json()
        return [s.get("metadata") or {} for s in listed]
    folder = Path(ws.path) / str(project.id) / SNAPSHOTS_DIR_NAME
    labels = []
    for snapshot_id in ws.list_runs(project.id):
        with contextlib.suppress(OSError, ValueError):
            labels.append(json.loads((folder / f"{snapshot_id}.json").read_bytes()).get("metadata") or {})
    return labels


def windows_present(ws: WorkspaceBase, project: Project) -> dict[str, set[str]]:
    """Window folder name -> the kinds of snapshot the project holds for it."""
    present: dict[str, set[str]] = {}
    for metadata in snapshot_labels(ws, project):
        if metadata.get("finsent_window") and metadata.get("finsent_kind"):
            present.setdefault(str(metadata["finsent_window"]), set()).add(str(metadata["finsent_kind"]))
    return present


def add_window(ws: WorkspaceBase, project: Project, window: Window, *, full_reports: bool, have: Collection[str] = ()) -> list[str]:
    """Add the window's snapshots the project lacks (``have``: the kinds it holds); returns the kinds added."""
    added = []
    for kind in KINDS:
        if kind in have or (kind != "health" and not full_reports):
            continue
        snapshot = health_snapshot(window, project.name) if kind == "health" else report_snapshot(window, kind, project.name)
        if snapshot is not None:
            ws.add_run(project.id, snapshot, include_data=False)
            added.append(kind)
    return added


@contextlib.contextmanager
def session(p: Params, root: Path) -> Iterator[tuple[WorkspaceBase, Project, DashboardChanges]]:
    """The workspace (locked when local), the model's project and its dashboard, made ready."""
    with _locked(p, root):
        ws = open_workspace(p, root)
        project = ensure_project(ws, p.register.model_name)
        changes = ensure_dashboard(ws, project)
        yield ws, project, changes


def record_window(p: Params, root: Path, out_dir: str | Path, *, log: Callable[[str], Any] = print) -> list[str] | None:
    """``monitor_window``'s hook: add the window to the workspace. A failure is logged, not raised: the
    window's other results stand, and ``finsent monitor backfill-ui`` adds it later."""
    if not p.workspace.record_windows:
        return None
    try:
        window = Window.read(out_dir)
        with session(p, root) as (ws, project, _):
            added = add_window(ws, project, window, full_reports=p.workspace.full_reports)
        log(f"Evidently workspace: window {window.name} added ({', '.join(added)}) to project {project.name} in {where(p, root)}")
        return added
    except Exception as exc:  # noqa: BLE001 - the window's results must stand whatever the workspace does
        log(
            f"Evidently workspace not updated for {Path(out_dir).name} ({type(exc).__name__}: {exc}); `finsent monitor backfill-ui` adds it later"
        )
        return None


@dataclass(frozen=True)
class BackfillSummary:
    workspace: str
    project: str
    project_id: str
    windows_added: dict[str, list[str]]  # window -> the kinds of snapshot added
    already_present: list[str]  # windows the project held complete
    skipped: dict[str, str]  # folder -> why it is not a window to add
    dashboard: DashboardChanges

    @property
    def snapshots_added(self) -> int:
        return sum(len(kinds) for kinds in self.windows_added.values())


def backfill(p: Params, root: Path, *, log: Callable[[str], Any] = print) -> BackfillSummary:
    """Add every finished monitoring window under ``artifacts/monitoring/runs`` that the project lacks."""
    folders = sorted(f for f in Layout.of(root, p).monitoring_windows.glob("*") if f.is_dir())
    added: dict[str, list[str]] = {}
    already: list[str] = []
    skipped: dict[str, str] = {}
    with session(p, root) as (ws, project, changes):
        present = windows_present(ws, project)
        for folder in folders:
            try:
                window = Window.read(folder)
                kinds = add_window(ws, project, window, full_reports=p.workspace.full_reports, have=present.get(window.name, set()))
            except WorkspaceError as exc:
                skipped[folder.name] = str(exc)
                continue
            if kinds:
                added[window.name] = kinds
                log(f"added window {window.name}: {', '.join(kinds)}")
            else:
                already.append(window.name)
    return BackfillSummary(where(p, root), project.name, str(project.id), added, already, skipped, changes)


# --- finsent ui -----------------------------------------------------------------------------------


def _browse_host(host: str) -> str:
    """The address to open (and to poll) for a service bound to ``host``."""
    return "127.0.0.1" if host in {"", "0.0.0.0", "::", "[::]"} else host


def _url(host: str, port: int) -> str:
    host = _browse_host(host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host.strip("[]"), port))
        except OSError as exc:
            raise WorkspaceError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another with --port") from exc


def companion_uis(p: Params, root: Path) -> dict[str, dict[str, str]]:
    """Where the MLflow and Prefect UIs are, or how to start them."""
    from finsent.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(p.register, root)
    if is_remote(uri):
        mlflow = {"url": uri, "command": ""}
    else:
        executable = Path(sys.executable).with_name("mlflow")
        command = [str(executable) if executable.exists() else "mlflow", "ui", "--backend-store-uri", uri, "--port", "5000"]
        mlflow = {"url": "http://127.0.0.1:5000", "command": shlex.join(command)}
    api = os.environ.get("PREFECT_API_URL", "")
    if api:
        prefect = {"url": api.rstrip("/").removesuffix("/api"), "command": ""}
    else:
        prefect = {"url": _url(p.schedule.server_host, p.schedule.server_port), "command": "finsent serve (make serve)"}
    return {"mlflow_ui": mlflow, "prefect_ui": prefect}


def serve_ui(
    p: Params,
    root: Path,
    *,
    host: str | None = None,
    port: int | None = None,
    log: Callable[[str], Any] = print,
    on_ready: Callable[[dict[str, Any]], Any] = lambda info: None,
) -> int:
    """Run ``evidently ui`` on the local workspace, with the model's project and dashboard made ready
    first; ``on_ready`` gets the URLs once it answers. Blocks until it stops (Ctrl-C or SIGTERM stop it);
    returns its exit code."""
    if is_remote(p.workspace.location):
        raise WorkspaceError(
            f"workspace.location is the Evidently service at {p.workspace.location}: open it in a browser; "
            "`finsent ui` serves a local workspace folder"
        )
    host = host or p.workspace.host
    port = port or p.workspace.port
    _check_port_free(host, port)
    with session(p, root) as (_, project, _):  # the project and its panels exist before the UI opens
        pass
    folder = local_dir(p, root)
    url = _url(host, port)
    command = [sys.executable, "-m", "evidently.cli", "ui", "--workspace", str(folder), "--host", host, "--port", str(port)]
    if not is_loopback(host) and not os.environ.get(SECRET_ENV):
        log(
            f"finsent: warning: anyone who reaches {host}:{port} can change or delete projects; set {SECRET_ENV} to require a secret for writes"
        )
    process = subprocess.Popen(command, stdout=_stderr())  # standard output is for the JSON result
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        _wait_ready(process, url, p.workspace.start_timeout_s)
        project_url = f"{url}/projects/{project.id}"
        others = companion_uis(p, root)
        mlflow, prefect = others["mlflow_ui"], others["prefect_ui"]
        info = {"evidently_ui": url, "project": {"name": project.name, "id": str(project.id), "url": project_url}, "workspace": str(folder)}
        info.update(others)
        log(f"finsent: Evidently UI, model health of {project.name}: {project_url}")
        log(f"finsent: MLflow UI: {mlflow['url']}" + (f" (start it: {mlflow['command']})" if mlflow["command"] else ""))
        log(f"finsent: Prefect UI: {prefect['url']}" + (f" (start it: {prefect['command']})" if prefect["command"] else ""))
        log("finsent: windows recorded while it runs appear after 'reload' in the project's report list; Ctrl-C stops it")
        on_ready(info)
        return process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop(process)


def _stderr() -> int | None:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a captured stream has no file descriptor
        return None


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _wait_ready(process: subprocess.Popen, url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise WorkspaceError(f"evidently ui exited with code {process.returncode} before it answered at {url}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/api/version", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise WorkspaceError(f"evidently ui did not answer at {url} within {timeout_s:.0f} s (workspace.start_timeout_s)")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
