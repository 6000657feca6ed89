"""The flows' console without tracebacks; the whole log, tracebacks included, in a file.

A stage that fails ends ``finsent train`` with one line (``finsent: error: ...``). Prefect also logs
the exception with its traceback for the task, the task run and the flow run: some 200 lines before
that one. On the console those records keep their one-line messages; the log file the CLI names
(``artifacts/logs/<time>-<command>.log``) keeps every record with its traceback.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path


class WithoutTraceback(logging.Formatter):
    """Another formatter's output, minus the traceback and stack of the record."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return self.inner.format(record)
        finally:  # the record is shared: the file handler still gets the traceback
            record.exc_info, record.exc_text, record.stack_info = saved


@contextlib.contextmanager
def console_without_tracebacks(log_file: Path) -> Iterator[Path]:
    """Cut tracebacks from Prefect's console handler, and log every record to ``log_file`` while the
    block runs."""
    from prefect.logging.handlers import PrefectConsoleHandler

    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, PrefectConsoleHandler) and not isinstance(handler.formatter, WithoutTraceback):
            handler.setFormatter(WithoutTraceback(handler.formatter))
    log_file.parent.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(log_file, encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s - %(message)s"))
    root.addHandler(to_file)
    try:
        yield log_file
    finally:
        root.removeHandler(to_file)
        to_file.close()
