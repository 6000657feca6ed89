"""Fixtures of the integration tests only: the servers they start (once per session)."""

from __future__ import annotations

import pytest

from testkit import local_services, shared_prefect
from testkit import registry_synthetic as rs


@pytest.fixture(scope="session")
def prefect_harness():
    """The Prefect API for flows run in this process: the test run's one server (testkit.shared_prefect)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: shared_prefect.server_url()}):
        yield


@pytest.fixture(scope="session")
def prefect_api_url(prefect_harness) -> str:
    """The session's Prefect server, for flow commands in other processes (no temporary server each:
    starting one costs a command about 20 s)."""
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value())


@pytest.fixture(scope="session")
def postgres():
    """A throw-away PostgreSQL server (SQLAlchemy URL without a database); skips where none is installed."""
    try:
        with local_services.postgres_server() as url:
            yield url
    except local_services.ServiceUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def s3():
    """An S3 endpoint (moto) and the credentials for it in the environment."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in local_services.S3_CREDENTIALS.items():
            patch.setenv(key, value)
        with local_services.s3_server() as endpoint:
            yield endpoint


@pytest.fixture
def registered(project, tiny_model_dir, monkeypatch):
    """The project with version 1 (right on 70% of the evaluation set) as champion."""
    from finsent.data import versioning

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    versioning.ensure_data(project, rs.relaxed_params(project).data, log=lambda *_: None)
    assert rs.register_synthetic(project, tiny_model_dir, 0.70).promoted
    return project
