"""What a training run found, as markdown for Prefect's UI: the test metrics, the gate's decision with
every one of its reasons, and where the run is in MLflow.

The training flow publishes this text as an artifact; the flow holds no logic and the library never
imports prefect, so the text is written here, in the room that owns the decision
(``RegistrationSummary``), over the metrics part that evaluation writes (``finsent.evaluation.markdown``).
The builders are pure; ``training_report`` only reads the run folder's ``eval/metrics.json`` and
``train/train_summary.json`` first. A tracking URI is shown without its password.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from finsent import markdown as md
from finsent.evaluation.markdown import metrics_markdown
from finsent.paths import RunLayout, shown_url
from finsent.registry.versions import RegistrationSummary

LOCAL_UI = "http://127.0.0.1:5000"  # where ``mlflow ui`` listens by default


def run_path(experiment_id: str, run_id: str) -> str:
    """The run's page in the MLflow UI, relative to the UI's address."""
    return f"#/experiments/{experiment_id or '<experiment id>'}/runs/{run_id}"


def without_credentials(uri: str) -> str:
    """``uri`` with no user name or password: an http(s) URL loses them, a database URL hides the password."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    return shown_url(uri) if "@" in uri else uri


def run_links_markdown(run_id: str, tracking_uri: str, experiment_id: str = "", heading: str = "###") -> str:
    """Where the run is: a link when the store is an MLflow server, else the ``mlflow ui`` command that
    opens the store and the run's path under the UI's address."""
    path = run_path(experiment_id, run_id)
    lines = [f"{heading} MLflow", "", f"- run id: {md.code(run_id)}"]
    if experiment_id:
        lines.append(f"- experiment id: {md.code(experiment_id)}")
    uri = without_credentials(tracking_uri)
    if urlsplit(uri).scheme in ("http", "https"):
        url = f"{uri.rstrip('/')}/{path}"
        lines.append(f"- run page: [{md.line(url)}]({url.replace(' ', '%20').replace(')', '%29')})")
    else:
        lines.append(f"- tracking store: {md.code(uri)}")
        lines.append(f"- open it with {md.code(f'mlflow ui --backend-store-uri {shlex.quote(uri)}')}, then {LOCAL_UI}/{path}")
    return "\n".join(lines)


def gate_markdown(summary: RegistrationSummary, heading: str = "###") -> str:
    """The gate's decision: promoted or not, the champion before and after, and every reason in full
    (each check's when promoted, the failed ones' when refused)."""
    decision = (
        f"Version {md.line(summary.version)} **promoted** to champion."
        if summary.promoted
        else f"Version {md.line(summary.version)} **not promoted**: the champion stays {md.line(summary.champion_version or 'none')}."
    )
    champion = md.table(
        ["", "version"],
        [
            ["registered", summary.version],
            ["champion before", summary.previous_champion_version or "none"],
            ["champion after", summary.champion_version or "none"],
        ],
    )
    which = "every check" if summary.promoted else "the checks that refused it"
    reasons = md.table(["#", "reason"], [[i, reason] for i, reason in enumerate(summary.reasons, 1)]) if summary.reasons else "(none given)"
    return "\n\n".join(
        [
            f"{heading} Gate decision",
            decision,
            champion,
            f"Reasons ({which}):",
            reasons,
        ]
    )


def training_headline(summary: RegistrationSummary) -> str:
    """One line: the version registered and the gate's verdict (the artifact's description)."""
    verdict = "promoted to champion" if summary.promoted else f"not promoted (champion stays {summary.champion_version or 'none'})"
    return f"{md.line(summary.model_name)} version {md.line(summary.version)}: {verdict}"


def training_markdown(
    summary: RegistrationSummary, metrics: Mapping[str, Any] | None, tracking_uri: str, dev_macro_f1: float | None = None
) -> str:
    """The whole training report: decision first, then the test metrics, then the MLflow links."""
    parts = [f"## Training: {training_headline(summary)}", gate_markdown(summary)]
    parts.append(metrics_markdown(metrics, dev_macro_f1) if metrics is not None else "### Test metrics\n\n(no eval/metrics.json)")
    parts.append(run_links_markdown(summary.run_id, tracking_uri, summary.experiment_id))
    return "\n\n".join(parts) + "\n"


def read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def training_report(run: RunLayout, summary: RegistrationSummary, tracking_uri: str) -> str:
    """``training_markdown`` from what the run folder holds: the evaluate stage's ``metrics.json`` and the
    dev macro-F1 of the weights training kept (absent without a dev split)."""
    metrics = read_json(run.eval_dir / "metrics.json")
    trained = read_json(run.train_dir / "train_summary.json") or {}
    dev = trained.get("dev_macro_f1")
    return training_markdown(summary, metrics, tracking_uri, float(dev) if isinstance(dev, int | float) else None)
