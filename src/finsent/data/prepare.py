"""The prepare stage: assemble the training, dev and test frames from the versioned data.

Training data is the base set plus every added batch; rows whose text also appears in the evaluation
set are dropped (the evaluation set is the frozen test set: never trained on, never used to choose).
The dev split is carved from what remains (``finsent.split``) and makes every training decision.

Unlabelled news (the predictions store's texts, gathered by the caller) becomes the unlabelled pool
that task-adaptive pre-training and self-training read (``unlabelled.csv``): distinct texts, none a copy
of a dev or test row, nor of a training row (their labels are known). A copy is what the rest of this
stage calls one: the same text once case and spacing are ignored (``normalise_text``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from finsent.config import DataParams
from finsent.data.frames import DataError, read_dataset, read_table, stratified_sample, write_dataset
from finsent.data.split import dev_split
from finsent.data.validate import drop_eval_overlap, normalise_text, training_files
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
    unlabelled_path: str | None = None  # the unlabelled pool (texts only); None when no news was given
    unlabelled_rows: int = 0
    unlabelled_dropped_heldout: int = 0  # news texts that copy a dev or test row: never pre-trained or pseudo-labelled on

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


@dataclass(frozen=True)
class UnlabelledPool:
    texts: list[str]  # distinct, in the order given (the store's: oldest first)
    dropped_heldout: int  # copies of a dev or test row
    dropped_labelled: int  # copies of a training row
    dropped_duplicates: int  # empty, or a copy of an earlier text


def unlabelled_pool(texts: Iterable[str], labelled: Sequence[pd.DataFrame], heldout: Sequence[pd.DataFrame | None]) -> UnlabelledPool:
    """Pure core of the unlabelled pool: ``texts`` without the copies of any ``heldout`` row (the dev
    split and the test set: what TAPT and self-training must never see), of any ``labelled`` row, and
    of one another."""
    heldout_keys = {normalise_text(t) for df in heldout if df is not None for t in df["text"].astype(str)}
    labelled_keys = {normalise_text(t) for df in labelled for t in df["text"].astype(str)}
    seen: set[str] = set()
    kept: list[str] = []
    dropped = {"heldout": 0, "labelled": 0, "duplicates": 0}
    for text in texts:
        key = normalise_text(text) if isinstance(text, str) else ""
        reason = (
            "duplicates" if not key or key in seen else "heldout" if key in heldout_keys else "labelled" if key in labelled_keys else None
        )
        if reason:
            dropped[reason] += 1
            continue
        seen.add(key)
        kept.append(text)
    return UnlabelledPool(kept, dropped["heldout"], dropped["labelled"], dropped["duplicates"])


def read_unlabelled(path: str | Path) -> list[str]:
    """The texts of an unlabelled pool written by ``run`` (or of any CSV/JSONL of news with a text
    column); an empty pool is an empty list."""
    path = Path(path)
    if path.is_file() and path.read_text(encoding="utf-8-sig").strip() == "text":
        return []  # the header of an empty pool
    df = read_table(path)
    if "text" not in df.columns:
        raise DataError(f"{path}: unlabelled texts need a text column; found {list(df.columns)}")
    return df["text"].fillna("").astype(str).tolist()


def class_counts(df: pd.DataFrame) -> dict[str, int]:
    counts = df["label"].value_counts()
    return {name: int(counts.get(i, 0)) for i, name in enumerate(LABELS)}


def run(p: DataParams, root: Path, out_dir: Path, news_texts: Sequence[str] | None = None) -> PrepareSummary:
    """Write the training rows, the test set and the dev split under ``out_dir`` (``PreparedFiles``).
    With ``news_texts`` (unlabelled news, e.g. the predictions store's), also the unlabelled pool
    (``unlabelled.csv``), checked against the dev and test rows written here."""
    root, out = Path(root), PreparedFiles(Path(out_dir))
    frames = [read_dataset(path) for path in training_files(root, p)]
    eval_df = read_dataset(root / p.data_dir / p.eval_file)
    splits = assemble(frames, eval_df, p)
    train_path = write_dataset(splits.train, out.train)
    eval_path = write_dataset(splits.test, out.eval)
    written_dev = write_dataset(splits.dev, out.dev) if len(splits.dev) else None
    if written_dev is None:
        out.dev.unlink(missing_ok=True)  # no dev split now: an older one must not be picked up
    pool = unlabelled_pool(news_texts or [], [splits.train], [splits.dev, splits.test, eval_df])
    written_pool = write_dataset(pd.DataFrame({"text": pool.texts}), out.unlabelled) if news_texts is not None else None
    if written_pool is None:
        out.unlabelled.unlink(missing_ok=True)  # no news now: an older pool must not be picked up
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
        unlabelled_path=str(written_pool) if written_pool else None,
        unlabelled_rows=len(pool.texts),
        unlabelled_dropped_heldout=pool.dropped_heldout,
    )
