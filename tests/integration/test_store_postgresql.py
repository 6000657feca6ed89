"""The predictions store on PostgreSQL (``monitor.store_url`` at scale): the store tests of
tests/unit/monitoring/test_store.py, collected here a second time with ``engine`` a database on a real
PostgreSQL server (skipped, saying why, where none is installed)."""

from __future__ import annotations

import uuid

import pytest
from unit.monitoring.test_store import (  # noqa: F401 - collected in this module, so they get its engine
    test_a_store_made_before_windows_were_recorded_counts_its_batches_as_monitored,
    test_a_window_retaken_after_a_failed_run_replaces_its_drift_record_under_the_same_id,
    test_append_and_read_back,
    test_constraint_violation_in_last_row_rolls_back_the_whole_batch,
    test_count_labelled_since,
    test_failure_in_the_middle_of_append_leaves_store_unchanged,
    test_missing_columns_and_empty_rows_are_clear_errors,
    test_read_predictions_date_range_is_half_open_and_utc,
    test_run_scores_a_file_once,
    test_same_file_twice_is_refused_and_store_unchanged,
    test_stored_batches_wait_for_a_window_oldest_first_until_one_completes,
    tiny_scorer,
)

from finsent.monitoring.store import make_engine
from testkit import local_services

pytestmark = pytest.mark.integration


@pytest.fixture(params=["postgresql"])
def engine(postgres):
    return make_engine(local_services.create_database(postgres, f"store_{uuid.uuid4().hex[:12]}"))
