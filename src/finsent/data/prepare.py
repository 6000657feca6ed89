"""The prepare stage: assemble the training, dev and test frames from the versioned data.

Training data is the base set plus every added batch; rows whose text also appears in the evaluation
set are dropped (the evaluation set is the frozen test set: never trained on, never used to choose).
The dev split is carved from what remains (``finsent.split``) and makes every training decision.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from finsent.config import DataParams
from finsent.data.frames import read_dataset, stratified_sample, write_dataset
from finsent.data.split import dev_split
from finsent.data.validate import drop_eval_overlap, training_files
from finsent.paths import PreparedFiles
from finsent.vocabulary import LABELS


@dataclass(frozen=True)
class PrepareSummary:
    train_path: str
    eval_path: str  # the test set
    train_rows: int
    eval_rows: int
    dropped_eval_overlap: int
    train_class_counts: dict[str, int]
    dev_path: str | None = None  # None when data.dev_fraction is 0
    dev_rows: int = 0
    dev_class_counts: dict[str, int] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Splits:
    train: pd.DataFrame
    dev: pd.DataFrame
    test: pd.DataFrame
    dropped_eval_overlap: int


def assemble(frames: list[pd.DataFrame], eval_df: pd.DataFrame, p: DataParams) -> Splits:
    """Pure core: concatenate, drop test overlap, cap rows for quick runs, carve the dev split."""
    train = pd.concat([f[["text", "label"]] for f in frames], ignore_index=True)
    train, dropped = drop_eval_overlap(train, eval_df)
    train = stratified_sample(train, p.max_train_rows, p.seed)
    train, dev = dev_split(train, p.dev_fraction, p.dev_seed)
    test = stratified_sample(eval_df[["text", "label"]], p.max_eval_rows, p.seed)
    return Splits(train, dev, test, dropped)


def class_counts(df: pd.DataFrame) -> dict[str, int]:
    counts = df["label"].value_counts()
    return {name: int(counts.get(i, 0)) for i, name in enumerate(LABELS)}


def run(p: DataParams, root: Path, out_dir: Path) -> PrepareSummary:
    """Write the training rows, the test set and the dev split under ``out_dir`` (``PreparedFiles``)."""
    root, out = Path(root), PreparedFiles(Path(out_dir))
    frames = [read_dataset(path) for path in training_files(root, p)]
    eval_df = read_dataset(root / p.data_dir / p.eval_file)
    splits = assemble(frames, eval_df, p)
    train_path = write_dataset(splits.train, out.train)
    eval_path = write_dataset(splits.test, out.eval)
    written_dev = write_dataset(splits.dev, out.dev) if len(splits.dev) else None
    if written_dev is None:
        out.dev.unlink(missing_ok=True)  # no dev split now: an older one must not be picked up
    return PrepareSummary(
        train_path=str(train_path),
        eval_path=str(eval_path),
        train_rows=len(splits.train),
        eval_rows=len(splits.test),
        dropped_eval_overlap=splits.dropped_eval_overlap,
        train_class_counts=class_counts(splits.train),
        dev_path=str(written_dev) if written_dev else None,
        dev_rows=len(splits.dev),
        dev_class_counts=class_counts(splits.dev),
    )
