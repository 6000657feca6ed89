"""``finsent label import``: labels from Label Studio (its JSON export) or from a filled-in
``to_label.csv`` become a labelled batch, through ``finsent data add``'s one path (``data.intake``:
validation, quarantine, a new DVC data version, undone exactly on failure).

The file is read whole first (``label_studio.parse_export`` / ``parse_csv``): a file that is not an
export at all changes nothing. Texts that ``data/`` already holds are held back too, each with its
reason: a text of the frozen evaluation set (the test set is never trained on), and a text already
in the training file or an added batch (an export imported twice adds nothing twice). With nothing
left to add, nothing is versioned and the command says why.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from finsent.config import Params
from finsent.data import intake, versioning
from finsent.data.frames import DataError, read_dataset, read_table, write_dataset
from finsent.labelling import label_studio
from finsent.labelling.export import LabellingError
from finsent.labelling.keys import text_keys
from finsent.labelling.label_studio import HeldBack, LabelStudioFormatError, ParsedLabels
from finsent.paths import Layout
from finsent.vocabulary import LABELS

SHOWN_HELD_BACK = 10  # held-back texts listed in the printed summary (all of them are in the result)


@dataclass(frozen=True)
class ImportSummary:
    file: str
    format: str  # label-studio-json | csv
    tasks: int
    accepted: int
    held_back: list[dict[str, Any]]  # key, text, tasks, reason
    skipped: int
    cancelled: int
    empty: int
    added: str  # the batch name under data/batches
    data_version: dict


def read_labels(path: Path, min_agreement: float) -> ParsedLabels:
    """The labels of a Label Studio JSON export (``.json``) or of a filled-in CSV (``.csv``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            return label_studio.parse_export(path.read_bytes(), min_agreement)
        if suffix == ".csv":
            return label_studio.parse_csv(read_table(path), min_agreement)
    except LabelStudioFormatError as exc:
        raise LabelStudioFormatError(f"{path}: {exc}") from exc
    raise LabellingError(f"{path}: expected Label Studio's JSON export (.json) or a filled-in to_label.csv (.csv)")


def hold_back_known(parsed: ParsedLabels, layout: Layout) -> tuple[pd.DataFrame, list[HeldBack]]:
    """The accepted rows minus the texts ``data/`` already holds, and those texts with the reason."""

    def keys(paths: list[Path]) -> set[str]:
        return set().union(*(text_keys(read_dataset(path)["text"]) for path in paths if path.is_file()))

    known = {
        "the frozen evaluation set (never trained on)": keys([layout.eval_file]),
        "data/ (the training file or an added batch)": keys([layout.train_file, *sorted(layout.batches_dir.glob("*.csv"))]),
    }
    held, keep = [], []
    for row in parsed.rows.itertuples(index=False):
        reason = next((where for where, found in known.items() if row.key in found), None)
        keep.append(reason is None)
        if reason is not None:
            held.append(HeldBack(row.key, row.text, [], f"already labelled: in {reason}"))
    return parsed.rows[keep].reset_index(drop=True), held


def summary_lines(s: ImportSummary) -> list[str]:
    lines = [
        f"{s.file}: {s.tasks} {'tasks' if s.format == 'label-studio-json' else 'rows'}; accepted {s.accepted}, "
        f"held back {len(s.held_back)}, skipped {s.skipped}, cancelled annotations {s.cancelled}, empty annotations {s.empty}"
    ]
    for h in s.held_back[:SHOWN_HELD_BACK]:
        lines.append(f"  held back: {h['text'][:80]!r}: {h['reason']}")
    if len(s.held_back) > SHOWN_HELD_BACK:
        lines.append(f"  ... and {len(s.held_back) - SHOWN_HELD_BACK} more held back (listed in the result)")
    return lines


def import_labels(p: Params, root: Path, file: Path, name: str | None = None, *, git_commit: bool = True, log=print) -> ImportSummary:
    """Read the labels of ``file``, hold back what cannot be used, and add the rest as data batch
    ``name`` (default: the file's name) through ``data.intake.add``."""
    root = Path(root).resolve()
    path = Path(file)
    name = intake.check_batch_name(name if name is not None else path.stem)  # before anything is read
    parsed = read_labels(path, p.label.min_agreement)
    versioning.ensure_data(root, p.data, log=log)
    rows, known = hold_back_known(parsed, Layout.of(root, p))
    summary = ImportSummary(
        file=str(path),
        format=parsed.source_format,
        tasks=parsed.tasks,
        accepted=len(rows),
        held_back=[asdict(h) for h in [*parsed.held_back, *known]],
        skipped=parsed.skipped,
        cancelled=parsed.cancelled,
        empty=parsed.empty,
        added="",
        data_version={},
    )
    for line in summary_lines(summary):
        log(line)
    if rows.empty:
        raise LabellingError(
            f"{path}: no label to add ({len(summary.held_back)} held back, {parsed.skipped} skipped, "
            f"{parsed.cancelled} cancelled); nothing was versioned"
        )
    batch = pd.DataFrame({"text": rows["text"], "label": [LABELS[i] for i in rows["label"]]})
    with tempfile.TemporaryDirectory() as tmp:
        csv = write_dataset(batch, Path(tmp) / f"{name}.csv")
        added = intake.add(p, root, csv, name, log=log, git_commit=git_commit)
    log(f"added {added.rows} labelled rows as data batch {added.added!r}")
    return replace(summary, added=added.added, data_version=added.data_version)
