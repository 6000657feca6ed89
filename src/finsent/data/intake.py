"""New labelled rows into ``data/``: the one path every label takes (``finsent data add``, and the
labels that arrive with scored news).

read (CSV or JSONL) -> validate (Great Expectations) -> the canonical CSV (``text,label``), read back
and compared before anything is versioned -> refused when its rows are already in another batch ->
versioned (``dvc add`` + push), undone exactly on any failure. What is versioned is always a file
that the training stages read back as it was accepted.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from finsent.config import Params
from finsent.data import validate, versioning
from finsent.data.frames import REQUIRED_COLUMNS, DataError, normalise_labels, read_dataset, read_table, write_dataset
from finsent.paths import Layout

# A batch name becomes a file name under data/batches: a plain name, never a path.
BATCH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MAX_EXAMPLES = 3


@dataclass(frozen=True)
class IntakeSummary:
    added: str  # the batch name, data/batches/<name>.csv
    rows: int
    data_version: dict


def check_batch_name(name: str) -> str:
    if not BATCH_NAME.fullmatch(name) or name.endswith((".", ".csv")):
        raise DataError(
            f"batch name {name!r} is not allowed: use 1-100 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit (a plain name, not a path; without .csv)"
        )
    return name


def canonical_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """Exactly the columns training reads, labels as ids: what a batch is stored as, whatever its format."""
    return pd.DataFrame({"text": raw["text"].astype(str), "label": normalise_labels(raw["label"])}).reset_index(drop=True)


def rows_in_batches(layout: Layout, frame: pd.DataFrame) -> dict[str, int]:
    """How many of ``frame``'s texts each existing batch already holds (case and spacing ignored)."""
    keys = set(frame["text"].map(validate.normalise_text))
    found = {}
    for path in sorted(layout.batches_dir.glob("*.csv")):
        shared = int(read_dataset(path)["text"].map(validate.normalise_text).isin(keys).sum())
        if shared:
            found[path.stem] = shared
    return found


def version_batch(p: Params, root: Path, frame: pd.DataFrame, name: str, *, log=print, git_commit: bool = True) -> versioning.DataVersion:
    """Write ``frame`` (already validated) as data/batches/<name>.csv and version it: checked to read
    back unchanged, and refused when another batch already holds any of its texts."""
    with versioning.data_lock(root, log=log):
        return _version_batch(p, root, frame, name, log=log, git_commit=git_commit)


def _version_batch(p: Params, root: Path, frame: pd.DataFrame, name: str, *, log=print, git_commit: bool = True) -> versioning.DataVersion:
    layout = Layout.of(root, p)
    check_batch_name(name)
    frame = canonical_frame(frame)
    held = rows_in_batches(layout, frame)
    if held:
        where = ", ".join(f"{count} in batch {batch!r}" for batch, count in held.items())
        raise DataError(
            f"batch {name!r}: {sum(held.values())} of its {len(frame)} texts are already versioned ({where}); nothing was added"
        )
    with tempfile.TemporaryDirectory() as tmp:
        csv = write_dataset(frame, Path(tmp) / f"{name}.csv")
        back = read_dataset(csv)
        if not back[list(REQUIRED_COLUMNS)].equals(frame[list(REQUIRED_COLUMNS)]):
            raise DataError(f"batch {name!r} does not read back as written (text with characters CSV cannot hold?); nothing was added")
        return versioning.add_batch(root, p.data, csv, name, log=log, git_commit=git_commit)


def add(p: Params, root: Path, path: Path, name: str | None = None, *, log=print, git_commit: bool = True) -> IntakeSummary:
    """``finsent data add``: validate a labelled file, then version it as a new batch. A file that
    fails validation is kept in the quarantine folder with its report, and nothing is versioned."""
    layout = Layout.of(root, p)
    path = Path(path)
    name = check_batch_name(name if name is not None else path.stem)
    with versioning.data_lock(root, log=log):
        versioning.ensure_data(root, p.data, log=log)
        # Versioning data/ would take along whatever else is in it, unvalidated (a file dropped in by
        # hand, or left by a killed add): that is for `finsent train`, which validates every batch.
        unversioned = versioning.unversioned_files(root, p.data)
        if unversioned:
            raise DataError(
                f"{layout.data_dir} holds changes that are not versioned: {', '.join(unversioned[:MAX_EXAMPLES])}"
                f"{' ...' if len(unversioned) > MAX_EXAMPLES else ''}; version them (finsent train) or move them out "
                "of data/ first. Nothing was added."
            )
        report = validate.validate_file(path, read_table(layout.eval_file), p.validate)
        if not report.success:
            kept = None
            if path.is_file():
                kept = versioning.quarantine(path, layout.quarantine_dir, json.dumps(report.to_dict(), indent=2, default=str))
            raise validate.ValidationError([report], [str(kept)] if kept else None)
        version = _version_batch(p, root, read_table(path), name, log=log, git_commit=git_commit)
    return IntakeSummary(added=name, rows=report.rows, data_version=version.to_dict())
