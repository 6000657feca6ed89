"""The promotion lock: a file on one machine, a PostgreSQL advisory lock for promoters on several.
The advisory-lock tests on a real PostgreSQL server: tests/integration/test_advisory_lock.py."""

from __future__ import annotations

import pytest

from finsent import tracking
from finsent.config import ConfigError, RegisterParams
from finsent.registry import locks
from finsent.registry.versions import promotion_lock
from finsent.tracking import RegistryError, StoreUnavailable


def test_advisory_keys_are_stable_and_per_name():
    assert locks.advisory_key("finsent-promotion:a") == locks.advisory_key("finsent-promotion:a")
    assert locks.advisory_key("finsent-promotion:a") != locks.advisory_key("finsent-promotion:b")
    assert -(2**63) <= locks.advisory_key("x") < 2**63


def test_lock_url_must_be_postgresql():
    with pytest.raises(ConfigError, match="lock_url"):
        RegisterParams(lock_url="sqlite:///locks.db")
    assert RegisterParams(lock_url="postgresql+psycopg2://u@db/finsent").lock_url


def test_a_second_promoter_waits_for_the_file_lock_then_times_out(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with (
        promotion_lock(uri, tmp_path),
        pytest.raises(RegistryError, match="held the promotion lock"),
        promotion_lock(uri, tmp_path, timeout_s=0.3),
    ):
        pass
    with promotion_lock(uri, tmp_path, timeout_s=0.3):  # free again
        pass


def test_an_unreachable_lock_database_is_a_store_error_without_the_password(tmp_path):
    from testkit import local_services

    url = f"postgresql+psycopg2://finsent:secret@127.0.0.1:{local_services.free_port()}/finsent"
    with (
        pytest.raises(StoreUnavailable, match="cannot reach the promotion-lock database") as caught,
        promotion_lock("", tmp_path, lock_url=url, name="m", timeout_s=1),
    ):
        pass
    assert "secret" not in str(caught.value)
    assert isinstance(caught.value, tracking.RegistryError)
