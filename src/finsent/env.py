"""Quiet and offline: the switches each library reads, set by the project itself.

Called by the CLI, the flows and the tests before the libraries start; values already set in the
environment win, so a user can still opt in to anything.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

QUIET_OFFLINE = {
    "HF_HUB_OFFLINE": "1",  # never download weights from a hub
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "true",  # MLflow reads the word true, not 1
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # its heartbeat can also lock a fresh SQLite db
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",  # slow CI machines
    "DVC_NO_ANALYTICS": "1",
    "GIT_PYTHON_REFRESH": "quiet",
    "TRANSFORMERS_VERBOSITY": "error",  # no load reports or weight-loading progress bars in logs
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # Idle OpenMP threads sleep instead of spinning: on a small shared CPU spinning threads slow torch
    # several-fold. Read when torch loads, so this must run before the first torch import.
    "OMP_WAIT_POLICY": "PASSIVE",
}


def apply_quiet_offline(environ: MutableMapping[str, str] | None = None) -> None:
    environ = os.environ if environ is None else environ
    for key, value in QUIET_OFFLINE.items():
        environ.setdefault(key, value)
