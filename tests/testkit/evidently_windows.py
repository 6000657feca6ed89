"""Monitoring window folders as ``monitor_window`` leaves them, for the Evidently workspace tests: a
``summary.json`` with the drift verdict and the scoring, and the report snapshots that
``drift.save_report`` writes (small real Evidently snapshots, not the drift report itself)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from finsent.config import DRIFT_SIGNALS, Params
from finsent.monitoring.drift import DESCRIPTOR_COLUMNS
from finsent.paths import Layout


def verdict(*, fired: tuple[str, ...] = (), labelled: bool = True, shares: tuple[float, float, float] = (0.2, 0.3, 0.5)) -> dict:
    """A drift verdict with every signal checked (``performance`` only when ``labelled``)."""
    checked = [s for s in DRIFT_SIGNALS if labelled or s != "performance"]
    details: dict[str, dict] = {
        "text_descriptors": {
            "value": 1 if "text_descriptors" in fired else 0,
            "threshold": 1,
            "fired": "text_descriptors" in fired,
            "columns": {c: {"value": 0.05 + 0.01 * i, "threshold": 0.1, "fired": False} for i, c in enumerate(DESCRIPTOR_COLUMNS)},
        },
        "text_content": {"value": 0.7 if "text_content" in fired else 0.5, "threshold": 0.55, "fired": "text_content" in fired},
        "embeddings": {"value": 0.6 if "embeddings" in fired else 0.52, "threshold": 0.55, "fired": "embeddings" in fired},
        "prediction": {
            "value": 0.2 if "prediction" in fired else 0.01,
            "threshold": 0.1,
            "fired": "prediction" in fired,
            "current_shares": dict(zip(("bearish", "bullish", "neutral"), shares, strict=True)),
        },
    }
    if labelled:
        details["performance"] = {"value": 0.71, "threshold": 0.73, "fired": "performance" in fired, "accuracy": 0.8, "labelled_rows": 120}
    return {"drift": bool(fired), "signals_fired": list(fired), "details": details, "signals_checked": checked, "skipped": {}}


@functools.cache
def _snapshot_json(kind: str) -> str:
    import pandas as pd
    from evidently import Report
    from evidently.metrics import RowCount

    return Report([RowCount()]).run(pd.DataFrame({"x": [1.0, 2.0, 3.0]}), None, name=kind).dumps()


def write_window(
    root: Path, name: str, drift: dict | None, *, rows_scored: int = 150, rows_skipped: int = 3, reports: bool = True, done: bool = True
) -> Path:
    """A window folder under ``artifacts/monitoring/runs``; ``done=False`` leaves out summary.json (still running)."""
    folder = Layout.of(root, Params()).monitoring_windows / name
    (folder / "drift").mkdir(parents=True)
    scoring = [
        {"status": "scored", "batch_id": "b1", "rows_scored": rows_scored, "rows_skipped": rows_skipped},
        {"status": "already_scored", "batch_id": "b0", "rows_scored": 999, "rows_skipped": 9},  # counted before, not now
    ]
    (folder / "scoring.json").write_text(json.dumps(scoring))
    if reports and drift is not None:
        (folder / "drift" / "drift_snapshot.json").write_text(_snapshot_json("drift"))
        if "performance" in drift["details"]:
            (folder / "drift" / "performance_snapshot.json").write_text(_snapshot_json("performance"))
    if done:
        summary = {"status": "monitored", "champion_version": "3", "scoring": scoring, "window_rows": rows_scored, "drift": drift}
        (folder / "summary.json").write_text(json.dumps(summary))
    return folder
