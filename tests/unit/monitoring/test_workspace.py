"""Model health in Evidently's UI: windows into a real local Evidently workspace, the dashboard made once,
backfill once per window, and the panels' series read back the way `evidently ui` reads them."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path

import pytest

from finsent.config import ConfigError, Params, WorkspaceParams, from_dict, replace
from finsent.monitoring import workspace
from finsent.monitoring.workspace import HEALTH, TAB, Window, backfill, health_values, record_window, session
from testkit.evidently_windows import verdict, write_window
from testkit.local_services import free_port

P = Params()
W1, W2, W3 = "20260105T090000000000Z", "20260105T100000000000Z", "20260105T110000000000Z"


def local_workspace(root: Path):
    from evidently.ui.workspace import Workspace

    return Workspace.create(str(root / "artifacts" / "evidently"))


def only_project(root: Path):
    projects = local_workspace(root).list_projects()
    assert [p.name for p in projects] == [P.register.model_name]
    return projects[0]


def runs(root: Path) -> list:
    ws, project = local_workspace(root), only_project(root)
    return [ws.get_run(project.id, sid) for sid in ws.list_runs(project.id)]


# --- the numbers (pure) ---------------------------------------------------------------------------


def test_health_values_are_read_off_the_window_summary(tmp_path):
    labelled = Window.read(write_window(tmp_path, W1, verdict(fired=("embeddings", "prediction")), reports=False))
    values = health_values(labelled)
    assert values["signal.embeddings.value"] == 0.6 and values["signal.embeddings.threshold"] == 0.55
    assert values["signals.fired_share"] == pytest.approx(2 / 5) and values["signals.fired"] == 2
    assert values["classes.bullish.share"] == 0.3
    assert values["rows.scored"] == 150 and values["rows.skipped"] == 3  # files scored before are not counted
    assert values["rows.window"] == 150
    assert values["quality.accuracy"] == 0.8 and values["quality.macro_f1"] == 0.71 and values["rows.labelled"] == 120
    assert values["descriptor.threshold"] == 0.1 and "descriptor.text_length.value" in values

    unlabelled = health_values(Window.read(write_window(tmp_path, W2, verdict(labelled=False), reports=False)))
    assert not any(k.startswith("quality.") or k.startswith("signal.performance") for k in unlabelled)
    assert unlabelled["signals.fired_share"] == 0.0

    no_drift = health_values(Window.read(write_window(tmp_path, W3, None, reports=False)))  # too few rows for drift
    assert set(no_drift) == {"rows.scored", "rows.window", "rows.skipped"}


def test_the_label_free_estimate_is_plotted_beside_realised_accuracy(tmp_path):
    folder = write_window(tmp_path, W1, verdict(labelled=False), reports=False)
    summary = json.loads((folder / "summary.json").read_text())
    summary["estimated_performance"] = {
        "chosen": "doubly_robust",
        "methods": {
            "cbpe": {"estimated_accuracy": 0.9, "accuracy_low": 0.88, "accuracy_high": 0.92, "estimated_macro_f1": 0.85},
            "doubly_robust": {"estimated_accuracy": 0.78, "accuracy_low": 0.74, "accuracy_high": 0.81, "estimated_macro_f1": 0.7},
        },
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    values = health_values(Window.read(folder))
    assert (values["estimate.accuracy"], values["estimate.accuracy_low"], values["estimate.accuracy_high"]) == (0.78, 0.74, 0.81)
    assert values["estimate.macro_f1"] == 0.7 and "quality.accuracy" not in values  # no labels: the estimate alone
    [panel] = [p for p in HEALTH if any(s.key == "estimate.accuracy" for s in p.series)]
    assert {"quality.accuracy", "estimate.accuracy"} <= {s.key for s in panel.series}  # side by side


def test_a_folder_that_is_not_a_finished_window_is_named(tmp_path):
    with pytest.raises(workspace.WorkspaceError, match="no summary.json"):
        Window.read(write_window(tmp_path, W1, verdict(), done=False))
    (tmp_path / "notes").mkdir()
    with pytest.raises(workspace.WorkspaceError, match="not a monitoring window"):
        Window.read(tmp_path / "notes")


def test_workspace_settings_are_checked_when_params_load():
    assert Params().workspace == WorkspaceParams()
    for bad, match in (({"port": 0}, "TCP port"), ({"location": "ftp://host/ws"}, "http"), ({"start_timeout_s": 0}, "> 0")):
        with pytest.raises(ConfigError, match=match):
            from_dict(WorkspaceParams, bad, "workspace")


# --- the workspace --------------------------------------------------------------------------------


def test_each_window_adds_its_snapshots_with_its_start_time(tmp_path):
    logged: list[str] = []
    assert record_window(P, tmp_path, write_window(tmp_path, W1, verdict()), log=logged.append) == ["drift", "performance", "health"]
    assert record_window(P, tmp_path, write_window(tmp_path, W2, verdict(labelled=False)), log=logged.append) == ["drift", "health"]
    assert "window 20260105T090000000000Z added (drift, performance, health)" in logged[0]

    snapshots = runs(tmp_path)
    got = sorted((s.timestamp, s.metadata["finsent_window"], s.metadata["finsent_kind"]) for s in snapshots)
    first, second = datetime(2026, 1, 5, 9), datetime(2026, 1, 5, 10)
    assert got == [
        (first, W1, "drift"), (first, W1, "health"), (first, W1, "performance"), (second, W2, "drift"), (second, W2, "health"),
    ]  # fmt: skip
    health = next(s for s in snapshots if s.metadata["finsent_window"] == W1 and s.metadata["finsent_kind"] == "health")
    assert set(health.tags) == {"finsent-health", f"window-{W1}"} and health.metadata["model_version"] == "3"
    assert {r.value for r in health.metric_results.values()} >= {0.8, 0.71, 150.0}


def test_the_dashboard_is_made_once_and_kept_in_step(tmp_path):
    from evidently.sdk.panels import text_panel

    with session(P, tmp_path) as (ws, project, first):
        assert first.added == [panel.title for panel in HEALTH]
        project.dashboard.add_panel(text_panel("Our notes"), tab="Notes")  # somebody's own tab
    before = local_workspace(tmp_path).get_dashboard(only_project(tmp_path).id)
    with session(P, tmp_path) as (ws, project, second):
        assert (second.added, second.updated, second.removed, second.unchanged) == ([], [], [], len(HEALTH))
    after = ws.get_dashboard(project.id)
    assert after.dict() == before.dict()  # not a panel more, not an id changed
    ours = next(t for t in after.tabs if t.title == TAB)
    assert len(ours.panels) == len(HEALTH) == len({p.title for p in after.panels if p.id in ours.panels})
    assert [t.title for t in after.tabs] == [TAB, "Notes"]

    stale = after.copy(deep=True)  # a panel of an older finsent: updated in place, under its id
    panel = next(p for p in stale.panels if p.title == "Rows scored")
    panel.subtitle = "old words"
    ws.save_dashboard(project.id, stale)
    with session(P, tmp_path) as (ws, project, third):
        assert third.updated == ["Rows scored"] and not third.added and not third.removed
    assert ws.get_dashboard(project.id).dict() == before.dict()


def test_backfill_adds_each_window_once(tmp_path):
    write_window(tmp_path, W1, verdict(fired=("text_content",)))
    write_window(tmp_path, W2, verdict(labelled=False))
    write_window(tmp_path, W3, None)  # drift not computed: its rows still count
    write_window(tmp_path, "20260105T120000000000Z", verdict(), done=False)  # still running
    (tmp_path / "artifacts" / "monitoring" / "runs" / "scratch").mkdir()

    first = backfill(P, tmp_path, log=lambda _: None)
    assert first.windows_added == {W1: ["drift", "performance", "health"], W2: ["drift", "health"], W3: ["health"]}
    assert first.snapshots_added == 6 and set(first.skipped) == {"20260105T120000000000Z", "scratch"}
    assert len(runs(tmp_path)) == 6

    again = backfill(P, tmp_path, log=lambda _: None)
    assert again.windows_added == {} and again.already_present == [W1, W2, W3] and not again.dashboard.added
    assert len(runs(tmp_path)) == 6

    # A window added in part (the health snapshot lost) and a new window: only what is missing goes in.
    ws, project = local_workspace(tmp_path), only_project(tmp_path)
    lost = next(sid for sid in ws.list_runs(project.id) if ws.get_run(project.id, sid).metadata == {**_meta(W2, "health")})
    ws.delete_run(project.id, lost)
    write_window(tmp_path, "20260105T130000000000Z", verdict(labelled=False))
    third = backfill(P, tmp_path, log=lambda _: None)
    assert third.windows_added == {W2: ["health"], "20260105T130000000000Z": ["drift", "health"]}
    assert len(runs(tmp_path)) == 8


def _meta(window: str, kind: str) -> dict:
    return {"finsent_kind": kind, "finsent_window": window, "model_name": P.register.model_name, "model_version": "3"}


def test_each_panel_series_has_a_point_per_window_that_has_its_number(tmp_path):
    """Read back through the storage `evidently ui` serves from, with the filters its frontend posts."""
    from evidently.ui.service.base import SeriesFilter
    from evidently.ui.service.storage.local.base import InMemoryDataStorage

    windows = [
        write_window(tmp_path, W1, verdict(fired=("embeddings",))),
        write_window(tmp_path, W2, verdict(labelled=False)),
        write_window(tmp_path, W3, None),
    ]
    backfill(P, tmp_path, log=lambda _: None)
    expected: dict[str, int] = {}
    for folder in windows:
        for key in health_values(Window.read(folder)):
            expected[key] = expected.get(key, 0) + 1
    assert expected["rows.scored"] == 3 and expected["signal.embeddings.value"] == 2 and expected["quality.accuracy"] == 1

    project = only_project(tmp_path)
    dashboard = local_workspace(tmp_path).get_dashboard(project.id)
    storage = InMemoryDataStorage(str(tmp_path / "artifacts" / "evidently"))
    for panel in dashboard.panels:
        filters = [SeriesFilter(tags=v.tags, metadata=v.metadata, metric=v.metric, metric_labels=v.metric_labels) for v in panel.values]
        response = asyncio.run(storage.get_data_series(project.id, filters, None, None))
        points = {s.params["series"]: sum(v is not None for v in s.values) for s in response.series}
        wanted = {v.metric_labels["series"]: expected.get(v.metric_labels["series"], 0) for v in panel.values}
        assert points == {k: n for k, n in wanted.items() if n}, panel.title
        assert [src.timestamp for src in response.sources] == sorted(src.timestamp for src in response.sources)


def test_a_workspace_that_fails_leaves_the_window_standing(tmp_path):
    folder = write_window(tmp_path, W1, verdict())
    logged: list[str] = []
    down = replace(P, workspace={"location": f"http://127.0.0.1:{free_port()}"})
    assert record_window(down, tmp_path, folder, log=logged.append) is None
    assert "does not answer" in logged[-1] and "backfill-ui" in logged[-1]

    assert record_window(P, tmp_path, write_window(tmp_path, W2, verdict(), done=False), log=logged.append) is None
    assert "no summary.json" in logged[-1]

    off = replace(P, workspace={"record_windows": False})
    assert record_window(off, tmp_path, folder, log=logged.append) is None
    assert not (tmp_path / "artifacts" / "evidently").exists()  # nothing was opened


def test_only_the_numbers_without_full_reports(tmp_path):
    light = replace(P, workspace={"full_reports": False, "location": "ws"})  # a folder relative to the root
    assert record_window(light, tmp_path, write_window(tmp_path, W1, verdict())) == ["health"]
    assert json.loads(next((tmp_path / "ws").glob("*/snapshots/*.json")).read_text())["metadata"]["finsent_kind"] == "health"


def test_finsent_ui_refuses_what_it_cannot_serve_before_starting_anything(tmp_path):
    import socket

    with pytest.raises(workspace.WorkspaceError, match="open it in a browser"):
        workspace.serve_ui(replace(P, workspace={"location": "http://127.0.0.1:9"}), tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(workspace.WorkspaceError, match="--port"):
            workspace.serve_ui(P, tmp_path, port=taken.getsockname()[1])
    assert not (tmp_path / "artifacts").exists()
