"""kill -9 at each stage: `finsent train` while it validates, trains, evaluates and registers; `finsent
score` while it scores and inside its transaction; `finsent data add` once its batch is copied in, during
its DVC push, and after it. After the kill nothing is lost (the data version, the batches, the quarantine,
the store's rows, the champion), and the command run again does its work once."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from finsent.data.versioning import is_in_sync, recorded_files
from testkit.adversarial import Cli, Snapshot, Spawned, assert_nothing_lost, command_env, git_head, opened_by
from testkit.in_process_flow import flow_in_this_process

pytestmark = pytest.mark.integration


def new_run_file(project: Path, known: set[Path], relative: str):
    """A condition: a run folder that is new since ``known`` holds ``relative``."""

    def ready() -> bool:
        runs = project / "artifacts" / "runs"
        return any((run / relative).exists() for run in runs.glob("*") if run not in known)

    return ready


def runs_of(project: Path) -> set[Path]:
    return set((project / "artifacts" / "runs").glob("*"))


def mlflow_runs(project: Path) -> int:
    with sqlite3.connect(f"file:{project / 'mlflow.db'}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT count(*) FROM runs").fetchone()[0]


# --- finsent train ------------------------------------------------------------------------------------------


@pytest.mark.slow  # a `finsent train` process each (~20 s); the kill while registering (below) is in the fast run
@pytest.mark.parametrize("stage, marker", [("validate", "validation.json"), ("train", "train"), ("evaluate", "eval")])
def test_train_killed_at_a_stage_loses_nothing(trained, prefect_api_url, tmp_path, stage, marker):
    before, known = Snapshot.take(trained), runs_of(trained)
    spawned = Spawned(trained, "train", logs=tmp_path / "logs", env=command_env(PREFECT_API_URL=prefect_api_url))
    spawned.kill_when(new_run_file(trained, known, marker))
    assert_nothing_lost(before, Snapshot.take(trained))
    assert is_in_sync(trained)


def test_train_killed_while_registering_keeps_the_champion_and_a_rerun_registers(trained, prefect_api_url, tmp_path, capsys):
    before, logged = Snapshot.take(trained), mlflow_runs(trained)
    spawned = Spawned(trained, "train", logs=tmp_path / "logs", env=command_env(PREFECT_API_URL=prefect_api_url))
    spawned.kill_when(lambda: mlflow_runs(trained) > logged, every_s=0.05)  # its MLflow run has started
    after = Snapshot.take(trained)
    assert after.champion == before.champion == "1"
    assert before.diff(after, ignore=("registry",)) == {}  # a half-registered version may remain, never a champion
    assert after.versions in (before.versions, before.versions + 1)

    with flow_in_this_process(capsys):  # the rerun: a flow in this process
        assert Cli(trained, capsys).run("train")[0] == 0
    rerun = Snapshot.take(trained)
    assert rerun.versions == after.versions + 1 and rerun.champion is not None
    assert before.diff(rerun, ignore=("registry",)) == {}


# --- finsent score ------------------------------------------------------------------------------------------


@pytest.mark.slow  # the kill inside the transaction (below) is the fast run's
def test_score_killed_while_scoring_stores_nothing_and_a_rerun_scores_once(trained, news, tmp_path, capsys):
    file = news(400)
    before = Snapshot.take(trained)
    spawned = Spawned(trained, "score", str(file), logs=tmp_path / "logs")
    spawned.kill_when(lambda: opened_by(spawned.pid, "predictions.db"), every_s=0.01)  # the champion is loaded
    assert_nothing_lost(before, Snapshot.take(trained))
    assert Cli(trained, capsys).ok("score", str(file))["status"] == "scored"
    assert Snapshot.take(trained).rows() == before.rows() + 400


def test_score_killed_inside_its_transaction_leaves_the_store_as_it_was(trained, news, tmp_path, capsys):
    file = news(1500)
    store = trained / "artifacts" / "predictions.db"
    journal = store.with_name(store.name + "-journal")
    cli = Cli(trained, capsys)
    cli.ok("score", str(news(20, name="first.csv", start=1500)))  # the tables exist: the only write left is the batch
    before = Snapshot.take(trained)
    # One row per INSERT: the transaction stays open long enough to be killed inside it.
    args = ["--set", "monitor.insert_chunk_rows=1", "score", str(file)]
    spawned = Spawned(trained, *args, logs=tmp_path / "logs")
    spawned.kill_when(lambda: journal.exists() and journal.stat().st_size > 0, every_s=0.005)
    assert_nothing_lost(before, Snapshot.take(trained))  # the next reader rolls the journal back
    assert cli.ok("score", str(file))["rows_scored"] == 1500
    assert Snapshot.take(trained).rows() == before.rows() + 1500


# --- finsent data add ---------------------------------------------------------------------------------------


def test_data_add_killed_after_copying_its_batch_is_rolled_back_by_the_rerun(untrained, batch, tmp_path, capsys):
    file = batch("late")
    target = untrained / "data" / "batches" / "late.csv"
    before = Snapshot.take(untrained)
    spawned = Spawned(untrained, "data", "add", str(file), logs=tmp_path / "logs")
    spawned.kill_when(target.exists, every_s=0.002)
    after = Snapshot.take(untrained)
    assert after.data_dvc == before.data_dvc and after.git_head == before.git_head  # nothing versioned
    # The rerun finds the add's journal: it takes the copied batch away, then adds the file once.
    code, out, err = Cli(untrained, capsys).run("data", "add", str(file))
    assert code == 0, err[-3000:]
    assert json.loads(out)["added"] == "late" and "rolled back an interrupted `data add` of data/batches/late.csv" in err
    assert "batches/late.csv" in recorded_files(untrained) and is_in_sync(untrained)
    assert not journal_of(untrained).exists()


@contextlib.contextmanager
def hanging_http_remote(project: Path) -> Iterator[None]:
    """The project's DVC remote is, for the block, an HTTP server on 127.0.0.1 that takes connections
    and never answers: a push hangs there until killed. The old remote is put back afterwards."""
    config = project / ".dvc" / "config"
    saved = config.read_text()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)  # the kernel completes the handshakes; nothing ever reads or replies
        config.write_text(
            f"[core]\n    analytics = false\n    remote = hanging\n['remote \"hanging\"']\n"
            f"    url = http://127.0.0.1:{server.getsockname()[1]}/dvc\n"
        )
        try:
            yield
        finally:
            config.write_text(saved)


def journal_of(project: Path) -> Path:
    return project / ".dvc" / "tmp" / "finsent-change.json"


def test_data_add_killed_during_its_push_is_rolled_back_before_training_reads_the_data(untrained, batch, tmp_path, capsys):
    """Killed after `dvc add` wrote the new data.dvc, while `dvc push` waits on the remote: the version
    exists only here. The next command that reads the data (training's restore, here) rolls it back
    instead of training on a version the remote lacks; then the add, run again, versions it once."""
    from finsent.config import Params
    from finsent.data.versioning import ensure_data

    file = batch("late")
    before = Snapshot.take(untrained)
    with hanging_http_remote(untrained):
        spawned = Spawned(untrained, "data", "add", str(file), logs=tmp_path / "logs")
        spawned.kill_when(lambda: (untrained / "data.dvc").read_bytes() != before.data_dvc, every_s=0.01)
    assert not json.loads(journal_of(untrained).read_text())["done"]  # killed inside the push
    assert (untrained / "data" / "batches" / "late.csv").exists()
    status = Cli(untrained, capsys).ok("data", "status")  # says what the next data command will do
    assert status["interrupted_change"]["operation"] == "add" and not status["interrupted_change"]["done"]

    messages: list[str] = []
    ensure_data(untrained, Params().data, log=messages.append)
    assert any("rolled back an interrupted `data add`" in m for m in messages), messages
    assert_nothing_lost(before, Snapshot.take(untrained))
    assert not journal_of(untrained).exists() and is_in_sync(untrained)

    assert Cli(untrained, capsys).ok("data", "add", str(file))["added"] == "late"
    assert "batches/late.csv" in recorded_files(untrained) and is_in_sync(untrained)


def test_data_add_killed_after_its_push_is_finished_by_the_next_add(untrained, batch, tmp_path, capsys):
    """Killed between the push and data.dvc's git commit (journal marked pushed): the version is whole
    in the remote, so the next data command keeps it and makes the commit the add did not."""
    cli = Cli(untrained, capsys)
    head = git_head(untrained)
    assert cli.ok("data", "add", str(batch("late")))["added"] == "late"
    added = (untrained / "data.dvc").read_bytes()
    # The state such a kill leaves: the pushed version in data.dvc, git not yet told, the journal marked.
    subprocess.run(["git", "reset", "-q", "--soft", head], cwd=untrained, check=True)
    subprocess.run(["git", "reset", "-q", "--", "data.dvc"], cwd=untrained, check=True)
    record = {"operation": "add", "batch": "data/batches/late.csv", "data_dvc": before_add_dvc(untrained, head), "git_commit": True}
    journal_of(untrained).write_text(json.dumps({**record, "done": True}))
    code, out, err = cli.run("data", "add", str(batch("later")))
    assert code == 0, err[-3000:]
    assert "finished an interrupted `data add` of data/batches/late.csv" in err
    assert {"batches/late.csv", "batches/later.csv"} <= set(recorded_files(untrained))
    assert git_show(untrained, "HEAD~1:data.dvc") == added  # the interrupted add's own commit, then the new one
    assert not journal_of(untrained).exists() and is_in_sync(untrained)


def test_data_add_killed_while_dvc_rewrote_data_dvc_is_rolled_back(untrained, batch, capsys):
    """Killed while DVC rewrote data.dvc (seen once in the kill test above: the file was empty): `data
    status` still answers, from the journal, and the next add rolls the cut-short file back first."""
    cli = Cli(untrained, capsys)
    before = Snapshot.take(untrained)
    late = untrained / "data" / "batches" / "late.csv"
    late.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(batch("late"), late)
    record = {"operation": "add", "batch": "data/batches/late.csv", "data_dvc": before.data_dvc.decode(), "git_commit": True}
    journal_of(untrained).write_text(json.dumps({**record, "done": False}))
    (untrained / "data.dvc").write_bytes(b"")

    status = cli.ok("data", "status")
    assert status["version"] is None and "records no data version" in status["problem"]
    assert status["interrupted_change"]["batch"] == "data/batches/late.csv"
    code, out, err = cli.run("data", "add", str(batch("later")))
    assert code == 0, err[-3000:]
    assert "rolled back an interrupted `data add` of data/batches/late.csv" in err
    assert not late.exists() and "batches/later.csv" in recorded_files(untrained) and is_in_sync(untrained)


def before_add_dvc(project: Path, commit: str) -> str:
    return git_show(project, f"{commit}:data.dvc").decode()


def git_show(project: Path, spec: str) -> bytes:
    return subprocess.run(["git", "show", spec], cwd=project, check=True, capture_output=True).stdout


def test_data_checkout_killed_while_restoring_is_rolled_back_before_training_reads_the_data(untrained, batch, tmp_path, capsys):
    """Killed with the old data/ set aside and the asked-for version half restored: training's restore
    puts the old data/ and data.dvc back instead of versioning a partial folder as new data."""
    from finsent.config import Params
    from finsent.data.versioning import ensure_data, recorded_md5

    first = recorded_md5(untrained)
    assert Cli(untrained, capsys).ok("data", "add", str(batch("late")))["added"] == "late"
    before = Snapshot.take(untrained)
    stash = untrained / ".data.before-checkout"
    spawned = Spawned(untrained, "data", "checkout", first, logs=tmp_path / "logs")
    spawned.kill_when(lambda: stash.exists() and not json.loads(journal_of(untrained).read_text())["done"], every_s=0.002)
    assert (untrained / "data.dvc").read_bytes() != before.data_dvc  # it had pointed data.dvc at the old version

    messages: list[str] = []
    ensure_data(untrained, Params().data, log=messages.append)
    assert any("rolled back an interrupted `data checkout`" in m for m in messages), messages
    assert_nothing_lost(before, Snapshot.take(untrained))
    assert not stash.exists() and not journal_of(untrained).exists() and is_in_sync(untrained)
    # and the checkout, run again, restores the old version
    assert Cli(untrained, capsys).ok("data", "checkout", first)["dvc_md5"] == first
    assert "batches/late.csv" not in (recorded_files(untrained) or {}) and is_in_sync(untrained)
