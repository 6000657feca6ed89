"""Bad input on the commands that need no trained model: one clear line, exit code 2, no traceback,
nothing changed (issue 17). Each case reproduces a defect found by feeding finsent bad input."""

import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import torch

from finsent.cli import main
from finsent.config import MonitorParams
from finsent.monitoring import store
from finsent.monitoring.batch import check_batch
from finsent.training.model import ModelError
from finsent.training.train import load_checkpoint

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def fails_cleanly(capsys, root, *args, says: str) -> str:
    assert main(["--root", str(root), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("finsent: error:") and "Traceback" not in err, err
    assert says in err, err
    return err


@pytest.mark.parametrize(
    "override, says",
    [
        ("train.learning_rate=-1", "learning_rate >= 0"),
        ("train.epochs=.nan", "finite number"),
        ("train.epochs=.inf", "finite number"),
        ("data.max_train_rows=-5", "data.max_train_rows"),
        ("train.device=tpu", "train.device"),
        ("train.warmup_fraction=1.5", "train.warmup_fraction"),
        ("train.epochs=[1", "not valid YAML"),
        ("foo=1", "section.key=value"),
        ("nosection.key=1", "unknown parameter section"),
        ("register.model_name=it's", "register.model_name"),
    ],
)
def test_bad_settings_are_named_before_anything_runs(capsys, root, override, says):
    fails_cleanly(capsys, root, "--set", override, "registry", "show", says=says)


def test_a_file_that_is_not_a_params_file_is_named_not_printed(capsys, root):
    secret = root / "secrets.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1\n")
    err = fails_cleanly(capsys, root, "--params", str(secret), "registry", "show", says="not a parameters file")
    assert "root:x" not in err
    bad_yaml = root / "broken.yaml"
    bad_yaml.write_text("train:\n  epochs: [1\npassword: hunter2\n")
    err = fails_cleanly(capsys, root, "--params", str(bad_yaml), "registry", "show", says="not valid YAML at line")
    assert "hunter2" not in err
    binary = root / "binary.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    fails_cleanly(capsys, root, "--params", str(binary), "registry", "show", says="not UTF-8")


@pytest.mark.parametrize("text", ["", "   ", "\u200b\u200b", "\ufeff \u2060"])
def test_predict_refuses_an_empty_text_before_loading_anything(capsys, root, text):
    fails_cleanly(capsys, root, "predict", "Acme beats", text, says="text 2 of 2 is empty")
    assert not (root / "mlflow.db").exists()


def test_predict_with_no_text_says_so(capsys, root):
    fails_cleanly(capsys, root, "predict", says="no text to score")


@pytest.mark.parametrize("value", ["yesterday", "2026-13-45", "soon"])
def test_a_time_that_is_not_iso_8601_is_named(capsys, root, value):
    fails_cleanly(capsys, root, "monitor", "index", "--start", value, says=f"start {value!r} is not an ISO 8601")
    fails_cleanly(capsys, root, "monitor", "index", "--end", value, says=f"end {value!r} is not an ISO 8601")


@pytest.mark.parametrize("content", [b"this is not a database at all" * 100, b"SQLite format 3\x00" + b"\x00" * 50])
def test_a_garbage_or_truncated_mlflow_store_is_a_clear_error(capsys, root, content):
    (root / "mlflow.db").write_bytes(content)
    fails_cleanly(capsys, root, "registry", "show", says="cannot be opened as an MLflow database")
    fails_cleanly(capsys, root, "predict", "Acme beats", says="cannot be opened as an MLflow database")
    assert (root / "mlflow.db").read_bytes() == content  # left as it was


def test_a_garbage_predictions_store_is_a_clear_error(capsys, root):
    db = root / "artifacts" / "predictions.db"
    db.parent.mkdir()
    db.write_bytes(b"garbage" * 1000)
    fails_cleanly(capsys, root, "monitor", "index", says="predictions store")
    assert db.read_bytes() == b"garbage" * 1000


@pytest.mark.parametrize("url", ["nonsense://", "sqlite:///{root}/params.yaml/under-a-file.db", "postgresql+nodriver://u@h/db"])
def test_an_unusable_store_url_is_a_clear_error(capsys, root, url):
    fails_cleanly(capsys, root, "--set", f"monitor.store_url={url.format(root=root)}", "monitor", "index", says="predictions store")


def test_a_store_locked_by_another_writer_waits_then_fails_clearly(root, monkeypatch):
    db = root / "locked.db"
    monkeypatch.setattr(store, "SQLITE_BUSY_TIMEOUT_S", 0.2)  # before the engines: each takes it when made
    engine = store.make_engine(f"sqlite:///{db}")
    holder = sqlite3.connect(db)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(store.StoreUnusable, match="locked"):
            store.make_engine(f"sqlite:///{db}")
        meta = store.BatchMeta(
            batch_id="b1",
            file="f.csv",
            sha256="0" * 64,
            rows_in=0,
            rows_skipped=0,
            model_name="m",
            model_version="1",
            scored_at=pd.Timestamp.now(tz="UTC"),
        )
        with pytest.raises(store.StoreUnusable, match="locked"):
            store.append_batch(engine, one_row(), meta)
    finally:
        holder.rollback()
        holder.close()
    assert store.read_batches(engine).empty  # nothing half-written


def test_texts_that_are_only_invisible_characters_count_as_empty():
    raw = pd.DataFrame({"text": ["\u200b\u200b", "\ufeff", "Acme beats"], "published_at": ["2024-05-01"] * 3})
    got = check_batch(raw, MonitorParams())
    assert got.skipped == {"empty_text": 2} and got.frame["text"].tolist() == ["Acme beats"]


def test_published_times_far_in_the_future_or_past_are_counted_not_stored():
    raw = pd.DataFrame({"text": ["a", "b", "c", "d"], "published_at": ["2100-01-01", "1850-06-01", "2024-05-01", "9999-12-31T23:59:59Z"]})
    got = check_batch(raw, MonitorParams())
    # 9999 is past what a timestamp can hold: it never parses, so it counts as a bad time
    assert got.skipped == {"published_at_out_of_range": 2, "bad_published_at": 1}
    assert got.frame["text"].tolist() == ["c"]


def one_row() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "published_at": pd.Timestamp("2024-05-01", tz="UTC"),
                "text": "Acme beats",
                "tickers": "",
                "source": None,
                "label": -1,
                "predicted": 1,
                "p_bearish": 0.1,
                "p_bullish": 0.8,
                "p_neutral": 0.1,
            }
        ]
    )


class Planted:
    def __reduce__(self):  # what a malicious checkpoint would do when unpickled
        return (print, ("code ran",))


def test_a_checkpoint_is_loaded_as_weights_only(tmp_path, capsys):
    good = tmp_path / "good.pt"
    torch.save(
        {
            "model": {"w": torch.ones(2)},
            "step": 3,
            "fingerprint": "abc",
            "selection": {"history": [{"macro_f1": 0.5}], "best": [(0.5, 3, {"w": torch.ones(2)})]},
        },
        good,
    )
    assert load_checkpoint(good, torch.device("cpu"))["step"] == 3
    planted = tmp_path / "planted.pt"
    torch.save({"model": Planted()}, planted)
    with pytest.raises(ModelError, match="cannot be loaded safely"):
        load_checkpoint(planted, torch.device("cpu"))
    assert "code ran" not in capsys.readouterr().out
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:50])
    with pytest.raises(ModelError, match="delete it"):
        load_checkpoint(truncated, torch.device("cpu"))
