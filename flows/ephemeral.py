"""Prefect's temporary API server must not outlive the finsent process that started it.

A flow run with no ``PREFECT_API_URL`` starts a temporary Prefect server as a child process, and stops
it when the flow ends. A ``kill -9`` of finsent leaves that child running. finsent marks its own
environment (the child inherits it) with its process id and start time; each flow command first
reaps the temporary servers whose marked owner is gone. Linux only (it reads /proc); elsewhere a no-op.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

OWNER = "FINSENT_OWNER"  # "<pid>:<start time in clock ticks since boot>"
EPHEMERAL = "PREFECT__SERVER_EPHEMERAL"  # set by Prefect in its temporary server's environment
PROC = Path("/proc")


def start_time(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/PID/stat): with the pid, a unique identity."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def mark_owner() -> None:
    """Mark this process as the owner of the servers it starts (inherited through the environment)."""
    me = os.getpid()
    os.environ[OWNER] = f"{me}:{start_time(me)}"


def environ_of(pid: int) -> dict[str, str]:
    try:
        raw = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def orphaned_servers() -> list[int]:
    """Temporary Prefect servers started by a finsent process that no longer exists."""
    if not PROC.is_dir():
        return []
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        env = environ_of(int(entry.name))
        if env.get(EPHEMERAL) != "1" or OWNER not in env:
            continue
        owner_pid, _, owner_start = env[OWNER].partition(":")
        if owner_pid.isdigit() and start_time(int(owner_pid)) == owner_start:
            continue  # its finsent is still running
        found.append(int(entry.name))
    return found


def reap_orphaned_servers() -> list[int]:
    """Stop the temporary servers whose finsent was killed; returns their pids."""
    reaped = []
    for pid in orphaned_servers():
        try:
            os.kill(pid, signal.SIGTERM)
            reaped.append(pid)
        except OSError:  # gone meanwhile, or not ours to stop
            continue
    return reaped
