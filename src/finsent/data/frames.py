"""Reading, normalising and writing labelled news batches.

Pure helpers (``normalise_labels``, ``stratified_sample``) work on data frames; ``read_dataset`` and
``write_dataset`` are the only functions here that touch files, and writing is atomic so a crash never
leaves a half-written dataset behind.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from finsent.errors import FinsentError
from finsent.files import atomic_path
from finsent.vocabulary import LABELS

REQUIRED_COLUMNS = ("text", "label")
_LABEL_BY_NAME = {name: i for i, name in enumerate(LABELS)}


class DataError(FinsentError, ValueError):
    """A dataset file cannot be used: missing, empty, not UTF-8, wrong columns or labels."""


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or JSONL file as strings, with errors that name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path}: file is empty")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: not valid UTF-8 (byte {exc.start}: {raw[exc.start : exc.start + 1]!r}); re-save the file as UTF-8"
        ) from exc
    try:
        if path.suffix.lower() in {".jsonl", ".ndjson", ".json"}:
            df = pd.read_json(io.StringIO(text), lines=path.suffix.lower() != ".json", dtype=False)
        else:
            # pandas' C parser ends a field at a NUL byte and drops the rest; the Python parser keeps
            # it, so that validation and scoring can see it and reject the row, not a cut text.
            engine = "python" if "\x00" in text else "c"
            df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""], engine=engine)
    except (ValueError, pd.errors.ParserError, csv.Error) as exc:
        raise DataError(f"{path}: cannot be parsed: {exc}") from exc
    if df.empty:
        raise DataError(f"{path}: has a header but no rows")
    return df


def normalise_labels(labels: pd.Series) -> pd.Series:
    """Map 0/1/2 or bearish/bullish/neutral (any case) to ints 0/1/2; unknown values become -1
    so that validation can count and show them instead of failing on the first one."""

    def to_int(value: object) -> int:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return -1
        s = str(value).strip().lower()
        if s in _LABEL_BY_NAME:
            return _LABEL_BY_NAME[s]
        try:
            f = float(s)
        except ValueError:
            return -1
        return int(f) if f.is_integer() and 0 <= int(f) < len(LABELS) else -1

    return labels.map(to_int).astype("int64")


def check_columns(df: pd.DataFrame, source: str, required: tuple[str, ...] = REQUIRED_COLUMNS) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; found {list(df.columns)}")


def read_dataset(path: str | Path) -> pd.DataFrame:
    """Read a labelled batch into columns ``text`` (str) and ``label`` (int, -1 when unknown),
    keeping any other columns."""
    df = read_table(path)
    check_columns(df, str(path))
    df = df.copy()
    df["text"] = df["text"].astype("string").fillna("").astype(str)
    df["label"] = normalise_labels(df["label"])
    return df.reset_index(drop=True)


def write_dataset(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a CSV atomically: a temporary file in the same folder, then a rename."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        df.to_csv(handle, index=False)
    return Path(path)


def stratified_sample(df: pd.DataFrame, max_rows: int | None, seed: int) -> pd.DataFrame:
    """At most ``max_rows`` rows keeping class shares; the full frame when ``max_rows`` is None."""
    if max_rows is None or len(df) <= max_rows:
        return df.reset_index(drop=True)
    frac = max_rows / len(df)
    parts = [g.sample(n=max(1, round(len(g) * frac)), random_state=seed) for _, g in df.groupby("label")]
    return pd.concat(parts).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def label_names(labels: np.ndarray | pd.Series) -> list[str]:
    return [LABELS[int(i)] for i in labels]
