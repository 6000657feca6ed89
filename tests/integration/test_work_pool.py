"""The scale-out form of the schedules: `finsent deploy` registers both deployments on a work pool of a
real Prefect server (the test run's, testkit.shared_prefect), and a separate `prefect worker` process
picks up a run and completes it in the project folder. The worker has its own PREFECT_HOME; every wait
is bounded."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy

from finsent.cli import main
from flows.serve import stop_process_group
from testkit import shared_prefect
from testkit.local_services import prefect_env, wait_for

REPO = Path(__file__).resolve().parents[2]
POOL = "finsent-test-pool"

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The test run's Prefect server (a real ``prefect server start``, testkit.shared_prefect); the
    worker gets a PREFECT_HOME of its own."""
    url = shared_prefect.server_url()
    return {"url": url, "env": prefect_env(tmp_path_factory.mktemp("prefect-worker") / "prefect-home", url)}


def test_deploy_without_a_server_url_says_so(tmp_path, monkeypatch, capsys):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert main(["--root", str(tmp_path), "deploy"]) == 2
    assert "PREFECT_API_URL" in capsys.readouterr().err


def test_a_worker_runs_a_deployment_from_the_work_pool(server, tmp_path, monkeypatch, capsys):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    project = tmp_path / "project"
    (project / "inbox").mkdir(parents=True)  # an empty inbox: the hourly run opens the store and ends
    shutil.copy(REPO / "params.yaml", project / "params.yaml")
    # `finsent deploy` in this process (a process of its own costs seconds of imports): the server is
    # the one PREFECT_API_URL names, whatever this process's Prefect settings say.
    monkeypatch.setenv("PREFECT_API_URL", server["url"])

    def deploy() -> dict:
        capsys.readouterr()
        code = main(["--root", str(project), "deploy", "--pool", POOL])
        out, err = capsys.readouterr()
        assert code == 0, err[-3000:]
        return json.loads(out)  # standard output is the JSON result alone

    result = deploy()
    assert result["worker_command"] == f"prefect worker start --pool {POOL}"
    assert len(result["deployments"]) == 2

    with temporary_settings(updates={PREFECT_API_URL: server["url"]}), get_client(sync_client=True) as client:
        assert client.read_work_pool(POOL).type == "process"  # created by the deploy
        retrain = client.read_deployment_by_name("finsent-retrain/nightly-retrain")
        monitor = client.read_deployment_by_name("finsent-monitoring/hourly-monitor")
        for deployment in (retrain, monitor):
            assert deployment.work_pool_name == POOL
            assert deployment.job_variables["working_dir"] == str(project.resolve())
            assert deployment.parameters["root"] == str(project.resolve())
        assert [s.schedule.cron for s in retrain.schedules] == ["0 2 * * *"]
        assert monitor.entrypoint == "flows.monitoring.monitoring_flow"

        # Deploying again updates the same deployments instead of adding more.
        deploy()
        assert client.read_deployment_by_name("finsent-monitoring/hourly-monitor").id == monitor.id

        # No worker yet: a run waits in the pool.
        run = client.create_flow_run_from_deployment(monitor.id)
        time.sleep(2)
        assert client.read_flow_run(run.id).state.is_scheduled()

        with open(tmp_path / "worker.log", "wb") as worker_log:
            worker = subprocess.Popen(
                [str(Path(sys.executable).with_name("prefect")), "worker", "start", "--pool", POOL, "--type", "process"],
                cwd=tmp_path,
                env={**server["env"], "PREFECT_WORKER_QUERY_SECONDS": "1"},
                stdout=worker_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:

                def finished():
                    state = client.read_flow_run(run.id).state
                    return state if state is not None and state.is_final() else None

                state = wait_for(finished, 240, "the worker to finish the monitoring run")
            finally:
                stop_process_group(worker, timeout_s=30)
        log_text = (tmp_path / "worker.log").read_text(errors="replace")
        assert state.is_completed(), f"{state.type}: {state.message}\n{log_text[-3000:]}"

    # The run happened in the project: its predictions store is there, with its tables.
    store = project / "artifacts" / "predictions.db"
    assert store.is_file(), log_text[-3000:]
    assert "batches" in sqlalchemy.inspect(sqlalchemy.create_engine(f"sqlite:///{store}")).get_table_names()
