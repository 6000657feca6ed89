"""Nothing lost, nothing silently changed (issue 17, data loss first): every data command that fails
leaves data/, data.dvc and the batches exactly as they were, and what is versioned is what training
reads back. Each test reproduces one defect found by feeding finsent bad input."""

import hashlib
import json

import pandas as pd
import pytest

from finsent.cli import main
from finsent.config import Params, load_params, replace
from finsent.data import validate
from finsent.data.frames import read_dataset, read_table
from finsent.data.versioning import ensure_data, is_in_sync, recorded_md5
from finsent.paths import Layout

pytestmark = pytest.mark.integration


def run_cli(project, *args):
    return main(["--root", str(project), *args])


def tree_digest(folder) -> dict[str, str]:
    """Every file under ``folder`` with its content hash: what 'nothing changed' compares."""
    return {str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.rglob("*")) if f.is_file()}


def labelled(tmp_path, name, texts, labels, fmt="csv"):
    path = tmp_path / f"{name}.{fmt}"
    frame = pd.DataFrame({"text": texts, "label": labels})
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")), encoding="utf-8")
    return path


GOOD = ["Acme shares soar after record profit", "Acme warns on margins as costs climb", "Acme holds its annual meeting"]


@pytest.fixture
def data_project(project):
    ensure_data(project, Params().data)
    return project


def test_checkout_of_a_version_that_exists_nowhere_changes_nothing(data_project, capsys):
    before, dvc_file = tree_digest(data_project / "data"), (data_project / "data.dvc").read_bytes()
    assert run_cli(data_project, "data", "checkout", "deadbeefdeadbeefdeadbeefdeadbeef") == 2
    assert "in no DVC cache or reachable remote" in capsys.readouterr().err
    assert tree_digest(data_project / "data") == before and (data_project / "data.dvc").read_bytes() == dvc_file
    assert run_cli(data_project, "data", "checkout", "not-a-hash") == 2
    assert "not a data version" in capsys.readouterr().err


def test_checkout_refuses_to_overwrite_unversioned_work(data_project, tmp_path, capsys):
    first = recorded_md5(data_project)
    assert run_cli(data_project, "data", "add", str(labelled(tmp_path, "a", GOOD, ["bullish", "bearish", "neutral"]))) == 0
    hand_made = data_project / "data" / "batches" / "by-hand.csv"
    hand_made.write_text("text,label\nAcme names a new chief executive,neutral\n")
    before = tree_digest(data_project / "data")
    assert run_cli(data_project, "data", "checkout", first) == 2
    assert "not versioned" in capsys.readouterr().err
    assert tree_digest(data_project / "data") == before  # the unversioned batch is still there
    hand_made.unlink()
    assert run_cli(data_project, "data", "checkout", first) == 0  # with nothing to lose, it restores
    assert recorded_md5(data_project) == first and not (data_project / "data" / "batches" / "a.csv").exists()
    assert is_in_sync(data_project)


def test_a_jsonl_batch_is_versioned_as_the_csv_training_reads(data_project, tmp_path):
    source = labelled(tmp_path, "news", GOOD, ["bullish", "bearish", "neutral"], fmt="jsonl")
    assert run_cli(data_project, "data", "add", str(source)) == 0
    stored = data_project / "data" / "batches" / "news.csv"
    assert list(read_table(stored).columns) == ["text", "label"]
    back = read_dataset(stored)
    assert back["text"].tolist() == GOOD and back["label"].tolist() == [1, 0, 2]
    # and the next training run reads and accepts it, leaving it where it is
    p = load_params(data_project / "params.yaml")
    validate.run(p, data_project, data_project / "artifacts" / "validation.json")
    assert stored.is_file() and is_in_sync(data_project)


def test_a_nul_byte_is_rejected_not_cut(data_project, tmp_path, capsys):
    before = recorded_md5(data_project)
    path = tmp_path / "nul.csv"
    path.write_bytes(b"text,label\nAcme shares soar\x00 after a fraud probe ends,bullish\nAcme warns on margins,bearish\n")
    assert read_table(path)["text"][0] == "Acme shares soar\x00 after a fraud probe ends"  # read whole, never cut
    assert run_cli(data_project, "data", "add", str(path)) == 2
    assert "has_control_chars" in capsys.readouterr().err
    assert recorded_md5(data_project) == before and not (data_project / "data" / "batches").exists()


