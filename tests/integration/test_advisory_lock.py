"""The promotion lock of promoters on several machines: a PostgreSQL advisory lock, on a real PostgreSQL
server (skipped, saying why, where none is installed). (The file lock and the settings: tests/unit/registry/test_locks.py.)"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from finsent.registry.versions import promotion_lock
from finsent.tracking import RegistryError
from testkit import local_services
from testkit.local_services import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lock_db(postgres):
    import uuid

    return local_services.create_database(postgres, f"locks_{uuid.uuid4().hex[:12]}")


def test_the_advisory_lock_admits_one_promoter_at_a_time(lock_db, tmp_path):
    inside: list[str] = []
    overlaps: list[tuple[str, ...]] = []

    def promoter(tag: str) -> None:
        with promotion_lock("sqlite:///unused.db", tmp_path, lock_url=lock_db, name="m"):
            inside.append(tag)
            overlaps.append(tuple(inside))
            time.sleep(0.3)
            inside.remove(tag)

    threads = [threading.Thread(target=promoter, args=(f"t{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(overlaps) == 3 and all(len(o) == 1 for o in overlaps)
    assert not (tmp_path / "unused.promotion.lock").exists()  # no file lock was taken


def test_the_advisory_lock_times_out_with_a_clear_error_and_is_per_model(lock_db, tmp_path):
    with promotion_lock("", tmp_path, lock_url=lock_db, name="m"):
        with (
            pytest.raises(RegistryError, match=r"held the promotion lock 'finsent-promotion:m'"),
            promotion_lock("", tmp_path, lock_url=lock_db, name="m", timeout_s=0.5),
        ):
            pass
        with promotion_lock("", tmp_path, lock_url=lock_db, name="other-model", timeout_s=0.5):
            pass  # another model's decisions are not held up


def test_a_postgresql_tracking_store_locks_in_its_own_database(lock_db, tmp_path):
    with (
        promotion_lock(lock_db, tmp_path, name="m"),
        pytest.raises(RegistryError, match="held the promotion lock"),
        promotion_lock("", tmp_path, lock_url=lock_db, name="m", timeout_s=0.5),
    ):
        pass


HOLDER = """
import sys, time
from finsent.registry.versions import promotion_lock
with promotion_lock("", ".", lock_url=sys.argv[1], name="m"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_crashed_promoter_releases_the_advisory_lock(lock_db, tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, lock_db], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(RegistryError, match="held the promotion lock"),
            promotion_lock("", tmp_path, lock_url=lock_db, name="m", timeout_s=0.5),
        ):
            pass
        holder.kill()  # no cleanup runs: the server ends the session, and its lock with it
        holder.wait(timeout=30)

        def acquired() -> bool:
            try:
                with promotion_lock("", tmp_path, lock_url=lock_db, name="m", timeout_s=0.2):
                    return True
            except RegistryError:
                return False

        wait_for(acquired, 30, "the killed holder's lock to be released", every_s=0.2)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
