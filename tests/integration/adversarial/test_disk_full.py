"""A full disk (a small tmpfs, mounted by the test; skipped where mounting is not allowed) under the
predictions store, the DVC remote, data/, the quarantine, the MLflow store and an output folder. Each
command ends with one line naming what could not be written; nothing is half-written; once there is room
again the same command succeeds."""

from __future__ import annotations

import shutil

import pytest

from testkit.adversarial import Cli, Snapshot, registry_state

pytestmark = pytest.mark.integration


def long_news(news, rows: int = 600):
    """A news file whose rows take a few hundred kB in the store."""
    return news(rows, name="long.csv", text_suffix=" -- " + "market commentary " * 20)


def test_score_into_a_store_on_a_full_disk_writes_nothing_then_scores_once(cli, news, tmp_path, mounts):
    disk = tmp_path / "disk"
    with mounts.tmpfs(disk, "2m"):
        store = disk / "predictions.db"
        url = f"sqlite:///{store}"
        cli.store = store
        small = news(20, name="small.csv", start=600)
        assert cli.ok("--set", f"monitor.store_url={url}", "score", str(small))["rows_scored"] == 20
        filler = mounts.fill(disk, leave_bytes=64 * 1024)
        big = long_news(news)
        cli.fails("--set", f"monitor.store_url={url}", "score", str(big), says=("predictions store", "full"))
        assert Snapshot.take(cli.project, store).rows() == 20
        filler.unlink()
        assert cli.ok("--set", f"monitor.store_url={url}", "score", str(big))["rows_scored"] == 600
        assert Snapshot.take(cli.project, store).rows() == 620


def test_data_add_with_its_remote_on_a_full_disk_versions_nothing(untrained, batch, capsys, mounts):
    cli = Cli(untrained, capsys)
    remote = untrained / ".dvc-storage"
    saved = untrained.parent / "remote-copy"
    shutil.copytree(remote, saved)
    with mounts.tmpfs(remote, "8m"):
        shutil.copytree(saved, remote, dirs_exist_ok=True)
        filler = mounts.fill(remote, leave_bytes=0)
        big = batch("big", texts=[f"Acme update number {i}: " + "guidance detail " * 60 for i in range(150)], labels=["neutral"] * 150)
        cli.fails("data", "add", str(big), says="dvc push")
        filler.unlink()
        assert cli.ok("data", "add", str(big))["added"] == "big"


def test_data_add_with_data_on_a_full_disk_versions_nothing(untrained, batch, capsys, mounts):
    cli = Cli(untrained, capsys)
    data = untrained / "data"
    saved = untrained.parent / "data-copy"
    shutil.copytree(data, saved)
    with open(untrained / ".dvcignore", "a") as ignore:  # the filler is not data
        ignore.write("\n.filler\n")
    with mounts.tmpfs(data, "4m"):
        shutil.copytree(saved, data, dirs_exist_ok=True)
        filler = mounts.fill(data, leave_bytes=0)
        big = batch("big", texts=[f"Acme update number {i}: " + "guidance detail " * 60 for i in range(150)], labels=["neutral"] * 150)
        before = cli.snapshot()
        cli.fails("data", "add", str(big), says="No space left", ignore=("data",))
        after = cli.snapshot()
        assert dict(after.data) == {**dict(before.data), ".filler": dict(after.data)[".filler"]}  # no half batch
        filler.unlink()
        assert cli.ok("data", "add", str(big))["added"] == "big"


def test_a_rejected_batch_with_its_quarantine_on_a_full_disk_leaves_no_half_copy(cli, tmp_path, mounts):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\n" + "".join(f"Acme note {i} {'x' * 500},sideways\n" for i in range(400)))
    quarantine = cli.project / "quarantine"
    with mounts.tmpfs(quarantine, "1m"):
        mounts.fill(quarantine, leave_bytes=16 * 1024)
        before = cli.snapshot()
        cli.fails("data", "add", str(bad), says=("bad.csv", "quarantine"))
        assert cli.snapshot().quarantine == before.quarantine


def test_promote_with_the_mlflow_store_on_a_full_disk_keeps_the_champion(promoted, capsys, tmp_path, mounts):
    cli = Cli(promoted, capsys)
    db = promoted / "mlflow.db"
    saved = tmp_path / "mlflow.db"
    shutil.copy2(db, saved)
    disk = tmp_path / "disk"
    with mounts.tmpfs(disk, "8m"):
        shutil.copy2(saved, disk / "mlflow.db")
        uri = f"sqlite:///{disk / 'mlflow.db'}"
        before = registry_state(disk / "mlflow.db")
        assert before[0] == "2"
        mounts.fill(disk, leave_bytes=0)
        cli.fails("--set", f"register.tracking_uri={uri}", "registry", "promote", "1", "--reason", "disk test", says="full")
        assert registry_state(disk / "mlflow.db") == before


def test_an_index_written_to_a_full_disk_is_named(cli, news, tmp_path, mounts):
    cli.ok("score", str(news(60)))
    out = tmp_path / "out"
    with mounts.tmpfs(out, "1m"):
        mounts.fill(out, leave_bytes=0)
        cli.fails("monitor", "index", "--out", str(out / "index"), says=("No space left", "out"))
        assert [p.name for p in out.rglob("*") if p.is_file()] == [".filler"]  # no half-written file
