"""Promotion gate decisions, audit log, rollback, manual promotion and lineage on a real MLflow
SQLite store; the models are synthetic (see testkit/registry_synthetic.py), the registry is not mocked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finsent.data import versioning
from finsent.data.frames import read_dataset
from finsent.registry import ops as registry_ops
from finsent.registry import register
from finsent.registry.versions import CHALLENGER, CHAMPION
from finsent.tracking import RegistryError
from testkit import registry_synthetic as rs

pytestmark = pytest.mark.integration


@pytest.fixture
def store(project, monkeypatch):
    """The project with data/ versioned and a relaxed gate; MLflow in project/mlflow.db."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    p = rs.relaxed_params(project)
    versioning.ensure_data(project, p.data, log=lambda *_: None)
    return project, p


def gate_tags(root: Path, version: str) -> dict[str, str]:
    tags = rs.client_for(root).get_model_version(rs.MODEL, version).tags
    return {k: v for k, v in tags.items() if k.startswith("gate.")}


def test_gate_promotes_only_a_clearly_better_challenger_and_logs_every_decision(store, tiny_model_dir):
    root, p = store
    first = rs.register_synthetic(root, tiny_model_dir, 0.70)
    assert (first.version, first.promoted, first.previous_champion_version) == ("1", True, None)

    worse = rs.register_synthetic(root, tiny_model_dir, 0.55)
    assert not worse.promoted and worse.champion_version == "1"
    assert {"paired_gain", "class_recall"} <= set(gate_tags(root, "2")["gate.failed"].split(","))

    # Same confusion matrix, different rows wrong: the paired test sees no gain.
    equal = rs.register_synthetic(root, tiny_model_dir, 0.70, swap=3)
    tags = gate_tags(root, "3")
    assert not equal.promoted and rs.champion(root) == "1"
    assert "paired_gain" in tags["gate.failed"].split(",")
    assert float(tags["gate.gain"]) == pytest.approx(0.0, abs=1e-9) and float(tags["gate.gain_ci_low"]) < 0

    better = rs.register_synthetic(root, tiny_model_dir, 0.90)
    assert better.promoted and better.previous_champion_version == "1" and better.champion_version == "4"
    assert gate_tags(root, "4")["gate.decision"] == "promoted" and float(gate_tags(root, "4")["gate.gain_ci_low"]) > 0
    assert rs.aliases(root) == {"1": [], "2": [], "3": [], "4": [CHALLENGER, CHAMPION]}

    events = registry_ops.history(p, root)
    assert [e["version"] for e in events] == ["4", "3", "2", "1"]  # newest first
    assert [e["promoted"] for e in events] == ["true", "false", "false", "true"]
    assert [(e["champion_before"], e["champion_after"]) for e in events] == [("1", "4"), ("1", "1"), ("1", "1"), ("", "1")]
    assert all(e["action"] == "gate" and e["reasons"] and e["run_id"] for e in events)
    assert any(r.startswith("paired_gain:") for r in events[1]["reasons"])
    assert events[0]["numbers"]["gain"] == gate_tags(root, "4")["gate.gain"]
    assert events[0]["failed"] == "none" and "paired_gain" in events[1]["failed"]
    # The whole gate record (every check with its numbers) is kept with each decision.
    record = decision_record(root, events[1]["audit_run_id"])
    assert record["promote"] is False and {c["name"] for c in record["checks"]} >= {"paired_gain", "class_recall", "slices"}

    assert registry_ops.history(p, root, limit=2) == events[:2]


def decision_record(root: Path, audit_run_id: str) -> dict:
    path = rs.client_for(root).download_artifacts(audit_run_id, "decision.json", str(root / "artifacts"))
    return json.loads(Path(path).read_text())


def test_rollback_restores_the_previous_champion_step_by_step(store, tiny_model_dir, monkeypatch):
    root, p = store
    monkeypatch.setattr(registry_ops, "PAGE_SIZE", 2)  # the replay must read the log across pages
    for share in (0.60, 0.75, 0.90):
        assert rs.register_synthetic(root, tiny_model_dir, share).promoted
    assert rs.champion(root) == "3"

    assert registry_ops.rollback(p, root) == {"model": rs.MODEL, "champion_before": "3", "champion_after": "2"}
    assert rs.champion(root) == "2"
    assert rs.client_for(root).get_model_version(rs.MODEL, "3").tags["rolled_back"] == "true"
    assert registry_ops.rollback(p, root)["champion_after"] == "1"
    with pytest.raises(RegistryError, match="no previous champion"):
        registry_ops.rollback(p, root)
    assert rs.champion(root) == "1"
    assert rs.aliases(root) == {"1": [CHAMPION], "2": [], "3": [CHALLENGER]}  # one champion, always

    # A manual promotion is a champion change like any other: rollback undoes it.
    assert registry_ops.promote(p, root, "3", reason="hotfix verified offline")["champion_before"] == "1"
    assert rs.champion(root) == "3"
    assert registry_ops.rollback(p, root)["champion_after"] == "1"

    events = registry_ops.history(p, root, limit=None)
    assert [(e["action"], e["version"], e["champion_before"], e["champion_after"]) for e in events[:4]] == [
        ("rollback", "1", "3", "1"),
        ("manual-promote", "3", "1", "3"),
        ("rollback", "1", "2", "1"),
        ("rollback", "2", "3", "2"),
    ]
    assert events[1]["reasons"] == ["hotfix verified offline"]
    assert [int(e["seq"]) for e in events] == list(range(len(events), 0, -1))


