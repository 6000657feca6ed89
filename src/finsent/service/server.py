"""Running the service on uvicorn: one process, one event loop, one scoring thread.

Scale out with more processes (on more ports or machines) behind a load balancer, not more workers in
one: each replica keeps no state of its own (the registry and the store hold it all), and one model
copy per process is what the batching is sized for. See the README's "Live service" section.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from finsent.config import Params
from finsent.errors import FinsentError
from finsent.paths import is_loopback

log = logging.getLogger("finsent.service")
GRACEFUL_SHUTDOWN_S = 10  # requests in flight get this long to finish on SIGTERM


class BindRefused(FinsentError):
    """The service would listen beyond this machine without a token on its write routes."""


def check_bind(p: Params, host: str, allow_open: bool) -> None:
    """No token means loopback only, unless the operator says otherwise (``--allow-no-token``)."""
    if is_loopback(host) or os.environ.get(p.service.token_env) or allow_open:
        return
    raise BindRefused(
        f"refusing to listen on {host} with no token for the write routes: set {p.service.token_env}, "
        "or pass --allow-no-token (for example behind a gateway that authenticates)"
    )


def serve(p: Params, root: str | Path, *, host: str | None = None, port: int | None = None, allow_no_token: bool = False) -> None:
    import torch
    import uvicorn

    from finsent.service.app import create_app

    host = host or p.service.host
    port = port or p.service.port
    check_bind(p, host, allow_no_token)
    if p.service.torch_threads:
        torch.set_num_threads(p.service.torch_threads)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(p, root)
    log.info("finsent api on http://%s:%d (docs at /docs); following %s@champion", host, port, p.register.model_name)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    server = uvicorn.Server(config)
    server.run()
    if not server.started:  # uvicorn logs why (e.g. the port is taken) and returns
        raise BindRefused(f"the service could not listen on {host}:{port} (see the message above)")
