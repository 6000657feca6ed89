"""The prepare stage: assemble the training and evaluation frames from the versioned data.

Training data is the base set plus every added batch; rows whose text also appears in the evaluation
set are dropped (the evaluation set is frozen and never trained on).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from finsent.config import LABELS, DataParams
from finsent.data import read_dataset, stratified_sample, write_dataset
from finsent.validate import drop_eval_overlap, training_files


@dataclass(frozen=True)
class PrepareSummary:
    train_path: str
    eval_path: str
    train_rows: int
    eval_rows: int
    dropped_eval_overlap: int
    train_class_counts: dict[str, int]

    def to_dict(self) -> dict:
        return asdict(self)


def assemble(frames: list[pd.DataFrame], eval_df: pd.DataFrame, p: DataParams) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Pure core: concatenate, drop evaluation overlap, cap rows for quick runs."""
    train = pd.concat([f[["text", "label"]] for f in frames], ignore_index=True)
    train, dropped = drop_eval_overlap(train, eval_df)
    train = stratified_sample(train, p.max_train_rows, p.seed)
    eval_df = stratified_sample(eval_df[["text", "label"]], p.max_eval_rows, p.seed)
    return train, eval_df, dropped


def run(p: DataParams, root: Path, out_dir: Path) -> PrepareSummary:
    root, out_dir = Path(root), Path(out_dir)
    frames = [read_dataset(path) for path in training_files(root, p)]
    eval_df = read_dataset(root / p.data_dir / p.eval_file)
    train, eval_df, dropped = assemble(frames, eval_df, p)
    train_path = write_dataset(train, out_dir / "train.csv")
    eval_path = write_dataset(eval_df, out_dir / "eval.csv")
    counts = train["label"].value_counts()
    return PrepareSummary(
        train_path=str(train_path),
        eval_path=str(eval_path),
        train_rows=len(train),
        eval_rows=len(eval_df),
        dropped_eval_overlap=dropped,
        train_class_counts={name: int(counts.get(i, 0)) for i, name in enumerate(LABELS)},
    )
