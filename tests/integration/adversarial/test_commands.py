"""The commands whose input is the project itself: `train` and the `stage` commands on bad data/ files or
missing stage inputs, `data status` and `data init` without their files, `monitor run` on an inbox that
holds a bad file. Each ends with one clear line and exit code 2; a batch nobody versioned is the only
thing that moves (to quarantine/), and the champion stays."""

from __future__ import annotations

import shutil

import pytest

from finsent.data.versioning import is_in_sync
from testkit.adversarial import Cli, Snapshot

pytestmark = pytest.mark.integration


# --- pipeline stages (dvc repro) without their inputs ----------------------------------------------------


@pytest.mark.parametrize(
    "stage, says",
    [
        ("augment", "train.csv: file not found"),
        ("train", "train.csv: file not found"),
        ("evaluate", "eval.csv: file not found"),
        ("register", "validation.json: file not found"),
    ],
)
def test_a_stage_without_its_inputs_is_named(shared_cli, stage, says):
    shared_cli.fails("stage", stage, says=says)


def test_stage_validate_moves_an_unversioned_bad_batch_to_quarantine(cli):
    bad = cli.project / "data" / "batches" / "dropped.csv"
    bad.parent.mkdir(parents=True)
    bad.write_bytes("text,label\nAcme soars,bullish\n".encode("utf-16"))
    before = cli.snapshot()
    cli.fails("stage", "validate", says=("dropped.csv", "UTF-8"), ignore=("data", "quarantine"))
    after = cli.snapshot()
    assert not bad.exists() and dict(after.data) == {k: v for k, v in before.data if k != "batches/dropped.csv"}
    assert any(name.endswith("/dropped.csv") for name in after.quarantine)
    assert is_in_sync(cli.project)  # what remains is exactly the recorded version


# --- train on bad data -----------------------------------------------------------------------------------------


def test_train_with_an_unreadable_batch_quarantines_it_and_keeps_the_champion(cli):
    bad = cli.project / "data" / "batches" / "dropped.csv"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    before = cli.snapshot()
    cli.fails("train", says=("validation failed", "dropped.csv"), ignore=("data", "quarantine"))
    after = cli.snapshot()
    assert after.data_dvc == before.data_dvc and after.registry == before.registry and not bad.exists()
    assert any(name.endswith("/dropped.csv") for name in after.quarantine)


def test_train_with_an_evaluation_file_cut_to_its_header_moves_nothing(cli):
    eval_file = cli.project / "data" / "tfns" / "sent_valid.csv"
    eval_file.write_text("text,label\n")
    before = cli.snapshot()
    cli.fails("train", says=("validation failed", "sent_valid.csv"))
    assert eval_file.read_text() == "text,label\n" and cli.snapshot() == before


# --- data status and data init without their files ------------------------------------------------------------


def test_data_status_without_data_dvc_says_to_init(untrained, capsys):
    (untrained / "data.dvc").unlink()
    Cli(untrained, capsys).fails("data", "status", says="data init")


def test_data_init_without_the_shipped_dataset_is_named(untrained, capsys):
    (untrained / "data.dvc").unlink()
    shutil.rmtree(untrained / "data")
    shutil.rmtree(untrained / "datasets")
    Cli(untrained, capsys).fails("data", "init", says="shipped dataset")


# --- monitor run on an inbox -------------------------------------------------------------------------------------


def test_monitor_run_with_a_bad_file_in_the_inbox_stores_nothing_then_scores_the_rest(cli, news):
    inbox = cli.project / "inbox"
    inbox.mkdir()
    good = news(40, name="a-good.csv")
    (inbox / good.name).write_bytes(good.read_bytes())
    (inbox / "b-bad.csv").write_text("headline,date\nAcme soars,2024-03-01\n")
    before = cli.snapshot()
    cli.fails("monitor", "run", "--no-retrain", says="b-bad.csv")
    assert Snapshot.take(cli.project).rows() == before.rows()  # the good file waits for a window that can be whole
    (inbox / "b-bad.csv").unlink()
    summary = cli.ok("--set", "drift.signals=[prediction]", "monitor", "run", "--no-retrain")  # one quick signal
    assert [s["status"] for s in summary["scoring"]] == ["scored"] and cli.snapshot().rows() == before.rows() + 40
