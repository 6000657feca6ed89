"""`finsent registry ...` and `finsent data checkout MODEL_VERSION` through the real CLI entry point,
on a throw-away project with its own git repo, DVC remote and SQLite MLflow store."""

from __future__ import annotations

import json

import pytest

from finsent.cli import main
from finsent.data import versioning
from testkit import registry_synthetic as rs

pytestmark = pytest.mark.integration


@pytest.fixture
def finsent(project, capsys, monkeypatch):
    """Run `finsent --root PROJECT ARGS...`; returns (exit code, parsed stdout or None, stderr)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def call(*args: str):
        capsys.readouterr()
        code = main(["--root", str(project), *args])
        out, err = capsys.readouterr()
        return code, json.loads(out) if out.strip() else None, err

    return call


def test_registry_commands_and_data_checkout_of_a_model_version(project, tiny_model_dir, finsent):
    p = rs.relaxed_params(project)
    versioning.ensure_data(project, p.data, log=lambda *_: None)

    # An empty registry: nothing to show, every request on a version fails with exit code 2.
    assert finsent("registry", "history")[:2] == (0, [])
    for args, message in [
        (("registry", "rollback"), "no champion to roll back"),
        (("registry", "lineage", "1"), "has no version '1'"),
        (("registry", "promote", "1", "--reason", "x"), "has no version '1'"),
        (("data", "checkout", "1"), "has no version '1'"),
    ]:
        code, out, err = finsent(*args)
        assert (code, out) == (2, None) and err.startswith("finsent: error:") and message in err, (args, err)

    data_v1 = versioning.recorded_md5(project)
    rs.register_synthetic(project, tiny_model_dir, 0.70)
    batch = project / "new.csv"
    batch.write_text("text,label\nAcme beats estimates,1\nAcme misses estimates,0\nAcme holds meeting,2\n")
    versioning.add_batch(project, p.data, batch, "extra", log=lambda *_: None)
    data_v2 = versioning.recorded_md5(project)
    assert data_v2 != data_v1
    assert rs.register_synthetic(project, tiny_model_dir, 0.90).promoted

    code, shown, _ = finsent("registry", "show")
    assert code == 0 and [(v["version"], v["aliases"]) for v in shown["versions"]] == [("1", []), ("2", ["challenger", "champion"])]
    code, lineage, _ = finsent("registry", "lineage", "1")
    assert code == 0 and lineage["data"]["dvc_md5"] == data_v1 and lineage["gate"]["decision"] == "promoted"

    # The data each version was trained on comes back from DVC.
    extra = project / p.data.data_dir / p.data.batches_dir / "extra.csv"
    code, restored, _ = finsent("data", "checkout", "1")
    assert code == 0 and restored["dvc_md5"] == data_v1 == versioning.recorded_md5(project) and not extra.exists()
    assert versioning.is_in_sync(project)
    code, restored, _ = finsent("data", "checkout", "2")
    assert code == 0 and restored["dvc_md5"] == data_v2 and extra.is_file()

    code, rolled, _ = finsent("registry", "rollback")
    assert code == 0 and (rolled["champion_before"], rolled["champion_after"]) == ("2", "1")
    code, events, _ = finsent("registry", "history", "--limit", "5")
    assert code == 0 and [(e["action"], e["version"]) for e in events] == [("rollback", "1"), ("gate", "2"), ("gate", "1")]

    # Bad requests leave the champion where it is.
    for args, message in [
        (("registry", "promote", "9", "--reason", "x"), "has no version '9'"),
        (("registry", "lineage", "abc"), "has no version 'abc'"),
        (("registry", "rollback"), "no previous champion"),
        (("registry", "history", "--limit", "0"), "limit must be >= 1"),
        (("data", "checkout", "0123456789abcdef0123456789abcdef"), "in no DVC cache or reachable remote"),
    ]:
        code, out, err = finsent(*args)
        assert (code, out) == (2, None) and message in err, (args, err)
    assert rs.champion(project) == "1"
    assert versioning.recorded_md5(project) == data_v2
