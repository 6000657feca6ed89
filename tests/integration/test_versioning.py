import shutil

import pandas as pd
import pytest

from finsent.config import DataParams
from finsent.data.versioning import (
    VersioningError,
    add_batch,
    checkout_version,
    current_version,
    ensure_data,
    is_in_sync,
    recorded_md5,
)

pytestmark = pytest.mark.integration

P = DataParams()


def test_fresh_project_bootstraps_versions_and_pushes(project):
    version = ensure_data(project, P)
    assert version.dvc_md5.endswith(".dir") and version.dvc_md5 == recorded_md5(project)
    assert version.data_dvc_committed and version.git_commit
    assert is_in_sync(project)
    assert any((project / ".dvc-storage").rglob("*")), "the local remote holds the data"


def test_fresh_clone_without_remote_bootstraps_from_shipped_copy(project, tmp_path):
    ensure_data(project, P)
    shutil.rmtree(project / "data")
    shutil.rmtree(project / ".dvc" / "cache", ignore_errors=True)
    shutil.rmtree(project / ".dvc-storage")  # no remote reachable
    version = ensure_data(project, P, log=lambda m: None)
    assert version.dvc_md5 == recorded_md5(project)
    assert is_in_sync(project)


def test_add_batch_makes_a_new_version_and_old_one_restores(project, tmp_path):
    first = ensure_data(project, P)
    batch = tmp_path / "news.csv"
    pd.DataFrame({"text": ["Acme shares soar on record profit", "Acme cuts outlook"], "label": [1, 0]}).to_csv(batch, index=False)
    second = add_batch(project, P, batch, "news-2026-11-28")
    assert second.dvc_md5 != first.dvc_md5 and second.data_dvc_committed
    assert (project / "data" / "batches" / "news-2026-11-28.csv").is_file()
    with pytest.raises(VersioningError, match="already versioned"):
        add_batch(project, P, batch, "news-2026-11-28")

    restored = checkout_version(project, P, first.dvc_md5, log=lambda m: None)
    assert restored.dvc_md5 == first.dvc_md5
    assert not (project / "data" / "batches" / "news-2026-11-28.csv").exists()
    shutil.rmtree(project / ".dvc" / "cache")  # the remote alone must be enough
    assert checkout_version(project, P, second.dvc_md5, log=lambda m: None).dvc_md5 == second.dvc_md5
    assert (project / "data" / "batches" / "news-2026-11-28.csv").is_file()


def test_unknown_version_is_a_clear_error_and_keeps_data_dvc(project):
    ensure_data(project, P)
    before = (project / "data.dvc").read_text()
    with pytest.raises(VersioningError, match="no DVC cache or reachable remote|could not be fully restored"):
        checkout_version(project, P, "0" * 32, log=lambda m: None)
    assert (project / "data.dvc").read_text() == before


def test_failed_push_leaves_no_half_added_batch(project, tmp_path):
    first = ensure_data(project, P)
    (project / ".dvc" / "config").write_text(
        "[core]\n    analytics = false\n    remote = broken\n['remote \"broken\"']\n    url = /proc/finsent-no-such-remote\n"
    )
    batch = tmp_path / "b.csv"
    pd.DataFrame({"text": ["Acme beats estimates"], "label": [1]}).to_csv(batch, index=False)
    with pytest.raises(VersioningError, match="push"):
        add_batch(project, P, batch, "b", git_commit=False)
    assert not (project / "data" / "batches" / "b.csv").exists()
    assert current_version(project).dvc_md5 == first.dvc_md5
