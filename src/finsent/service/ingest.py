"""News posted to ``/v1/news``: the items checked by the same rules as a batch file, keyed, scored and
stored once each.

An item's key is the client's ``id`` when it sends one, else a SHA-256 of its content (text, time,
ticker, source): a retried post, or the same item posted to two replicas, lands on the same key, and the
store's key table keeps the first (``store.append_news``). An item that cannot be used is answered with
its reason and the others are kept.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import date

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from finsent import utc
from finsent.config import MonitorParams
from finsent.monitoring import batch
from finsent.monitoring.store import BatchMeta, append_news
from finsent.vocabulary import LABELS, PROBABILITY_COLUMNS

NEWS_SOURCE = "api:/v1/news"  # the batches table's ``file`` for items posted to the service
ITEM_FIELDS = ("text", "published_at", "ticker", "source", "id")


def item_key(item: dict) -> str:
    if item.get("id") not in (None, ""):
        return f"id:{item['id']}"
    content = json.dumps([item.get(name) for name in ("text", "published_at", "ticker", "source")], ensure_ascii=False)
    return "sha256:" + hashlib.sha256(content.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CheckedItems:
    """Posted items after the batch rules: the usable ones as a frame, and each input's fate so far."""

    frame: pd.DataFrame  # the usable, distinct items (text, published_at, tickers, source, label)
    keys: list[str]  # one per frame row
    positions: list[int]  # the input index of each frame row
    rejected: dict[int, str]  # input index -> reason
    known: dict[int, str] = field(default_factory=dict)  # input index -> key, for items the store already holds


def check_items(items: list[dict], p: MonitorParams, invalid: dict[int, str] | None = None) -> CheckedItems:
    """Apply the batch-file rules to posted items. ``invalid`` holds items already refused (wrong
    types) by input index; an item repeating an earlier one of the same post is refused as a duplicate."""
    rejected = dict(invalid or {})
    candidates = [i for i in range(len(items)) if i not in rejected]
    raw = pd.DataFrame(
        {name: [items[i].get(name) for i in candidates] for name in ("text", "published_at", "ticker", "source")},
        dtype=object,
    )
    checked = batch.check_batch(raw, p, source="posted items")
    kept: list[int] = []
    for position, reason in zip(candidates, checked.row_reasons):
        if reason is None:
            kept.append(position)
        else:
            rejected[position] = reason
    keys, rows, positions, seen = [], [], [], set()
    for row, position in enumerate(kept):
        key = item_key(items[position])
        if key in seen:
            rejected[position] = "duplicate_in_request"
            continue
        seen.add(key)
        keys.append(key)
        rows.append(row)
        positions.append(position)
    return CheckedItems(checked.frame.iloc[rows].reset_index(drop=True), keys, positions, rejected)


def drop_known(checked: CheckedItems, known: set[str]) -> CheckedItems:
    """Leave out the items the store already holds (a retried post): they are answered as duplicates
    without being scored again. One that arrives in between is caught by the store's key instead."""
    keep = [row for row, key in enumerate(checked.keys) if key not in known]
    return replace(
        checked,
        frame=checked.frame.iloc[keep].reset_index(drop=True),
        keys=[checked.keys[row] for row in keep],
        positions=[checked.positions[row] for row in keep],
        known={checked.positions[row]: key for row, key in enumerate(checked.keys) if key in known},
    )


def scored_frame(frame: pd.DataFrame, probabilities: np.ndarray) -> pd.DataFrame:
    out = frame.copy()
    for i, column in enumerate(PROBABILITY_COLUMNS):
        out[column] = probabilities[:, i].astype(np.float64)
    out["predicted"] = probabilities.argmax(axis=1).astype("int64")
    return out


def store(engine: Engine, scored: pd.DataFrame, keys: list[str], items_in: int, *, model_name: str, model_version: str) -> list[str]:
    """Append the scored items in one transaction; returns the keys that were new."""
    batch_id = uuid.uuid4().hex
    meta = BatchMeta(
        batch_id=batch_id,
        file=NEWS_SOURCE,
        sha256=hashlib.sha256(batch_id.encode()).hexdigest(),  # no file: unique per post
        rows_in=items_in,
        rows_skipped=items_in - len(keys),
        model_name=model_name,
        model_version=model_version,
        scored_at=utc.now(),
    )
    return append_news(engine, scored, keys, meta)


def touched(scored: pd.DataFrame, keys: list[str], stored: list[str]) -> tuple[set[str], set[date]]:
    """The tickers and UTC days of the newly stored items: where the sentiment index moved."""
    new = pd.Series(keys).isin(set(stored)).to_numpy()
    rows = scored[new]
    tickers = {t for value in rows["tickers"] for t in str(value).split(",") if t}
    days = {ts.date() for ts in pd.to_datetime(rows["published_at"], utc=True)}
    return tickers, days


def prediction(probabilities: np.ndarray, model_version: str) -> dict:
    return {
        "label": LABELS[int(np.argmax(probabilities))],
        "probabilities": {name: round(float(v), 6) for name, v in zip(LABELS, probabilities)},
        "model_version": model_version,
    }


def item_results(
    items: list[dict], checked: CheckedItems, scored: pd.DataFrame | None, stored: list[str], model_version: str
) -> list[dict]:
    """One answer per posted item, in order: stored, duplicate (already in the store; scored only when
    it arrived while this post was being scored) or rejected."""
    new = set(stored)
    results: list[dict] = [{} for _ in items]
    for position, reason in checked.rejected.items():
        results[position] = {"index": position, "status": "rejected", "reason": reason}
    for position, key in checked.known.items():
        results[position] = {"index": position, "key": key, "status": "duplicate"}
    for row, (position, key) in enumerate(zip(checked.positions, checked.keys)):
        probs = scored[list(PROBABILITY_COLUMNS)].to_numpy()[row] if scored is not None else None
        results[position] = {
            "index": position,
            "key": key,
            "status": "stored" if key in new else "duplicate",
            "tickers": [t for t in str(checked.frame["tickers"].iloc[row]).split(",") if t],
            **(prediction(probs, model_version) if probs is not None else {}),
        }
    return results
