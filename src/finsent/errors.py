"""The one base class of every error finsent expects.

An expected error is bad input (a file, a setting, a request) or a service that is down. The CLI
prints its message on one line and exits 2; anything else is a bug and keeps its traceback. Each room
defines its own subclasses next to the code that raises them, so the CLI needs to know none of them
and never imports torch or Prefect just to catch an error.
"""

from __future__ import annotations


class FinsentError(Exception):
    """Bad input or an unavailable service: reported as one line, never as a traceback."""
