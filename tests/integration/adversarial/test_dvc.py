"""DVC under `data add`, `data checkout`, `data init` and `data status`: remotes that do not exist, are
unreachable (a closed port on 127.0.0.1), read-only or blocked; a cache that is missing or unusable; a
data.dvc or DVC config that is garbage; data/ holding files nobody versioned. Nothing versioned is lost,
and data.dvc stays byte for byte as it was. (`data.dvc_remote=<unknown name>` is in test_data_safety.)"""

from __future__ import annotations

import json
import shutil

import pytest

from finsent.data.versioning import is_in_sync, recorded_md5
from testkit.adversarial import REMOTE, Cli
from testkit.local_services import free_port as closed_port  # a port nothing listens on

pytestmark = pytest.mark.integration


def set_remote(project, url: str, extra: str = "") -> None:
    (project / ".dvc" / "config").write_text(
        f"[core]\n    analytics = false\n    remote = local\n['remote \"local\"']\n    url = {url}\n{extra}"
    )


@pytest.fixture
def data(untrained, capsys) -> Cli:
    return Cli(untrained, capsys)


@pytest.fixture
def two_versions(data, batch) -> tuple[Cli, str, str]:
    """The project after one `data add`: (cli, first version, second version)."""
    first = recorded_md5(data.project)
    data.ok("data", "add", str(batch("first")))
    return data, first, recorded_md5(data.project)


def drop_cache(project) -> None:
    shutil.rmtree(project / ".dvc" / "cache")


# --- remotes during `data add` ------------------------------------------------------------------------------


def test_add_to_a_remote_blocked_by_a_file_versions_nothing(data, batch, tmp_path):
    (tmp_path / "blocker").write_text("a file where the remote's folder should be")
    set_remote(data.project, str(tmp_path / "blocker" / "store"))
    data.fails("data", "add", str(batch()), says="dvc push")
    assert is_in_sync(data.project)


def test_add_to_a_read_only_remote_versions_nothing(data, batch, mounts):
    with mounts.read_only(data.project / REMOTE):
        data.fails("data", "add", str(batch()), says="dvc push")


def test_add_to_an_unreachable_http_remote_versions_nothing(data, batch):
    set_remote(data.project, f"http://127.0.0.1:{closed_port()}/dvc")
    data.fails("data", "add", str(batch()), says="dvc push")


def test_add_to_an_unreachable_s3_remote_versions_nothing(data, batch, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "finsent-tests")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "finsent-tests")
    set_remote(data.project, "s3://finsent/dvc", f"    endpointurl = http://127.0.0.1:{closed_port()}\n    connect_timeout = 2\n")
    data.fails("data", "add", str(batch()), says="dvc push")


def test_add_with_no_remote_configured_versions_nothing(data, batch):
    (data.project / ".dvc" / "config").write_text("[core]\n    analytics = false\n")
    data.fails("data", "add", str(batch()), says="dvc push")


def test_a_garbage_change_journal_is_named_and_nothing_changes(data, batch):
    """The journal of a killed `data add`/`data checkout` that cannot be read (a disk fault) is named:
    guessing how to finish a change could lose data."""
    journal = data.project / ".dvc" / "tmp" / "finsent-change.json"
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_text("{not json")
    data.fails("data", "add", str(batch()), says=("interrupted data change", "finsent-change.json"))
    assert journal.read_text() == "{not json"


def write_journal(project, **record) -> None:
    journal = project / ".dvc" / "tmp" / "finsent-change.json"
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_text(json.dumps(record))


def test_a_journal_naming_a_path_outside_the_project_deletes_nothing(data, batch, tmp_path):
    outside = tmp_path / "outside.csv"
    outside.write_text("not the project's")
    previous = (data.project / "data.dvc").read_text()
    write_journal(data.project, operation="add", batch=str(outside), data_dvc=previous, git_commit=True, done=False)
    data.fails("data", "add", str(batch()), says=("interrupted data change", "not inside the project"))
    assert outside.read_text() == "not the project's"


