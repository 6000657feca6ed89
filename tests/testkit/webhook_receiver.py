"""A real HTTP webhook receiver on loopback, for the alert delivery tests: it records every post and
fails on purpose (an HTTP status for the first N posts, a slow answer, or not running at all, which a
client sees as a refused connection). ``from testkit.webhook_receiver import Receiver``."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from testkit.local_services import free_port


@dataclass
class Post:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float  # time.monotonic() when it arrived


@dataclass
class Receiver:
    """Answers 2xx unless told otherwise. Not started until ``start()``: until then its port refuses."""

    fail_first: int = 0  # the first N posts get ``fail_status``
    fail_status: int = 503
    delay_s: float = 0.0  # each answer waits this long (a slow receiver; concurrency, timeouts)
    port: int = field(default_factory=free_port)
    posts: list[Post] = field(default_factory=list)
    seen: int = 0  # posts answered, failed ones included
    arrivals: list[float] = field(default_factory=list)  # time.monotonic() of every post, failed ones included
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.arrivals.append(time.monotonic())
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                with receiver._lock:
                    receiver.seen += 1
                    failing = receiver.seen <= receiver.fail_first
                    if not failing:
                        receiver.posts.append(Post(self.path, dict(self.headers), json.loads(raw or b"null"), time.monotonic()))
                status = receiver.fail_status if failing else 200
                answer = b"down for maintenance" if failing else b"ok"
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (the timeout tests)
                    pass

            def log_message(self, *args: Any) -> None:  # quiet: the tests read ``posts``
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
