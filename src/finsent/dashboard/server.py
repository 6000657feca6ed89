"""Serving the dashboard: a threaded WSGI server (werkzeug's) on loopback by default.

The page only reads the store, so one process with a thread per request is enough for a desk of
analysts; put it behind a proxy (and ``--path-prefix``) to share it further.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from finsent.config import Params
from finsent.errors import FinsentError
from finsent.paths import shown_url

DEFAULT_HOST = "127.0.0.1"  # loopback unless asked: the page shows every stored headline
DEFAULT_PORT = 8050


class DashboardBindError(FinsentError, OSError):
    """The dashboard cannot listen on the address it was given (taken, or not this machine's)."""


def make_server(app: Any, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> Any:
    """A threaded server for the Dash ``app`` on ``host:port`` (port 0: a free one, see ``server_port``)."""
    from werkzeug.serving import make_server as wsgi_server

    try:
        return wsgi_server(host, port, app.server, threaded=True)
    except OSError as exc:
        raise DashboardBindError(f"the dashboard cannot listen on {host}:{port}: {exc}") from exc
    except SystemExit as exc:  # werkzeug prints why and exits (a port in use, an address not this machine's)
        raise DashboardBindError(
            f"the dashboard cannot listen on {host}:{port}: the port is in use or the address is not this machine's"
        ) from exc


def serve(
    p: Params,
    root: str | Path,
    *,
    host: str | None = None,
    port: int | None = None,
    path_prefix: str = "/",
    ready: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Open the predictions store (``monitor.store_url``) and serve the page until interrupted;
    ``ready`` gets the URL and the store once the server listens."""
    from finsent.dashboard.app import create_app
    from finsent.monitoring.store import open_store

    engine = open_store(p.monitor, root)
    app = create_app(engine, requests_pathname_prefix=path_prefix)
    server = make_server(app, host or DEFAULT_HOST, DEFAULT_PORT if port is None else port)
    url = f"http://{server.host}:{server.server_port}{path_prefix}"
    print(f"finsent dashboard on {url} over {shown_url(p.monitor.store_url)} (Ctrl-C stops it)", file=sys.stderr)
    if ready is not None:
        ready({"url": url, "host": server.host, "port": server.server_port, "store": shown_url(p.monitor.store_url)})
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        engine.dispose()
