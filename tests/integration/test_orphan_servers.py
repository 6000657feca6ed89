"""kill -9 of a flow command leaves Prefect's temporary API server running; the next flow command
stops it. A server whose finsent is alive is left alone."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.ephemeral import EPHEMERAL, OWNER, environ_of, orphaned_servers, reap_orphaned_servers, start_time

pytestmark = pytest.mark.integration


def sleeper(owner: str) -> subprocess.Popen:
    env = {**os.environ, EPHEMERAL: "1", OWNER: owner}
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], env=env)


def gone(process: subprocess.Popen, within_s: float = 10) -> bool:
    try:
        process.wait(timeout=within_s)
        return True
    except subprocess.TimeoutExpired:
        return False


def test_only_servers_whose_owner_died_are_reaped():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = sleeper(f"{dead.pid}:{'0'}")
    mine = sleeper(f"{os.getpid()}:{start_time(os.getpid())}")
    try:
        time.sleep(0.5)  # until their environments are readable
        assert orphan.pid in orphaned_servers() and mine.pid not in orphaned_servers()
        assert orphan.pid in reap_orphaned_servers()
        assert gone(orphan) and not gone(mine, within_s=0.5)
    finally:
        for process in (orphan, mine):
            process.kill()
            process.wait()


def servers_of(owner_pid: int) -> list[int]:
    return [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit()
        and environ_of(int(p.name)).get(OWNER, "").startswith(f"{owner_pid}:")
        and environ_of(int(p.name)).get(EPHEMERAL) == "1"
    ]


def test_kill_9_of_train_leaves_a_server_that_the_next_command_stops(project):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL")}
    finsent = str(Path(sys.executable).with_name("finsent"))
    train = subprocess.Popen([finsent, "--root", str(project), "train"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    servers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not servers and time.monotonic() < deadline and train.poll() is None:
            time.sleep(0.5)
            servers = servers_of(train.pid)
        assert servers, "the training run started no temporary Prefect server"
        time.sleep(1)
        train.send_signal(signal.SIGKILL)
        train.wait()
        assert set(servers) <= set(orphaned_servers())  # still running, owner gone
        assert set(servers) <= set(reap_orphaned_servers())
        deadline = time.monotonic() + 15
        while any(
            (Path("/proc") / str(pid)).exists() and "Z" not in (Path("/proc") / str(pid) / "stat").read_text().split(")")[1][:3]
            for pid in servers
        ):
            assert time.monotonic() < deadline, f"servers {servers} still running"
            time.sleep(0.2)
    finally:
        train.kill()
        for pid in servers:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
