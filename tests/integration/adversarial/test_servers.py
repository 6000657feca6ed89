"""Servers a command needs, down: the Prefect server that PREFECT_API_URL names (`serve --no-server`,
`deploy`) and the Optuna storage of the study (`tune`). Each is named in one line, within seconds,
without its password, and nothing changes: a search does not run its data stages first."""

from __future__ import annotations

import time

import pytest

from testkit.local_services import free_port as closed_port  # a port nothing listens on

pytestmark = pytest.mark.integration


@pytest.fixture
def prefect_down(monkeypatch) -> str:
    url = f"http://127.0.0.1:{closed_port()}/api"
    monkeypatch.setenv("PREFECT_API_URL", url)
    return url


def test_deploy_to_a_prefect_server_that_is_down_is_named(shared_cli, prefect_down):
    shared_cli.fails("deploy", says=(prefect_down, "not healthy"))


def test_serve_on_a_running_server_that_is_down_fails_without_a_startup_wait(shared_cli, prefect_down):
    started = time.monotonic()
    shared_cli.fails("serve", "--no-server", says=(prefect_down, "not healthy"))
    # A server that should be running gets 15 s, not the 120 s a server this command starts gets.
    assert time.monotonic() - started < 60


def test_tune_with_its_study_storage_down_is_named_before_the_data_stages(cli):
    url = f"postgresql+psycopg2://finsent:hunter2@127.0.0.1:{closed_port()}/optuna"
    runs = cli.project / "artifacts" / "runs"
    known = set(runs.glob("*"))
    message = cli.fails("--set", f"tune.storage={url}", "tune", says=("Optuna storage", "127.0.0.1"))
    assert "hunter2" not in message
    assert not [r for r in runs.glob("*") if r not in known and any(r.iterdir())]  # no stage ran
