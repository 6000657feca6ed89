"""A Prefect flow run in the test's own process: out of capsys, its output kept in a file.

Prefect's log handlers keep the stream they first see, and capsys closes its stream after the test, so
a flow must not run under capsys (``capsys.disabled()``). With capture off, what the flow wrote (Prefect's
task states, MLflow's "Created version '1'", Great Expectations' INFO lines, finsent's own progress)
reached `make test`'s output: about 40 lines among the progress dots. So the process's own file
descriptors 1 and 2 point at a temporary file while the flow runs; if the block fails, the file's text
goes to the test's captured stderr, where pytest shows it with the failure.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

import pytest


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()


@contextlib.contextmanager
def _descriptors_to(sink: BinaryIO) -> Iterator[None]:
    _flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        yield
    finally:
        _flush()
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)


@contextlib.contextmanager
def flow_in_this_process(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    with tempfile.TemporaryFile() as sink:
        try:
            with capsys.disabled(), _descriptors_to(sink):
                yield
        except BaseException:
            sink.seek(0)
            sys.stderr.write(sink.read().decode("utf-8", "replace"))
            raise
