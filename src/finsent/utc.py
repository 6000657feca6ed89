"""UTC time, one way everywhere: aware datetimes in the code, naive UTC in the database columns.

SQLite has no time zones, so every store column holds naive UTC; these are the two conversions.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd


def now() -> datetime:
    return datetime.now(UTC)


def naive(value: datetime | pd.Timestamp | str) -> datetime:
    """Naive UTC, for a database column; a naive input is taken to be UTC already."""
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.tz_localize(None).to_pydatetime()


def aware(value: datetime) -> datetime:
    """Aware UTC; a naive input (as read from a database column) is taken to be UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
