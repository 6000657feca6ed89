"""DVC under `data add`, `data checkout`, `data init` and `data status`: remotes that do not exist, are
unreachable (a closed port on 127.0.0.1), read-only or blocked; a cache that is missing or unusable; a
data.dvc or DVC config that is garbage; data/ holding files nobody versioned. Nothing versioned is lost,
and data.dvc stays byte for byte as it was. (`data.dvc_remote=<unknown name>` is in test_data_safety.)"""

from __future__ import annotations

import shutil
import socket

import pytest
from testkit.adversarial import REMOTE, Cli

from finsent.data.versioning import is_in_sync, recorded_md5

pytestmark = pytest.mark.integration


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    [b"outs: [\n", b"outs: 5\n", b"- just\n- a list\n", b"\xff\xfe\x00garbage"],
    ids=["broken-yaml", "outs-not-a-list", "a-list", "binary"],
)
def test_a_garbage_data_dvc_is_named(data, content):
    (data.project / "data.dvc").write_bytes(content)
    data.fails("data", "status", says="data.dvc")


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
