"""Two training flows finishing at once: two OS processes register and gate their models against the
same SQLite MLflow store at the same moment. The promotion lock must judge them one after the other."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from finsent.data import versioning
from finsent.registry import ops as registry_ops
from finsent.registry.versions import CHALLENGER, CHAMPION
from testkit import forked
from testkit import registry_synthetic as rs

pytestmark = pytest.mark.integration


def start_registration(
    root: Path, model_dir: Path, share: float, tag: str, start_file: Path, parties: int = 2
) -> tuple[forked.Forked, Path]:
    result = root / "artifacts" / f"result-{tag}.json"
    spec = {
        "root": str(root),
        "model_dir": str(model_dir),
        "share": share,
        "tag": tag,
        "start_file": str(start_file),
        "result": str(result),
        "barrier_dir": str(root / "artifacts" / "at-lock"),
        "parties": parties,
    }
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    log = root / "artifacts" / f"registration-{tag}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    process = forked.Forked("testkit.registry_synthetic:_child", [spec], env=env, cwd=root, stdout=log, stderr=log, argv=["registration"])
    return process, result


@pytest.mark.slow  # two processes register at once
@pytest.mark.parametrize(
    "with_champion, lock", [(True, "file"), (False, "advisory")], ids=["champion-file-lock", "fresh-store-advisory-lock"]
)
def test_two_registrations_at_once_leave_one_champion_the_better_one(project, tiny_model_dir, monkeypatch, request, with_champion, lock):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    if lock == "advisory":  # as promoters on two machines would: the lock is in PostgreSQL, not a file
        import uuid

        import yaml

        from testkit import local_services

        lock_url = local_services.create_database(request.getfixturevalue("postgres"), f"lock_{uuid.uuid4().hex[:12]}")
        settings = yaml.safe_load((project / "params.yaml").read_text())
        settings["register"]["lock_url"] = lock_url
        (project / "params.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    p = rs.relaxed_params(project)
    versioning.ensure_data(project, p.data, log=lambda *_: None)
    if with_champion:  # both challengers beat it; one also beats the other
        assert rs.register_synthetic(project, tiny_model_dir, 0.60).promoted
    # Else both open a store that does not exist yet: creating it must not collide either.
    # Judged against a stale champion, both would be promoted and the last writer, possibly the
    # lesser one, would be champion.
    start = project / "start"
    runs = {share: start_registration(project, tiny_model_dir, share, f"s{share}", start) for share in (0.90, 0.75)}
    start.touch()
    summaries = {}
    try:
        for share, (process, result) in runs.items():
            code = process.wait(timeout=300)
            assert code == 0, (project / "artifacts" / f"registration-s{share}.log").read_text()[-3000:]
            summaries[share] = json.loads(result.read_text())
    finally:
        for process, _ in runs.values():
            if process.poll() is None:
                process.kill()
                process.wait()

    # They did overlap (the children wait for each other at the lock): both runs had started before
    # the first of their decisions.
    client = rs.client_for(project)
    started = [client.get_run(s["run_id"]).info.start_time for s in summaries.values()]
    events = list(reversed(registry_ops.history(p, project)))
    assert max(started) < min(e["time_ms"] for e in events[-2:])

    best = summaries[0.90]["version"]
    assert {s["version"] for s in summaries.values()} == ({"2", "3"} if with_champion else {"1", "2"})
    assert rs.champion(project) == best
    assert [v for v, names in rs.aliases(project).items() if CHAMPION in names] == [best]
    assert sum(CHALLENGER in names for names in rs.aliases(project).values()) == 1

    # Each decision was made against the champion the previous one left, in the order of the log.
    assert [e["action"] for e in events] == ["gate"] * len(events)
    assert [int(e["seq"]) for e in events] == list(range(1, 4 if with_champion else 3))
    for before, after in zip(events, events[1:]):
        assert after["champion_before"] == before["champion_after"]
    assert events[-1]["champion_after"] == best
    # The file lock next to the SQLite store was used exactly when no lock database was set.
    assert any(project.rglob("*.promotion.lock")) == (lock == "file")
    for summary in summaries.values():
        event = next(e for e in events if e["version"] == summary["version"])
        assert event["promoted"] == str(summary["promoted"]).lower()
        assert event["champion_before"] == (summary["previous_champion_version"] or "")
    # Whatever the order: the better one is promoted; the lesser one only if it came first.
    assert summaries[0.90]["promoted"]
    lesser_first = events[-2]["version"] == summaries[0.75]["version"]
    assert summaries[0.75]["promoted"] == lesser_first
