"""Labels that arrive with scored news, handed to training through the same path as ``finsent data add``:
validation, then a new DVC data version; each scored batch's labels are handed over once."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from sqlalchemy import Engine

from finsent.config import Params
from finsent.data import intake, validate, versioning
from finsent.data.frames import read_dataset, read_table, write_dataset
from finsent.monitoring.history import mark_exported, pending_labels
from finsent.paths import Layout


@dataclass(frozen=True)
class LabelExport:
    status: str  # none | added | rejected
    rows_found: int = 0
    rows_added: int = 0
    dropped_duplicates: int = 0
    dropped_eval_overlap: int = 0
    data_batch: str | None = None
    data_version: dict | None = None
    batch_ids: list[str] = field(default_factory=list)
    message: str = ""


class _Counts(TypedDict):
    """The ``LabelExport`` fields every outcome of a hand-over shares."""

    rows_found: int
    dropped_duplicates: int
    dropped_eval_overlap: int
    batch_ids: list[str]


def add_new_labels(p: Params, root: Path, engine: Engine, work_dir: Path, *, name: str, git_commit: bool = True, log=print) -> LabelExport:
    """Hand the labelled rows of scored batches to training, through the same path as ``finsent data add``:
    validation, then a new DVC data version. Exact duplicates and rows that are in the frozen evaluation
    set are dropped first (and counted); a batch that still fails validation is quarantined with its
    report, and its rows are not offered again."""
    pending = pending_labels(engine)
    if pending.empty:
        return LabelExport(status="none", message="no new labelled rows")
    batch_ids = list(dict.fromkeys(pending["batch_id"]))
    rows_by_batch = pending["batch_id"].value_counts().to_dict()
    versioning.ensure_data(root, p.data, log=log)
    layout = Layout.of(root, p)
    eval_path = layout.eval_file
    keys = pending["text"].map(validate.normalise_text)
    # A text is added once: not twice from the store, and not again when a batch already holds it.
    versioned = set().union(*(set(read_dataset(f)["text"].map(validate.normalise_text)) for f in layout.batches_dir.glob("*.csv")))
    rows = pending.loc[~keys.duplicated() & ~keys.isin(versioned), ["text", "label"]]
    dropped_duplicates = len(pending) - len(rows)
    rows, dropped_overlap = validate.drop_eval_overlap(rows, read_dataset(eval_path))
    base = _Counts(
        rows_found=len(pending), dropped_duplicates=dropped_duplicates, dropped_eval_overlap=dropped_overlap, batch_ids=batch_ids
    )
    if rows.empty:
        mark_exported(engine, batch_ids, "rejected", None, rows_by_batch)
        return LabelExport(status="rejected", message="every labelled row was a duplicate or an evaluation row", **base)

    csv = write_dataset(rows.reset_index(drop=True), Path(work_dir) / f"{name}.csv")
    report = validate.validate_file(csv, read_table(eval_path), p.validate)
    if not report.success:
        kept = versioning.quarantine(csv, layout.quarantine_dir, json.dumps(report.to_dict(), indent=2, default=str))
        mark_exported(engine, batch_ids, "rejected", None, rows_by_batch)
        return LabelExport(status="rejected", message=f"validation failed, kept in {kept.parent}: {report.summary()}", **base)
    version = intake.version_batch(p, root, rows, name, log=log, git_commit=git_commit)
    mark_exported(engine, batch_ids, "added", name, rows_by_batch)
    return LabelExport(
        status="added",
        rows_added=len(rows),
        data_batch=name,
        data_version=version.to_dict(),
        message=f"{len(rows)} labelled rows added as data batch {name!r}",
        **base,
    )
