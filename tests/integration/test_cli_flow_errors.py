"""A failing flow command says it once: `finsent train` with a bad batch ends with one error line and
no traceback on the console; the log file it names keeps Prefect's records with their tracebacks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from finsent.config import Params
from finsent.data.versioning import ensure_data, recorded_md5

pytestmark = pytest.mark.integration


def test_a_failing_train_prints_one_error_line_and_keeps_the_tracebacks_in_its_log(project, prefect_api_url):
    ensure_data(project, Params().data)
    version_before = recorded_md5(project)
    bad = project / "data" / "batches" / "bad.csv"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("text,label\nAcme soars,bullish\n,2\nAcme falls,sideways\n")
    env = {**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}, "PREFECT_API_URL": prefect_api_url}
    finsent = str(Path(sys.executable).with_name("finsent"))
    done = subprocess.run([finsent, "--root", str(project), "train"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stdout == ""  # no result, and nothing else on stdout
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    first_error = next(i for i, line in enumerate(lines) if line.startswith("finsent: error:"))
    assert "validation failed" in lines[first_error] and lines[first_error:] == done.stderr.strip().splitlines()[first_error:]
    log = next(line.split(": ", 2)[-1] for line in lines if line.startswith("finsent: the full log"))
    assert "Traceback" in Path(log).read_text() and "ValidationError" in Path(log).read_text()
    assert recorded_md5(project) == version_before