def test_a_journal_of_an_add_stopped_before_its_copy_is_cleared_and_the_add_goes_on(data, batch):
    previous = (data.project / "data.dvc").read_text()
    write_journal(data.project, operation="add", batch="data/batches/ghost.csv", data_dvc=previous, git_commit=True, done=False)
    code, out, err = data.run("data", "add", str(batch()))
    assert code == 0, err[-3000:]
    assert "stopped before it changed anything" in err and "rolled back" not in err
    assert json.loads(out)["added"] == "extra" and is_in_sync(data.project)


# --- the cache -------------------------------------------------------------------------------------------------


def test_checkout_with_no_cache_and_no_remote_changes_nothing(two_versions, tmp_path):
    data, first, _ = two_versions
    drop_cache(data.project)
    set_remote(data.project, str(tmp_path / "gone"))
    data.fails("data", "checkout", first, says="in no DVC cache or reachable remote")


def test_checkout_with_no_cache_restores_from_the_remote(two_versions):
    data, first, second = two_versions
    drop_cache(data.project)
    assert data.ok("data", "checkout", first)["dvc_md5"] == first
    assert is_in_sync(data.project) and not (data.project / "data" / "batches").exists()
    assert data.ok("data", "checkout", second)["dvc_md5"] == second  # and back


def test_init_without_data_cache_or_remote_names_the_missing_version(two_versions, tmp_path):
    data, _, second = two_versions
    shutil.rmtree(data.project / "data")
    drop_cache(data.project)
    set_remote(data.project, str(tmp_path / "gone"))
    before = data.snapshot()
    data.fails("data", "init", says=("in no DVC cache or reachable remote", second), ignore=("data",))
    assert recorded_md5(data.project) == second and data.snapshot().data_dvc == before.data_dvc


def test_add_with_a_cache_that_is_a_file_versions_nothing(data, batch):
    drop_cache(data.project)
    (data.project / ".dvc" / "cache").write_text("not a folder")
    data.fails("data", "add", str(batch()), says="DVC cannot work")


# --- garbage in DVC's own files --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"outs: [\n", b"outs: 5\n", b"- just\n- a list\n", b"\xff\xfe\x00garbage", b"", b"outs: []\n"],
    ids=["broken-yaml", "outs-not-a-list", "a-list", "binary", "empty", "no-outs"],
)
def test_a_garbage_data_dvc_is_named(data, content):
    (data.project / "data.dvc").write_bytes(content)
    data.fails("data", "status", says="data.dvc")


def test_an_empty_data_dvc_is_not_taken_for_a_new_project(data, batch):
    """An empty data.dvc (a write cut short) once read as "no version yet", and `data add` re-initialised
    data/ from the shipped copy: the recorded version was silently replaced."""
    (data.project / "data.dvc").write_bytes(b"")
    data.fails("data", "add", str(batch()), says="records no data version")
    assert (data.project / "data.dvc").read_bytes() == b""


def test_a_garbage_dvc_config_is_named(data):
    (data.project / ".dvc" / "config").write_text("[core\nremote = = =\n")
    data.fails("data", "status", says="DVC cannot work")


def test_a_project_that_is_not_a_dvc_repository_is_named(data, batch):
    shutil.rmtree(data.project / ".dvc")
    data.fails("data", "add", str(batch()), says="not a DVC repository")
    assert not (data.project / ".dvc").exists()


# --- data/ holding what nobody versioned -------------------------------------------------------------------------


def test_add_refuses_while_data_holds_an_unversioned_batch(data, batch):
    dropped = data.project / "data" / "batches" / "by-hand.csv"
    dropped.parent.mkdir(parents=True)
    dropped.write_text("text,label\nAcme names a new chief executive,neutral\n")
    data.fails("data", "add", str(batch()), says="batches/by-hand.csv")
    assert dropped.is_file()


@pytest.mark.parametrize("version", ["", "HEAD", "0123456789abcdef", "g" * 32], ids=["empty", "git-ref", "short", "not-hex"])
def test_checkout_of_something_that_is_not_a_version_is_named(data, version):
    data.fails("data", "checkout", version, says="not a data version")
