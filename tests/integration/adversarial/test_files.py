"""Bad files through every command that reads one (`data add`, `score`, `monitor drift`, `monitor run`,
`predict` on standard input, `--params`): missing, a folder, empty, not UTF-8, binary, a huge row, wrong
columns, bad labels, JSON that is not JSON Lines, a CSV with only a header, ragged or unterminated rows.
Each ends with one clear line and exit code 2, and leaves the data version, the batches, the quarantine
(but for the rejected batch itself), the store and the registry as they were."""

from __future__ import annotations

import gzip
import io
import json
import sys

import pytest

from testkit.adversarial import Snapshot, assert_nothing_lost

pytestmark = pytest.mark.integration

HUGE = "Acme " * 400_000  # a 2 MB text in one row

# kind -> (file name, content) of a labelled batch for `data add`
LABELLED = {
    "folder": ("batch.csv", None),
    "blank-lines": ("batch.csv", b"\n  \n\t\n"),
    "utf-16": ("batch.csv", "text,label\nAcme soars on profit,bullish\n".encode("utf-16")),
    "gzip": ("batch.csv", gzip.compress(b"text,label\nAcme soars on profit,bullish\n")),
    "huge-row": ("batch.csv", f"text,label\n{HUGE},bullish\nAcme slips on costs,bearish\n".encode()),
    "huge-row-with-nul": ("batch.csv", f"text,label\n{HUGE}\x00,bullish\n".encode()),
    "jsonl-wrong-keys": ("batch.jsonl", b'{"headline": "Acme soars", "sentiment": "bullish"}\n'),
    "label-out-of-range": ("batch.csv", b"text,label\nAcme soars on profit,3\nAcme slips on costs,-1\n"),
    "label-missing": ("batch.csv", b"text,label\nAcme soars on profit,\nAcme slips on costs,\n"),
    "json-array-in-jsonl": ("batch.jsonl", b'[{"text": "Acme soars on profit", "label": "bullish"}]\n'),
    "pretty-json-in-jsonl": ("batch.jsonl", b'{\n  "text": "Acme soars on profit",\n  "label": "bullish"\n}\n'),
    "json-object": ("batch.json", b'{"text": "Acme soars on profit", "label": "bullish"}'),
    "header-only": ("batch.csv", b"text,label\n"),
    "ragged": ("batch.csv", b"text,label\nAcme soars,bullish,extra,fields\n"),
    "unterminated-quote": ("batch.csv", b'text,label\n"Acme soars on profit,bullish\nAcme slips,bearish\n'),
}

# kind -> (file name, content) of a news batch for `score`
NEWS = {
    "missing": ("news.csv", None),
    "folder": ("news.csv", None),
    "empty": ("news.csv", b""),
    "latin-1": ("news.csv", "text,published_at\nCaf\xe9 chain soars,2024-03-01\n".encode("latin-1")),
    "utf-16": ("news.csv", "text,published_at\nAcme soars,2024-03-01\n".encode("utf-16")),
    "png": ("news.csv", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8),
    "huge-row-only": ("news.csv", f"text,published_at\n{HUGE},2024-03-01\n".encode()),
    "wrong-columns": ("news.csv", b"headline,date\nAcme soars,2024-03-01\n"),
    "bad-labels-only": ("news.csv", b"text,published_at,label\nAcme soars,2024-03-01,sideways\nAcme slips,2024-03-02,7\n"),
    "json-array-in-jsonl": ("news.jsonl", b'[{"text": "Acme soars", "published_at": "2024-03-01"}]\n'),
    "pretty-json-in-jsonl": ("news.jsonl", b'{\n  "text": "Acme soars",\n  "published_at": "2024-03-01"\n}\n'),
    "header-only": ("news.csv", b"text,published_at\n"),
    "ragged": ("news.csv", b"text,published_at\nAcme soars,2024-03-01,x,y\n"),
    "times-not-iso": ("news.csv", b"text,published_at\nAcme soars,next tuesday\nAcme slips,13/45/2024\n"),
}


