"""Publish what a flow run found to Prefect's UI (the run's Artifacts tab and the Artifacts page).

The text and the rows come from the library (``finsent.registry.markdown``, ``finsent.monitoring.markdown``,
``finsent.training.tune_markdown``); these helpers only hand them to Prefect. Publishing is a report,
not a stage: building or sending an artifact that fails is logged as a warning and never fails the flow.
Call them from a task, so the artifact belongs to the flow run (keys: lowercase letters, digits, dashes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.exceptions import MissingContextError

TRAINING = "finsent-training"
MONITORING = "finsent-monitoring"
TUNING_TRIALS = "finsent-tuning-trials"
TUNING_BEST = "finsent-tuning-best"


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def _text(description: str | Callable[[], str]) -> str:
    return description() if callable(description) else description


def publish_markdown(key: str, build: Callable[[], str], description: str | Callable[[], str]) -> None:
    """A markdown artifact of what ``build`` returns; a failure (of ``build`` too) is logged, never raised."""
    try:
        create_markdown_artifact(key=key, markdown=build(), description=_text(description))
    except Exception as exc:  # noqa: BLE001 - a report that cannot be published must not fail the run it reports on
        _logger().warning("artifact %s not published: %s: %s", key, type(exc).__name__, exc)


def publish_table(key: str, build: Callable[[], list[dict[str, Any]]], description: str | Callable[[], str]) -> None:
    """A table artifact of the rows ``build`` returns; a failure (of ``build`` too) is logged, never raised."""
    try:
        create_table_artifact(key=key, table=build(), description=_text(description))
    except Exception as exc:  # noqa: BLE001 - a report that cannot be published must not fail the run it reports on
        _logger().warning("artifact %s not published: %s: %s", key, type(exc).__name__, exc)
