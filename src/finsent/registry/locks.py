"""Locks that serialise champion decisions: a file for promoters on one machine, a PostgreSQL advisory
lock for promoters on several.

An advisory lock lives in the database session that took it, so a promoter that crashes or loses its
connection releases it with the session: no stale lock to clean up by hand.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

from finsent.paths import shown_url
from finsent.tracking import RegistryError, StoreUnavailable


class LockTimeout(RegistryError):
    """Another promoter held the lock for longer than the wait allowed."""


class LockUnavailable(StoreUnavailable):
    """The database that holds the lock cannot be reached (retried like any store that is down)."""


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (PostgreSQL advisory locks are keyed by bigint)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def advisory_lock(url: str, name: str, timeout_s: float, poll_s: float = 0.2) -> Iterator[None]:
    """Hold PostgreSQL's session advisory lock for ``name`` in the database at ``url``."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    if not url.startswith("postgresql"):
        raise ValueError(f"an advisory lock needs a postgresql:// URL, not {shown_url(url)!r}")
    key = advisory_key(name)
    try:
        engine = sqlalchemy.create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    except ImportError as exc:  # the driver: psycopg2 comes with the `scale` extra
        raise LockUnavailable(f"no PostgreSQL driver for the promotion lock ({exc}); pip install 'finsent[scale]'") from exc
    try:
        connection = engine.connect()
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise LockUnavailable(
            f"cannot reach the promotion-lock database {shown_url(url)}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"
        ) from exc
    try:
        deadline = time.monotonic() + timeout_s
        # Polling try-lock rather than a blocking lock: the wait stays bounded and interruptible.
        while not connection.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar():
            if time.monotonic() >= deadline:
                raise LockTimeout(f"another promoter has held the promotion lock {name!r} in {shown_url(url)} for over {timeout_s:.0f} s")
            time.sleep(poll_s)
        try:
            yield
        finally:
            with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError):  # a lost session has released it already
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        connection.close()
        engine.dispose()


@contextlib.contextmanager
def file_lock(path: Path, timeout_s: float) -> Iterator[None]:
    from filelock import FileLock, Timeout

    lock = FileLock(str(path), timeout=timeout_s)
    try:
        lock.acquire()
    except Timeout as exc:
        raise LockTimeout(f"another promoter has held the promotion lock {path} for over {timeout_s:.0f} s") from exc
    try:
        yield
    finally:
        lock.release()
