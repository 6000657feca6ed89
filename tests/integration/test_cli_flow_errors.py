"""A failing flow command says it once: `finsent train` (its own process, testkit.forked) with a bad
batch ends with one error line and no traceback on the console; the log file it names keeps Prefect's
records with their tracebacks."""

import os
from pathlib import Path

import pytest

from finsent.config import Params
from finsent.data.versioning import ensure_data, recorded_md5
from testkit import forked

pytestmark = pytest.mark.integration


def test_a_failing_train_prints_one_error_line_and_keeps_the_tracebacks_in_its_log(project, prefect_api_url, tmp_path):
    ensure_data(project, Params().data)
    version_before = recorded_md5(project)
    bad = project / "data" / "batches" / "bad.csv"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("text,label\nAcme soars,bullish\n,2\nAcme falls,sideways\n")
    env = {**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}, "PREFECT_API_URL": prefect_api_url}
    out, err = tmp_path / "train.out", tmp_path / "train.err"
    train = forked.finsent(["--root", str(project), "train"], env=env, cwd=project, stdout=out, stderr=err)
    code, stdout, stderr = train.wait(300), out.read_text(), err.read_text()
    assert code == 2, stderr[-3000:]
    assert stdout == ""  # no result, and nothing else on stdout
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr, stderr[-3000:]
    first_error = next(i for i, line in enumerate(lines) if line.startswith("finsent: error:"))
    assert "validation failed" in lines[first_error] and lines[first_error:] == stderr.strip().splitlines()[first_error:]
    log = next(line.split(": ", 2)[-1] for line in lines if line.startswith("finsent: the full log"))
    assert "Traceback" in Path(log).read_text() and "ValidationError" in Path(log).read_text()
    assert recorded_md5(project) == version_before