def bad_file(tmp_path, kind: str, table: dict) -> str:
    name, content = table[kind]
    path = tmp_path / "in" / name
    path.parent.mkdir(exist_ok=True)
    if kind == "folder":
        path.mkdir()
        (path / "inside.csv").write_text("text,label\nAcme soars,bullish\n")
    elif content is not None:
        path.write_bytes(content)
    return str(path)


@pytest.mark.parametrize("kind", list(LABELLED))
def test_data_add_refuses_a_bad_file_and_keeps_it_aside(cli, tmp_path, kind):
    before = cli.snapshot()
    file = bad_file(tmp_path, kind, LABELLED)
    message = cli.fails("data", "add", file, ignore=("quarantine",))
    assert "validation failed" in message or "file not found" in message
    kept = set(cli.snapshot().quarantine) - set(before.quarantine)
    if kind == "folder":
        assert not kept  # nothing to keep, and the folder is left alone
    else:  # the rejected file, byte for byte, and its report
        assert {k.split("/", 1)[1] for k in kept} == {file.rsplit("/", 1)[1], "validation_report.json"}
        copy = next(cli.project.joinpath("quarantine").rglob(file.rsplit("/", 1)[1]))
        assert copy.read_bytes() == LABELLED[kind][1]


@pytest.mark.parametrize("kind", list(NEWS))
def test_score_refuses_a_bad_file_and_stores_nothing(cli, tmp_path, kind):
    file = bad_file(tmp_path, kind, NEWS)
    cli.fails("score", file, says=file)


@pytest.mark.parametrize("kind", ["missing", "folder", "empty", "wrong-columns", "header-only", "bad-labels-only"])
def test_monitor_drift_refuses_a_bad_file(cli, tmp_path, kind):
    file = bad_file(tmp_path, kind, NEWS)
    cli.fails("monitor", "drift", file, says=file)


@pytest.mark.parametrize("kind", ["missing", "folder", "wrong-columns", "header-only"])
def test_monitor_run_refuses_a_bad_file_and_records_no_window(cli, tmp_path, kind):
    file = bad_file(tmp_path, kind, NEWS)
    cli.fails("monitor", "run", "--no-retrain", file, says=file)


@pytest.mark.parametrize(
    "stdin, says",
    [
        pytest.param(b"", "no text to score", id="empty"),
        pytest.param(b"\n   \n\t\n", "no text to score", id="blank-lines"),
        pytest.param(b"Acme soars\n\xff\xfe broken bytes\n", "UTF-8", id="not-utf-8"),
    ],
)
def test_predict_refuses_bad_standard_input_before_loading_a_model(shared_cli, monkeypatch, stdin, says):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    shared_cli.fails("predict", says=says)


@pytest.mark.parametrize(
    "content, says",
    [
        ("train:\n  epochs: 1\n".encode("utf-16"), "not UTF-8"),
        (b"", None),  # an empty params file means the defaults: a valid file (and this command succeeds)
        (b"\x00" * 64, "not valid YAML"),
    ],
    ids=["utf-16", "empty-is-defaults", "nul-bytes"],
)
def test_a_bad_params_file_is_named(shared_cli, tmp_path, content, says):
    params = tmp_path / "params.yaml"
    params.write_bytes(content)
    if says is None:
        before = shared_cli.snapshot()
        assert shared_cli.ok("--params", str(params), "data", "status")["in_sync"] is True
        assert_nothing_lost(before, shared_cli.snapshot())
    else:
        shared_cli.fails("--params", str(params), "registry", "show", says=says)


def test_a_jsonl_file_with_one_bad_line_is_refused_whole(cli, tmp_path):
    """One malformed line among good ones: the batch is refused, never half-added."""
    path = tmp_path / "mixed.jsonl"
    rows = [json.dumps({"text": f"Acme row {i} beats estimates", "label": "bullish"}) for i in range(5)]
    path.write_text("\n".join([*rows[:3], '{"text": "Acme broken", "label": ', *rows[3:]]) + "\n")
    before = cli.snapshot()
    cli.fails("data", "add", str(path), says="mixed.jsonl", ignore=("quarantine",))
    assert Snapshot.take(cli.project).data == before.data
