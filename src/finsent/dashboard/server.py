"""Serving the dashboard: a threaded WSGI server (werkzeug's) on loopback by default.

The page only reads the store, so one process with a thread per request is enough for a desk of
analysts; put it behind a proxy (and ``--path-prefix``) to share it further.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finsent.config import Params
from finsent.errors import FinsentError
from finsent.paths import shown_url

if TYPE_CHECKING:
    from finsent.explain.attributions import Explanation

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


def champion_explainer(p: Params, root: Path) -> Callable[[str], Explanation]:
    """text -> ``Explanation`` by the registry's champion as it is now, one at a time: the server runs a
    thread per request, and an explanation hooks the model's embedding layer while it runs."""
    import threading

    from finsent.explain.attributions import explain
    from finsent.monitoring.champion import load_champion

    champion = load_champion(p, root)
    print(f"finsent dashboard: headlines explained by {champion.name} version {champion.version}", file=sys.stderr)
    lock = threading.Lock()

    def explainer(text: str) -> Explanation:
        with lock:
            return explain(
                champion.scorer,
                text,
                n_steps=p.explain.n_steps,
                internal_batch_size=p.explain.internal_batch_size,
                model_version=champion.version,
            )

    return explainer


def serve(
    p: Params,
    root: str | Path,
    *,
    host: str | None = None,
    port: int | None = None,
    path_prefix: str = "/",
    ready: Callable[[dict[str, Any]], None] | None = None,
    explain: bool = False,
) -> None:
    """Open the predictions store (``monitor.store_url``) and serve the page until interrupted;
    ``ready`` gets the URL and the store once the server listens. With ``explain``, the registry's
    champion is loaded once, at start, to explain the headlines clicked on the page."""
    from finsent.dashboard.app import create_app
    from finsent.monitoring.store import open_store

    explainer = champion_explainer(p, Path(root)) if explain else None
    engine = open_store(p.monitor, root)
    app = create_app(engine, requests_pathname_prefix=path_prefix, explainer=explainer, top_k=p.explain.top_k)
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
