"""Scoring a batch of news into the predictions store.

A batch is a CSV or JSONL file with ``text`` and ``published_at`` and optionally ``ticker``, ``source``
and ``label``. Rows that cannot be used (empty or overlong text, a time that does not parse, a label that
is not a class) are counted by reason and skipped; a file that cannot be used at all raises ``DataError``.
Tickers come from the ``ticker`` column, ``$cashtags`` and the configured company names.
``run`` reads, checks, scores (the scorer sorts by length and batches) and appends the batch to the store
in one transaction.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from finsent import utc
from finsent.config import MonitorParams
from finsent.data.frames import DataError, check_columns, normalise_labels, read_table
from finsent.monitoring.store import BatchMeta, DuplicateBatchError, append_batch, find_batch
from finsent.vocabulary import CASHTAG, CONTROL_CHARS, LABELS, PROBABILITY_COLUMNS, visible

BATCH_REQUIRED = ("text", "published_at")
BATCH_OPTIONAL = ("ticker", "source", "label")
_TICKER = re.compile(r"^[A-Z][A-Z.]{0,9}$")


class ProbabilityScorer(Protocol):
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class NewsBatch:
    """The usable rows of a batch file and what was skipped, by reason."""

    frame: pd.DataFrame  # text, published_at (UTC), tickers ("AAPL,MSFT"), source, label (-1: none)
    rows_in: int
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows
    examples: dict[str, list[int]] = field(default_factory=dict)  # reason -> first data-row numbers (1-based)
    row_reasons: list[str | None] = field(default_factory=list)  # per input row: why it was skipped, None if kept

    @property
    def rows_skipped(self) -> int:
        return sum(self.skipped.values())


@dataclass(frozen=True)
class ScoreSummary:
    status: str  # scored | already_scored
    file: str
    sha256: str
    batch_id: str  # new, or the batch this file was scored as before
    rows_in: int
    rows_scored: int
    rows_skipped: int
    skipped: dict[str, int]
    model_name: str
    model_version: str
    message: str


def company_pattern(company_tickers: dict[str, str]) -> re.Pattern[str] | None:
    """One case-insensitive whole-word pattern for all company names, longest first."""
    if not company_tickers:
        return None
    names = sorted((re.escape(name.strip()) for name in company_tickers), key=len, reverse=True)
    return re.compile(r"(?<!\w)(" + "|".join(names) + r")(?!\w)", re.IGNORECASE)


def extract_tickers(text: str, given: str | None, company_tickers: dict[str, str], pattern: re.Pattern[str] | None = None) -> list[str]:
    """Sorted unique tickers from the given ticker field, the text's $cashtags and company names.

    Pass ``pattern`` (from ``company_pattern``) when calling this for many texts.
    """
    if pattern is None and company_tickers:
        pattern = company_pattern(company_tickers)
    found: set[str] = set()
    if given:
        found.update(t.lstrip("$").upper() for t in re.split(r"[,;\s]+", given) if t.strip())
    found.update(m.group(0)[1:].rstrip(".").upper() for m in CASHTAG.finditer(text))
    if pattern is not None:
        by_name = {name.strip().lower(): ticker.upper() for name, ticker in company_tickers.items()}
        found.update(by_name[m.group(1).lower()] for m in pattern.finditer(text))
    return sorted(t for t in found if _TICKER.match(t))


def _blank(values: pd.Series) -> pd.Series:
    return values.isna() | values.astype(str).str.strip().eq("")


def parse_published_at(values: pd.Series) -> pd.Series:
    """ISO 8601 dates or times to UTC timestamps; naive times are taken as UTC, failures become NaT."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return pd.to_datetime(values, utc=True)
    as_text = values.where(~_blank(values), None).map(lambda v: None if v is None else str(v).strip())
    return pd.to_datetime(as_text, utc=True, errors="coerce", format="ISO8601")


def check_batch(df: pd.DataFrame, p: MonitorParams, source: str = "batch") -> NewsBatch:
    """Keep the usable rows of a raw batch frame; count the others by reason."""
    check_columns(df, source, BATCH_REQUIRED)
    rows_in = len(df)
    df = df.reset_index(drop=True)
    text = df["text"].where(~_blank(df["text"]), None).map(lambda v: None if v is None or not visible(str(v)) else str(v).strip())
    published = parse_published_at(df["published_at"])
    latest = pd.Timestamp(utc.now()) + pd.Timedelta(days=utc.FUTURE_SLACK_DAYS)
    raw_label = df["label"] if "label" in df.columns else pd.Series([None] * rows_in)
    labelled = ~_blank(raw_label)
    labels = normalise_labels(raw_label.where(labelled, None))

    problems = {
        "empty_text": text.isna().to_numpy(),
        "text_too_long": text.fillna("").str.len().gt(p.max_text_chars).to_numpy(),
        "control_characters": text.fillna("").str.contains(CONTROL_CHARS).to_numpy(),
        "bad_published_at": published.isna().to_numpy(),
        "published_at_out_of_range": ((published < utc.EARLIEST_NEWS) | (published > latest)).fillna(False).to_numpy(),
        "bad_label": (labelled & labels.eq(-1)).to_numpy(),
    }
    bad = np.zeros(rows_in, dtype=bool)
    skipped, examples = {}, {}
    row_reasons: list[str | None] = [None] * rows_in
    for reason, mask in problems.items():  # a row is counted once, under its first problem
        first = mask & ~bad
        if first.any():
            skipped[reason] = int(first.sum())
            examples[reason] = (np.flatnonzero(first)[:5] + 1).tolist()
            for row in np.flatnonzero(first):
                row_reasons[row] = reason
        bad |= mask

    keep = ~bad
    pattern = company_pattern(p.company_tickers)
    given = df["ticker"] if "ticker" in df.columns else pd.Series([None] * rows_in)
    given = given.where(~_blank(given), None)
    source_column = df["source"] if "source" in df.columns else pd.Series([None] * rows_in)
    out = pd.DataFrame(
        {
            "text": text[keep].astype(str),
            "published_at": published[keep],
            "source": source_column.where(~_blank(source_column), None)[keep],
            "label": labels[keep].astype("int64"),
        }
    )
    out.insert(
        2,
        "tickers",
        [",".join(extract_tickers(t, g, p.company_tickers, pattern)) for t, g in zip(out["text"], given[keep])],
    )
    return NewsBatch(frame=out.reset_index(drop=True), rows_in=rows_in, skipped=skipped, examples=examples, row_reasons=row_reasons)


