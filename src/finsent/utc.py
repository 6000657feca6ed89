"""UTC time, one way everywhere: aware datetimes in the code, naive UTC in the database columns.

SQLite has no time zones, so every store column holds naive UTC; these are the two conversions.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from finsent.errors import FinsentError

# Published times outside this span are not news: a typo or a placeholder (1900-01-01, 2100-01-01).
EARLIEST_NEWS = datetime(1900, 1, 1, tzinfo=UTC)
FUTURE_SLACK_DAYS = 1  # a published time may run ahead of the scoring clock by clock skew, not more


class TimeFormatError(FinsentError, ValueError):
    """A time given on the command line or in a request is not an ISO 8601 date or time."""


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


def parse(value: str, what: str = "time") -> datetime:
    """An ISO 8601 date or time (naive means UTC) as aware UTC, or a ``TimeFormatError`` naming ``what``."""
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise TimeFormatError(f"{what} {value!r} is not an ISO 8601 date or time (for example 2024-03-01 or 2024-03-01T14:30Z)") from exc
    if pd.isna(ts):
        raise TimeFormatError(f"{what} {value!r} is not an ISO 8601 date or time")
    return aware(ts.to_pydatetime())
