"""`finsent ui` as users run it: `finsent monitor backfill-ui` fills the workspace from window folders on
disk, then `finsent ui`, in a process of its own, serves Evidently's UI on a free loopback port. Its REST
API lists the model's project, its dashboard and the series a panel plots; its frontend, in headless
Chromium, calls its own API on that port (the screenshot is the README's); a RemoteWorkspace writes a
window through it once; SIGTERM to `finsent ui` stops the Evidently service too."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from finsent.cli import main
from finsent.config import load_params, replace
from finsent.monitoring.workspace import HEALTH, TAB, backfill, record_window
from testkit.browser import find_chromium, headless_page
from testkit.evidently_windows import verdict, write_window
from testkit.local_services import free_port, wait_for

pytestmark = pytest.mark.integration

READY_TIMEOUT_S = 300  # the Evidently import and start: ~10 s idle, several times that on a busy CI machine
WINDOWS = ("20260105T090000000000Z", "20260106T090000000000Z", "20260107T090000000000Z")


def finsent(project: Path, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([str(Path(sys.executable).with_name("finsent")), "--root", str(project), *args], **kw)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_finsent_ui_serves_the_model_health_dashboard(tmp_path, capsys):
    project = tmp_path / "project"
    project.mkdir()
    (project / "params.yaml").write_text(f"workspace:\n  start_timeout_s: {READY_TIMEOUT_S}\n")
    write_window(project, WINDOWS[0], verdict(fired=("embeddings",)))
    write_window(project, WINDOWS[1], verdict(labelled=False))
    write_window(project, WINDOWS[2], verdict(fired=("prediction", "text_content"), shares=(0.4, 0.3, 0.3)))

    code = main(["--root", str(project), "monitor", "backfill-ui"])  # here: `finsent ui` gets the process of its own
    out, err = capsys.readouterr()
    assert code == 0, err[-2000:]
    summary = json.loads(out)  # standard output holds the JSON result only
    assert summary["snapshots_added"] == 8 and sorted(summary["windows_added"]) == list(WINDOWS)

    port = free_port()
    log = project / "ui.log"
    ui = finsent(project, "ui", "--port", str(port), stdout=subprocess.PIPE, stderr=log.open("w"), text=True, start_new_session=True)
    lines: list[str] = []

    def read_stdout() -> None:
        for line in ui.stdout or ():
            lines.append(line)

    threading.Thread(target=read_stdout, daemon=True).start()
    try:

        def announced():
            assert ui.poll() is None, f"finsent ui exited {ui.returncode}: {log.read_text()[-2000:]}"
            try:
                return json.loads("".join(lines))
            except ValueError:
                return None

        info = wait_for(announced, READY_TIMEOUT_S, "finsent ui's JSON", every_s=0.5)
        url = f"http://127.0.0.1:{port}"
        assert info["evidently_ui"] == url and info["project"]["name"] == "finsent-sentiment"
        assert info["mlflow_ui"]["url"] and info["prefect_ui"]["url"] == "http://127.0.0.1:4200"
        assert "Evidently UI, model health of finsent-sentiment" in log.read_text()
        project_id = info["project"]["id"]

        # The REST API (the paths its frontend calls): the project, its dashboard, its snapshots, a series.
        api = httpx.Client(base_url=url, timeout=60)
        assert [p["name"] for p in api.get("/api/projects").raise_for_status().json()] == ["finsent-sentiment"]
        dashboard = api.get(f"/api/v2/dashboards/{project_id}").raise_for_status().json()
        assert [t["title"] for t in dashboard["tabs"]] == [TAB]
        assert sorted(p["title"] for p in dashboard["panels"]) == sorted(panel.title for panel in HEALTH)
        assert len(api.get(f"/api/projects/{project_id}/snapshots").raise_for_status().json()) == 8
        rows = next(p for p in dashboard["panels"] if p["title"] == "Rows scored")
        filters = [{k: v[k] for k in ("tags", "metadata", "metric", "metric_labels")} for v in rows["values"]]
        series = api.post(f"/api/v2/snapshots/{project_id}/data_series_batch", json={"series_filter": filters}).raise_for_status().json()
        points = {s["params"]["series"]: [v for v in s["values"] if v is not None] for s in series["series"]}
        assert points == {"rows.scored": [150.0] * 3, "rows.window": [150.0] * 3, "rows.skipped": [3.0] * 3, "rows.labelled": [120.0] * 2}
        assert [s["timestamp"][:10] for s in series["sources"]] == ["2026-01-05", "2026-01-06", "2026-01-07"]

        # The frontend calls its API on the origin it was loaded from, whatever the port: the project's
        # name reaches the page only through /api/projects on this port.
        index = api.get("/").raise_for_status().text
        assert '<div id="root">' in index
        if find_chromium():  # the rest of the test runs without one
            shots = Path(os.environ.get("FINSENT_SCREENSHOT_DIR") or tmp_path)
            shots.mkdir(parents=True, exist_ok=True)
            with headless_page(1400, 3800) as browsed:
                browsed.page.goto(f"{url}/")
                browsed.expect(browsed.page.get_by_text("finsent-sentiment").first).to_be_visible(timeout=60_000)
                browsed.page.goto(f"{url}/projects/{project_id}")
                for panel in HEALTH:  # every panel of the Model health tab is drawn on the project page
                    browsed.expect(browsed.page.get_by_text(panel.title, exact=True).first).to_be_visible(timeout=60_000)
                browsed.page.wait_for_load_state("networkidle")
                browsed.page.screenshot(path=str(shots / "evidently-model-health.png"), full_page=True)
            assert browsed.problems == []
            assert (shots / "evidently-model-health.png").stat().st_size > 50_000  # charts drawn, not a blank page

        # A RemoteWorkspace (workspace.location = the service's URL) adds a new window once.
        remote = replace(load_params(project / "params.yaml"), workspace={"location": url})
        new = write_window(project, "20260108T090000000000Z", verdict(labelled=False))
        assert record_window(remote, project, new, log=lambda _: None) == ["drift", "health"]
        again = backfill(remote, project, log=lambda _: None)
        assert again.windows_added == {} and len(again.already_present) == 4 and not again.dashboard.added
        assert len(api.get(f"/api/projects/{project_id}/snapshots").raise_for_status().json()) == 10

        # SIGTERM to finsent ui alone stops the Evidently service it started.
        ui.send_signal(signal.SIGTERM)
        assert ui.wait(60) == 0
        wait_for(lambda: not port_open(port), 30, "the Evidently service to stop")
    finally:
        if ui.poll() is None:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait(10)
