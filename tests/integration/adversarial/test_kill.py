"""kill -9 at each stage: `finsent train` while it validates, trains, evaluates and registers; `finsent
score` while it scores and inside its transaction; `finsent data add` once its batch is copied in. After
the kill nothing is lost (the data version, the batches, the quarantine, the store's rows, the champion),
and the command run again does its work once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from testkit.adversarial import Cli, Snapshot, Spawned, assert_nothing_lost, command_env, one_error, opened_by

from finsent.data.versioning import is_in_sync, recorded_files

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

    with capsys.disabled():  # the rerun: a flow in this process (see test_cli_monitor on Prefect and capsys)
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


def test_data_add_killed_after_copying_its_batch_keeps_the_version_and_says_what_is_left(untrained, batch, tmp_path, capsys):
    file = batch("late")
    target = untrained / "data" / "batches" / "late.csv"
    before = Snapshot.take(untrained)
    spawned = Spawned(untrained, "data", "add", str(file), logs=tmp_path / "logs")
    spawned.kill_when(target.exists, every_s=0.002)
    after = Snapshot.take(untrained)
    assert after.data_dvc == before.data_dvc and after.git_head == before.git_head  # nothing versioned
    # The rerun does not take along a batch it did not validate: it names the leftover.
    cli = Cli(untrained, capsys)
    code, _, err = cli.run("data", "add", str(file))
    assert code == 2
    one_error(err, says="batches/late.csv")
    target.unlink()
    assert cli.ok("data", "add", str(file))["added"] == "late"
    assert "batches/late.csv" in recorded_files(untrained) and is_in_sync(untrained)
