"""The dashboard's queries on PostgreSQL (``monitor.store_url`` at scale): the tests of
tests/unit/dashboard/test_queries.py, collected here a second time with ``store`` a database on a real
PostgreSQL server (skipped, saying why, where none is installed)."""

from __future__ import annotations

import uuid

import pytest
from unit.dashboard.test_queries import (  # noqa: F401 - collected in this module, so they get its store
    test_alerts_of_the_tickers_and_range,
    test_headlines_behind_a_move_most_influential_first,
    test_index_matches_the_pandas_index_of_the_monitoring_room,
    test_index_range_holds_both_days_and_only_the_asked_tickers,
    test_news_items_get_their_ticker_rows_in_the_same_transaction,
    test_requests_that_cannot_be_answered,
    test_ticker_rows_are_backfilled_once_for_an_older_store,
    test_volumes_busiest_first,
)

from finsent.monitoring.store import make_engine
from testkit import dashboard_store, local_services

pytestmark = pytest.mark.integration


@pytest.fixture(params=["postgresql"])
def store(postgres):
    return dashboard_store.fill(make_engine(local_services.create_database(postgres, f"dash_{uuid.uuid4().hex[:12]}")))
