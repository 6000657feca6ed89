"""The command line on a throw-away project (git, DVC remote): bad input ends with one clear line and
exit code 2, and changes nothing."""

import pandas as pd
import pytest

from finsent.cli import main
from finsent.data.versioning import ensure_data, recorded_md5

pytestmark = pytest.mark.integration


def run_cli(project, *args):
    return main(["--root", str(project), *args])


def test_data_add_validates_then_versions(project, tmp_path, capsys):
    from finsent.config import DataParams

    ensure_data(project, DataParams())
    before = recorded_md5(project)
    good = tmp_path / "good.csv"
    pd.DataFrame({"text": ["Acme shares soar after record profit", "Acme warns on margins"], "label": ["bullish", "bearish"]}).to_csv(
        good, index=False
    )
    assert run_cli(project, "data", "add", str(good)) == 0
    assert recorded_md5(project) != before
    assert (project / "data" / "batches" / "good.csv").is_file()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        ("text,label\ncaf\xe9 shares up,1\n".encode("latin-1"), "UTF-8"),
        (b"headline,sentiment\nup,1\n", "label"),
        (b"text,label\nAcme soars,very good\n", "label_raw"),
    ],
)
def test_data_add_rejects_bad_batches_and_keeps_them_aside(project, tmp_path, capsys, content, message):
    from finsent.config import DataParams

    ensure_data(project, DataParams())
    before = recorded_md5(project)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    assert run_cli(project, "data", "add", str(bad)) == 2
    err = capsys.readouterr().err
    assert err.startswith("finsent: error:") and message in err
    assert recorded_md5(project) == before
    assert not (project / "data" / "batches").exists()
    assert list((project / "quarantine").rglob("bad.csv"))


def test_missing_file_and_bad_params(project, capsys):
    assert run_cli(project, "data", "add", str(project / "nope.csv")) == 2
    assert "file not found" in capsys.readouterr().err
    assert run_cli(project, "--set", "train.epochz=1", "stage", "train") == 2
    assert "epochz" in capsys.readouterr().err


def test_missing_base_model_fails_the_train_stage_clearly(project, capsys):
    code = run_cli(project, "--set", f"train.base_model={project}/no-such-model", "stage", "train")
    assert code == 2
    assert "does not exist" in capsys.readouterr().err or "not found" in capsys.readouterr().err


def test_predict_without_champion_is_a_clear_error(project, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert run_cli(project, "predict", "Acme beats") == 2
    assert "champion" in capsys.readouterr().err
