"""Schedules on a real Prefect server on loopback: `finsent serve` starts the server and registers the
nightly-retrain and hourly-monitor deployments with their cron schedules, a served interval schedule
fires a flow run that completes, the UI calls its own server's API, and stopping `finsent serve` stops
its server (the last test: the others share that one server).

Everything runs in subprocesses with their own PREFECT_HOME; every wait is bounded."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from flows.serve import ServerError, api_url, port_in_use, start_server, stop_process_group, wait_until_healthy
from testkit.local_services import free_port, prefect_env, wait_for

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"

pytestmark = pytest.mark.integration

TICK_SCRIPT = """
import sys
from datetime import timedelta

from prefect import flow

from flows.serve import serve_deployments


@flow(name="tick")
def tick() -> int:
    return 42


if __name__ == "__main__":
    serve_deployments([tick.to_deployment(name="every-5s", interval=timedelta(seconds=5))], sys.argv[1])
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`finsent serve` on a free port, from a project folder holding only params.yaml."""
    root = tmp_path_factory.mktemp("serve-project")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    port = free_port()
    url = api_url(HOST, port)
    env = prefect_env(
        root / "prefect-home",
        url,
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="1",  # schedule new runs within a second
        PREFECT_RUNNER_POLL_FREQUENCY="1",
    )
    # As a user whose profile names another server (nothing listens there): `finsent serve --port`
    # must use its own server for the deployments and the UI all the same.
    elsewhere = {**env, "PREFECT_API_URL": api_url(HOST, free_port())}
    elsewhere.pop("PREFECT_UI_API_URL", None)
    finsent = Path(sys.executable).with_name("finsent")
    with open(root / "serve.log", "wb") as log:  # closed once the server has stopped
        process = subprocess.Popen(
            [str(finsent), "--root", str(root), "serve", "--host", HOST, "--port", str(port)],
            env=elsewhere,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until_healthy(url, process, timeout_s=180)
            yield {"url": url, "root": root, "env": env, "process": process, "port": port}
        finally:
            stop_process_group(process, timeout_s=60)


def client_for(url: str):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    class Session:
        def __enter__(self):
            self.settings = temporary_settings(updates={PREFECT_API_URL: url})
            self.settings.__enter__()
            self.client = get_client(sync_client=True).__enter__()
            return self.client

        def __exit__(self, *exc):
            self.client.__exit__(*exc)
            self.settings.__exit__(*exc)

    return Session()


def test_finsent_serve_registers_both_deployments_on_their_cron_schedules(served):
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    with client_for(served["url"]) as client:

        def both():
            try:
                return client.read_deployment_by_name("finsent-retrain/nightly-retrain"), client.read_deployment_by_name(
                    "finsent-monitoring/hourly-monitor"
                )
            except Exception:  # noqa: BLE001 - not registered yet
                return None

        retrain, monitor = wait_for(both, 180, "the two deployments")
        with pytest.raises(ServerError, match="already in use"):  # a second server would not start
            start_server(HOST, served["port"])
        assert [s.schedule.cron for s in retrain.schedules] == ["0 2 * * *"]
        assert [s.schedule.cron for s in monitor.schedules] == ["0 * * * *"]
        assert all(s.active for s in retrain.schedules + monitor.schedules)
        assert monitor.parameters["root"] == str(served["root"].resolve())
        assert retrain.parameters["reasons"] == ["schedule"]
        assert monitor.entrypoint == "flows.monitoring.monitoring_flow"

        # The server's scheduler has put the next hourly runs on the calendar.
        def upcoming():
            return client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["hourly-monitor"])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))),
            )

        runs = wait_for(upcoming, 60, "scheduled hourly runs")
        assert all(r.next_scheduled_start_time.minute == 0 for r in runs if r.next_scheduled_start_time)


def test_the_ui_of_a_server_on_another_port_calls_its_own_api(served):
    """The UI reads its API address from /ui-settings: it must be this server's, not port 4200's nor
    the one the environment names (a user's profile)."""
    settings = httpx.get(f"http://{HOST}:{served['port']}/ui-settings", timeout=10).json()
    assert settings["api_url"] == served["url"]
    assert httpx.get(f"http://{HOST}:{served['port']}/", timeout=10).status_code == 200  # the UI itself is served


def test_an_interval_schedule_fires_a_run_that_completes(served, tmp_path):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    script = tmp_path / "tick.py"
    script.write_text(TICK_SCRIPT)
    with open(tmp_path / "tick.log", "wb") as log:
        runner = subprocess.Popen(
            [sys.executable, str(script), served["url"]],
            cwd=tmp_path,
            # One run at a time: on a loaded machine the first run takes longer than the 5 s interval, and
            # the runner started a new Python process every 5 s until one completed (146 CPU-s in `make test`).
            env={**served["env"], "PREFECT_RUNNER_PROCESS_LIMIT": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            with client_for(served["url"]) as client:

                def completed():
                    runs = client.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["every-5s"])))
                    return [r for r in runs if r.state is not None and r.state.is_completed()]

                done = wait_for(completed, 150, "a scheduled tick run to complete")
                assert done[0].auto_scheduled  # created by the server's scheduler, not by hand
        finally:
            stop_process_group(runner, timeout_s=30)


def test_stopping_finsent_serve_stops_its_server(served):
    process = served["process"]
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=90)
    wait_for(lambda: not port_in_use(HOST, served["port"]), 60, "the server's port to close")
