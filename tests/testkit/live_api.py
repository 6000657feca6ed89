"""`finsent api` in its own process (forked, testkit.forked) on a free loopback port, for the service
tests: in its own process group, stopped (SIGTERM, then SIGKILL) when the test ends, its log kept
beside the project."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx

from testkit import forked
from testkit.local_services import free_port, wait_for

READY_TIMEOUT_S = 180  # imports, the registry and the model load: about 15 s idle, much more on a busy CI


class Api:
    """One `finsent api` process; stopped (its process group) when the test ends."""

    def __init__(self, project: Path, *sets: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = project / f"api-{self.port}.log"
        args = ["--root", str(project), "--set", "service.poll_s=0.5"]
        for s in sets:
            args += ["--set", s]
        self.process = forked.finsent([*args, "api", "--port", str(self.port)], env={**os.environ, **(env or {})}, stderr=self.log)

    def ready(self) -> dict:
        def check():
            if self.process.poll() is not None:
                raise AssertionError(f"finsent api exited {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                r = httpx.get(f"{self.url}/readyz", timeout=5)
            except httpx.TransportError:
                return None
            return r.json() if r.status_code == 200 else None

        return wait_for(check, READY_TIMEOUT_S, "finsent api ready", every_s=0.5)

    def wait_version(self, version: str) -> dict:
        return wait_for(
            lambda: (b := self.get("/readyz").json()) and b["model"] and b["model"]["version"] == version and b,
            60,
            f"version {version} serving",
            every_s=0.25,
        )

    def get(self, path: str, **kw) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=30, **kw)

    def post(self, path: str, body=None, **kw) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, timeout=60, **kw)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.signal_group(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.signal_group(signal.SIGKILL)
                self.process.wait(10)