def test_bad_requests_fail_clearly_and_leave_the_champion_untouched(store, tiny_model_dir):
    root, p = store
    # Empty registry.
    assert registry_ops.history(p, root) == []
    with pytest.raises(RegistryError, match="no champion to roll back"):
        registry_ops.rollback(p, root)
    with pytest.raises(RegistryError, match="has no version '1'"):
        registry_ops.lineage(p, root, "1")
    with pytest.raises(RegistryError, match="has no version '1'"):
        registry_ops.promote(p, root, "1", reason="x")

    rs.register_synthetic(root, tiny_model_dir, 0.70)
    with pytest.raises(RegistryError, match="no previous champion"):
        registry_ops.rollback(p, root)
    for version in ("7", "abc", "-1"):
        with pytest.raises(RegistryError, match=f"has no version '{version}'"):
            registry_ops.promote(p, root, version, reason="x")
    with pytest.raises(RegistryError, match="needs a reason"):
        registry_ops.promote(p, root, "1", reason="  ")
    assert rs.champion(root) == "1"

    rs.register_synthetic(root, tiny_model_dir, 0.90)
    client = rs.client_for(root)
    v1_files = Path(client.get_model_version_download_uri(rs.MODEL, "1").removeprefix("file://"))
    next(v1_files.rglob("model.safetensors")).unlink()  # the weights alone
    with pytest.raises(RegistryError, match="version 1: model artifacts are missing.*no config.json and weights"):
        registry_ops.rollback(p, root)
    assert rs.champion(root) == "2"
    rs.delete_model_files(root, "1")  # the whole folder
    for attempt in (lambda: registry_ops.rollback(p, root), lambda: registry_ops.promote(p, root, "1", reason="x")):
        with pytest.raises(RegistryError, match="version 1: model artifacts are missing"):
            attempt()
        assert rs.champion(root) == "2"
    assert [e["action"] for e in registry_ops.history(p, root)] == ["gate", "gate"]  # failed requests change nothing


def test_registering_incomplete_outputs_registers_nothing(store, tiny_model_dir, tmp_path):
    root, p = store
    rs.register_synthetic(root, tiny_model_dir, 0.70)
    eval_df = read_dataset(rs.eval_path(root, p))
    probs = rs.synthetic_probs(eval_df["label"].to_numpy(), rs.correct_mask(eval_df["label"].to_numpy(), 0.9))
    train_dir, eval_dir = rs.write_model_dirs(tmp_path / "out", tiny_model_dir, eval_df, probs, p, rs.train_path(root, p))
    args = (p, root, train_dir, eval_dir, rs.eval_path(root, p), versioning.current_version(root), {"success": True})

    (eval_dir / "predictions.csv").write_text("label,p_bearish,p_bullish,p_neutral\n0,1,0,0\n")
    with pytest.raises(RegistryError, match="predictions.csv has 1 rows, the evaluation set 200"):
        register.run(*args, behaviour=rs.passing_behaviour())
    (eval_dir / "predictions.csv").unlink()
    (train_dir / "model" / "config.json").unlink()
    (train_dir.parent / "data" / "train.csv").unlink()
    with pytest.raises(RegistryError, match=r"missing .*model/config.json, .*predictions.csv, .*data/train.csv"):
        register.run(*args, behaviour=rs.passing_behaviour())
    assert rs.aliases(root) == {"1": [CHALLENGER, CHAMPION]}


def test_a_champion_that_cannot_be_scored_stops_the_gate_without_promoting(store, tiny_model_dir):
    root, p = store
    rs.register_synthetic(root, tiny_model_dir, 0.70)
    rs.delete_model_files(root, "1", with_run=True)  # neither logged predictions nor a model to score
    with pytest.raises(RegistryError, match="champion finsent-sentiment version 1 cannot be scored"):
        rs.register_synthetic(root, tiny_model_dir, 0.90)
    assert rs.aliases(root) == {"1": [CHAMPION], "2": [CHALLENGER]}
    assert rs.client_for(root).get_model_version(rs.MODEL, "2").tags["gate.decision"] == "error"
    latest = registry_ops.history(p, root)[0]
    assert (latest["action"], latest["version"], latest["promoted"], latest["champion_after"]) == ("gate-error", "2", "false", "1")
    # The operator's way out: promote the healthy version by hand.
    registry_ops.promote(p, root, "2", reason="champion 1 lost its files")
    assert rs.champion(root) == "2"


def test_lineage_shows_run_params_data_version_validation_and_metrics(store, tiny_model_dir):
    root, p = store
    summary = rs.register_synthetic(root, tiny_model_dir, 0.80)
    out = registry_ops.lineage(p, root, "1")
    assert out["run_id"] == summary.run_id and sorted(out["aliases"]) == [CHALLENGER, CHAMPION]
    assert out["data"]["dvc_md5"] == versioning.recorded_md5(root)
    commit = versioning.current_version(root).git_commit
    assert out["data"]["git_commit"] == commit and out["code"]["commit"] == commit
    assert out["validation"] == {"success": True, "rows": 200}
    assert out["params"]["gate.max_ece"] == "1.0" and out["params"]["train.base_model"] == p.train.base_model
    assert out["metrics"]["macro_f1"] == pytest.approx(float(out["gate"]["macro_f1"]), abs=1e-3)
    assert out["gate"]["decision"] == "promoted"
    assert out["evaluation"]["rows"] == "200" and len(out["evaluation"]["sha256"]) == 64
    assert "finsent data checkout 1" in out["restore_data"]
