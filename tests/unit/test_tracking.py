import time

import pytest

from finsent.config import RegisterParams
from finsent.tracking import StoreUnavailable, check_store, frame_sha256, resolve_tracking_uri


def test_unreachable_server_fails_fast_with_a_clear_message():
    started = time.perf_counter()
    with pytest.raises(StoreUnavailable, match="unreachable"):
        check_store("http://127.0.0.1:9/", timeout_s=2)
    assert time.perf_counter() - started < 10


def test_sqlite_in_missing_folder_is_unavailable(tmp_path):
    with pytest.raises(StoreUnavailable, match="does not exist"):
        check_store(f"sqlite:///{tmp_path}/missing/mlflow.db")


def test_relative_sqlite_uri_is_taken_from_the_project_root(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(RegisterParams(), tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert resolve_tracking_uri(RegisterParams(), tmp_path) == "http://mlflow.internal:5000"


def test_eval_hash_depends_on_rows_and_order():
    import pandas as pd

    a = pd.DataFrame({"text": ["x", "y"], "label": [0, 1]})
    assert frame_sha256(a) == frame_sha256(a.copy())
    assert frame_sha256(a) != frame_sha256(a.iloc[::-1])
    assert frame_sha256(a) != frame_sha256(a.assign(label=[0, 2]))