def test_the_same_rows_under_another_name_are_refused_naming_the_batch(data_project, tmp_path, capsys):
    first = labelled(tmp_path, "first", GOOD, ["bullish", "bearish", "neutral"])
    assert run_cli(data_project, "data", "add", str(first)) == 0
    before, dvc_file = tree_digest(data_project / "data"), (data_project / "data.dvc").read_bytes()
    again = labelled(tmp_path, "again", [t.upper() for t in GOOD], ["bullish", "bearish", "neutral"])
    assert run_cli(data_project, "data", "add", str(again)) == 2
    err = capsys.readouterr().err
    assert "already versioned" in err and "'first'" in err
    assert tree_digest(data_project / "data") == before and (data_project / "data.dvc").read_bytes() == dvc_file


def test_a_failed_add_restores_the_previous_version_not_git_head(data_project, tmp_path, capsys):
    # An uncommitted data.dvc is the normal state after `finsent train`; here, after an add without commit.
    assert (
        run_cli(data_project, "data", "add", "--no-git-commit", str(labelled(tmp_path, "a", GOOD, ["bullish", "bearish", "neutral"]))) == 0
    )
    before, dvc_file = tree_digest(data_project / "data"), (data_project / "data.dvc").read_bytes()
    other = labelled(tmp_path, "b", ["Acme cuts its dividend", "Acme raises guidance"], ["bearish", "bullish"])
    assert run_cli(data_project, "--set", "data.dvc_remote=nosuchremote", "data", "add", str(other)) == 2
    assert "nosuchremote" in capsys.readouterr().err
    assert (data_project / "data.dvc").read_bytes() == dvc_file
    assert tree_digest(data_project / "data") == before and is_in_sync(data_project)


@pytest.mark.parametrize("name", ["../../../escaped", "sub/x", "..", ".hidden", "x.csv", ""])
def test_a_batch_name_is_a_plain_name(data_project, tmp_path, capsys, name):
    before = tree_digest(data_project)
    assert run_cli(data_project, "data", "add", "--name", name, str(labelled(tmp_path, "a", GOOD, ["bullish", "bearish", "neutral"]))) == 2
    assert "is not allowed" in capsys.readouterr().err
    assert tree_digest(data_project) == before
    assert not list(tmp_path.parent.rglob("escaped*"))


def test_a_versioned_batch_that_fails_a_later_validation_is_never_moved(data_project, tmp_path):
    assert run_cli(data_project, "data", "add", str(labelled(tmp_path, "small", GOOD, ["bullish", "bearish", "neutral"]))) == 0
    batch = data_project / "data" / "batches" / "small.csv"
    stricter = replace(load_params(data_project / "params.yaml"), validate={"min_rows": 10})
    with pytest.raises(validate.ValidationError, match="left in place") as failed:
        validate.run(stricter, data_project, data_project / "artifacts" / "validation.json")
    assert batch.is_file() and is_in_sync(data_project)
    assert failed.value.quarantined  # a copy and its report are kept aside for inspection
    # a file dropped into data/batches by hand, never versioned, is still moved aside
    by_hand = data_project / "data" / "batches" / "by-hand.csv"
    by_hand.write_text("text,label\nAcme names a new chief executive,neutral\n")
    with pytest.raises(validate.ValidationError):
        validate.run(stricter, data_project, data_project / "artifacts" / "validation.json")
    assert not by_hand.exists() and batch.is_file()
    assert Layout.of(data_project, stricter).quarantine_dir.is_dir()


def test_stdout_holds_only_the_json_result(data_project, capsys):
    import shutil

    shutil.rmtree(data_project / "data")
    capsys.readouterr()
    assert run_cli(data_project, "data", "init") == 0  # restores data/ and says so on the way
    captured = capsys.readouterr()
    assert json.loads(captured.out)["dvc_md5"].endswith(".dir")  # the whole of stdout is one JSON document
    assert "restored" in captured.err
