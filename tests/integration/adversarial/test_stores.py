"""Stores that cannot be used: the predictions store and the MLflow store missing, garbage, truncated, a
folder, read-only (a read-only mount or SQLite's mode=ro: file modes do not stop root), behind a malformed
URL or an unreachable PostgreSQL (a closed port on 127.0.0.1), and output folders that cannot be written.
Each is named in one line, its password hidden, and left as it was."""

from __future__ import annotations

import pytest

from testkit.adversarial import Cli
from testkit.local_services import free_port as closed_port  # a port nothing listens on

pytestmark = pytest.mark.integration


@pytest.fixture
def scored(cli, news) -> Cli:
    """The trained project with one file scored: a store with rows to lose."""
    assert cli.ok("score", str(news(30, name="first.csv")))["status"] == "scored"
    return cli


def store_of(cli: Cli):
    return cli.project / "artifacts" / "predictions.db"


# --- the predictions store ----------------------------------------------------------------------------------


def test_a_store_on_a_read_only_mount_refuses_the_batch_and_keeps_its_rows(scored, news, mounts):
    before = scored.snapshot()
    with mounts.read_only(scored.project / "artifacts"):
        scored.fails("score", str(news(20, name="second.csv", start=40)), says="predictions store")
    assert scored.snapshot().rows() == before.rows() == 30
    assert scored.ok("score", str(news(20, name="second.csv", start=40)))["rows_scored"] == 20  # writable again: scored once


def test_a_store_opened_read_only_by_its_url_refuses_the_batch(scored, news):
    url = f"sqlite:///file:{store_of(scored)}?mode=ro&uri=true"
    scored.fails("--set", f"monitor.store_url={url}", "score", str(news(20, name="second.csv", start=40)), says="readonly")
    assert not list(scored.project.glob("file:*"))  # the URL named the store: no other one was made


@pytest.mark.parametrize("command", [["score", "NEWS"], ["monitor", "index"]], ids=["score", "index"])
def test_a_store_that_is_a_folder_is_named(cli, news, command):
    store_of(cli).mkdir(parents=True)
    cli.fails(*[str(news(10)) if a == "NEWS" else a for a in command], says="predictions store")
    assert store_of(cli).is_dir() and not any(store_of(cli).iterdir())


@pytest.mark.parametrize("command", [["score", "NEWS"], ["monitor", "index"]], ids=["score", "index"])
def test_a_truncated_store_is_named_and_left_as_it_was(scored, news, command):
    store = store_of(scored)
    store.write_bytes(store.read_bytes()[:2048])
    scored.fails(*[str(news(10, start=40)) if a == "NEWS" else a for a in command], says="predictions store")


def test_a_garbage_store_refuses_a_batch(cli, news):
    store_of(cli).parent.mkdir(parents=True, exist_ok=True)
    store_of(cli).write_bytes(b"\x00garbage\xff" * 4096)
    cli.fails("score", str(news(10)), says="predictions store")


def test_a_store_below_a_file_is_named(cli, news):
    cli.fails(
        "--set", f"monitor.store_url=sqlite:///{cli.project}/data.dvc/predictions.db", "score", str(news(10)), says="predictions store"
    )


@pytest.mark.parametrize(
    "url, says",
    [
        ("://nothing", "predictions store"),
        ("sqlite:/not-enough-slashes.db", "predictions store"),
        ("mysql://finsent:hunter2@127.0.0.1:3306/news", "no driver"),
        ("postgresql://finsent:hunter2@127.0.0.1:5432/news", "no driver"),
        ("sqlite:///file:no/such/folder/p.db?mode=ro&uri=true", "predictions store"),
    ],
    ids=["no-scheme", "one-slash", "mysql-no-driver", "postgresql-default-driver", "sqlite-uri-missing-file"],
)
def test_a_malformed_or_driverless_store_url_is_named_without_its_password(cli, news, url, says):
    message = cli.fails("--set", f"monitor.store_url={url}", "score", str(news(10)), says=says)
    assert "hunter2" not in message


@pytest.mark.parametrize(
    "command",
    [["score", "NEWS"], ["monitor", "index"], ["monitor", "run", "--no-retrain", "NEWS"]],
    ids=["score", "index", "monitor-run"],
)
def test_an_unreachable_postgresql_store_is_named_without_its_password(cli, news, command):
    url = f"postgresql+psycopg2://finsent:hunter2@127.0.0.1:{closed_port()}/news"
    args = [str(news(10)) if a == "NEWS" else a for a in command]
    message = cli.fails("--set", f"monitor.store_url={url}", *args, says=("predictions store", "127.0.0.1"))
    assert "hunter2" not in message


# --- output folders -------------------------------------------------------------------------------------------


def test_an_index_out_folder_that_is_a_file_is_named(scored, tmp_path):
    target = tmp_path / "taken.txt"
    target.write_text("mine")
    scored.fails("monitor", "index", "--out", str(target), says="taken.txt")
    assert target.read_text() == "mine"


def test_an_index_out_folder_on_a_read_only_mount_is_named(scored, tmp_path, mounts):
    folder = tmp_path / "reports"
    folder.mkdir()
    with mounts.read_only(folder):
        scored.fails("monitor", "index", "--out", str(folder / "index"), says="reports")


def test_an_index_window_that_ends_before_it_starts_is_refused(scored):
    scored.fails("monitor", "index", "--start", "2024-03-03", "--end", "2024-03-01", says="2024-03-03")


def test_a_drift_out_folder_that_is_a_file_is_named(cli, news, tmp_path):
    target = tmp_path / "taken.txt"
    target.write_text("mine")
    cli.fails("monitor", "drift", str(news(60)), "--out", str(target), says="taken.txt")
    assert target.read_text() == "mine"


# --- the MLflow store ----------------------------------------------------------------------------------------


def test_an_mlflow_store_that_is_a_folder_is_named(cli):
    db = cli.project / "mlflow.db"
    db.unlink()
    db.mkdir()
    cli.fails("registry", "show", says="mlflow.db")


@pytest.mark.parametrize("command", [["registry", "promote", "1", "--reason", "x"], ["score", "NEWS"]], ids=["promote", "score"])
def test_a_truncated_mlflow_store_is_named_and_left_as_it_was(cli, news, command):
    db = cli.project / "mlflow.db"
    db.write_bytes(db.read_bytes()[:8192])
    cli.fails(*[str(news(10)) if a == "NEWS" else a for a in command], says="cannot be opened as an MLflow database")


@pytest.mark.parametrize(
    "command, says",
    [
        (["registry", "promote", "1", "--reason", "x"], "not writable"),
        (["score", "NEWS"], "not writable"),
        (["data", "add", "BATCH"], "Read-only file system"),
    ],
    ids=["promote", "score", "data-add"],
)
def test_a_read_only_project_is_named_and_nothing_changes(cli, news, batch, mounts, command, says):
    args = [str(news(10)) if a == "NEWS" else str(batch("ro")) if a == "BATCH" else a for a in command]
    with mounts.read_only(cli.project):
        cli.fails(*args, says=says)
