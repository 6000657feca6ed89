"""Atomic writes: a reader sees the old file or the new one, never half of one.

Every file finsent writes that another step or process reads (datasets, reports, verdicts,
checkpoints, params) goes through ``atomic_path``: the content goes to a temporary file in the same
folder, which is renamed over the target only once it is complete. An interrupted write leaves the
previous version and no temporary file behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from finsent.errors import FinsentError

NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)  # a full disk, a quota, a read-only file system


class WriteError(FinsentError):
    """A file or folder cannot be written: a file in the way, a read-only file system, a full disk."""


def ensure_dir(path: str | Path) -> Path:
    """``path`` as a folder, created with its parents; a ``WriteError`` naming it when that cannot be."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"cannot write to {path}: {exc.strerror or exc}") from exc
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so writers that add one do not); rename it
    over ``path`` when the block ends without error, delete it otherwise. No room to write (a full disk,
    a read-only file system) is a ``WriteError`` naming ``path``."""
    path = Path(path)
    ensure_dir(path.parent)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno in NO_ROOM:
            raise WriteError(f"cannot write {path}: {exc.strerror}") from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, payload: Any) -> Path:
    return write_text(path, json.dumps(payload, indent=2, default=str))