def read_batch(path: str | Path, p: MonitorParams) -> NewsBatch:
    """Read a CSV/JSONL batch and keep its usable rows; a file with none raises ``DataError``."""
    batch = check_batch(read_table(path), p, str(path))
    if batch.frame.empty:
        raise DataError(f"{path}: none of its {batch.rows_in} rows can be scored: {describe_skipped(batch)}")
    return batch


def describe_skipped(batch: NewsBatch) -> str:
    if not batch.skipped:
        return "no rows skipped"
    return "; ".join(f"{reason}: {n} row(s), e.g. row(s) {batch.examples[reason]}" for reason, n in batch.skipped.items())


def score_frame(scorer: ProbabilityScorer, df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with ``p_bearish``, ``p_bullish``, ``p_neutral`` and ``predicted`` (argmax) added."""
    probs = np.asarray(scorer.predict_proba(df["text"].tolist()), dtype=np.float64)
    if probs.shape != (len(df), len(LABELS)):
        raise ValueError(f"scorer returned probabilities of shape {probs.shape}, expected {(len(df), len(LABELS))}")
    if len(df) and not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("scorer returned rows that do not sum to 1: expected class probabilities")
    out = df.copy()
    for i, column in enumerate(PROBABILITY_COLUMNS):
        out[column] = probs[:, i]
    out["predicted"] = probs.argmax(axis=1).astype("int64") if len(df) else pd.Series(dtype="int64")
    return out


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def already_scored(path: Path, sha256: str, existing: dict, model_name: str, model_version: str) -> ScoreSummary:
    return ScoreSummary(
        status="already_scored",
        file=str(path),
        sha256=sha256,
        batch_id=existing["batch_id"],
        rows_in=existing["rows_in"],
        rows_scored=0,
        rows_skipped=0,
        skipped={},
        model_name=model_name,
        model_version=model_version,
        message=f"{path}: already scored as batch {existing['batch_id']} by {existing['model_name']} "
        f"v{existing['model_version']}; nothing written",
    )


def run(
    p: MonitorParams,
    scorer: ProbabilityScorer,
    path: str | Path,
    engine: Engine,
    *,
    model_name: str,
    model_version: str,
    scored_at: datetime | None = None,
) -> ScoreSummary:
    """Score one batch file with the champion and append it to the store (all rows or none).

    A file already in the store (same SHA-256) is not scored again: the summary says so, also when a
    concurrent run stored it while this one was scoring (the second writer's transaction is refused
    by the store's unique key, and that is the same outcome: no-op, not an error).
    """
    path = Path(path)
    sha256 = file_sha256(path) if path.is_file() else ""
    if sha256 and (existing := find_batch(engine, sha256)) is not None:
        return already_scored(path, sha256, existing, model_name, model_version)
    batch = read_batch(path, p)
    scored = score_frame(scorer, batch.frame)
    meta = BatchMeta(
        batch_id=uuid.uuid4().hex,
        file=str(path),
        sha256=sha256,
        rows_in=batch.rows_in,
        rows_skipped=batch.rows_skipped,
        model_name=model_name,
        model_version=str(model_version),
        scored_at=scored_at or utc.now(),
    )
    try:
        written = append_batch(engine, scored, meta, chunk_rows=p.insert_chunk_rows)
    except DuplicateBatchError:
        existing = find_batch(engine, sha256)
        if existing is None:
            raise
        return already_scored(path, sha256, existing, model_name, model_version)
    return ScoreSummary(
        status="scored",
        file=str(path),
        sha256=sha256,
        batch_id=meta.batch_id,
        rows_in=batch.rows_in,
        rows_scored=written,
        rows_skipped=batch.rows_skipped,
        skipped=batch.skipped,
        model_name=model_name,
        model_version=str(model_version),
        message=f"{path}: scored {written} of {batch.rows_in} rows; skipped: {describe_skipped(batch)}",
    )
