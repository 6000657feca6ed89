"""The labelling loop on a tiny project: stored news -> `finsent label export` (Label Studio's files, a
plain CSV) -> annotations as Label Studio exports them -> `finsent label import` -> a batch versioned
by `data add`'s path. Texts are exported once, labelled texts never; a file that is no export, or that
holds nothing new, changes nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from label_studio_sdk.label_interface import LabelInterface
from label_studio_sdk.label_interface.objects import TaskValue
from sqlalchemy import select

from finsent.cli import main
from finsent.config import load_params
from finsent.data.frames import read_dataset
from finsent.labelling.export import export
from finsent.labelling.keys import text_key
from finsent.monitoring.champion import load_champion
from finsent.monitoring.store import label_tasks, open_store
from finsent.vocabulary import LABELS

pytestmark = pytest.mark.integration

NEWS_ROWS = 60


def run_cli(project: Path, capsys, *args: str) -> tuple[int, dict | None, str]:
    capsys.readouterr()
    code = main(["--root", str(project), *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def news_file(project: Path, tfns_valid: pd.DataFrame, path: Path) -> tuple[Path, dict[str, int], str]:
    """Unlabelled news: TFNS rows outside the project's data, one text of its training file (labelled
    already) and one text twice. Returns the file, each text's true label, and the training text."""
    shipped = project / "datasets" / "tfns"
    known = set(pd.read_csv(shipped / "sent_valid.csv")["text"]) | set(pd.read_csv(shipped / "sent_train.csv")["text"])
    pool = tfns_valid[~tfns_valid["text"].isin(known)].drop_duplicates("text").sample(n=NEWS_ROWS, random_state=3)
    train_text = str(pd.read_csv(shipped / "sent_train.csv")["text"].iloc[0])
    texts = [*pool["text"], train_text, pool["text"].iloc[0]]
    news = pd.DataFrame(
        {"text": texts, "published_at": [f"2026-11-{1 + i % 28:02d}T09:00:00Z" for i in range(len(texts))], "ticker": "ACME"}
    )
    news.to_csv(path, index=False)
    return path, dict(zip(pool["text"], pool["label"].astype(int))), train_text


def annotated(task: dict, task_id: int, *labels: str, cancelled: bool = False) -> dict:
    """``task`` as Label Studio exports it once labelled: one annotation per label (or one cancelled)."""
    annotations = [
        {
            "id": task_id * 10 + i,
            "completed_by": i + 1,
            "result": [{"id": f"r{i}", "from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}],
            "was_cancelled": False,
            "ground_truth": False,
            "lead_time": 3.0,
            "task": task_id,
        }
        for i, label in enumerate(labels)
    ]
    if cancelled:
        annotations.append({"id": task_id * 10 + 9, "completed_by": 9, "result": [], "was_cancelled": True, "task": task_id})
    return {"id": task_id, **task, "annotations": annotations, "total_annotations": len(labels)}


def snapshot(root: Path) -> tuple:
    files = {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "data").rglob("*")) if p.is_file()}
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout
    return (root / "data.dvc").read_bytes(), files, head


def exported_keys(project: Path) -> set[str]:
    engine = open_store(load_params(project / "params.yaml").monitor, project)
    with engine.connect() as conn:
        return set(conn.execute(select(label_tasks.c.text_key)).scalars())


def task_keys(out: Path) -> list[str]:
    return [task["data"]["finsent_key"] for task in json.loads((out / "tasks.json").read_text())]


def test_export_label_import_round_trip(registered, tfns_valid, tmp_path, capsys):
    project = registered
    news, truth, train_text = news_file(project, tfns_valid, tmp_path / "news.csv")
    code, scored, _ = run_cli(project, capsys, "score", str(news))
    assert code == 0 and scored["rows_scored"] == NEWS_ROWS + 2

    # Export: Label Studio's three files, checked by label-studio-sdk; the training text is not offered.
    out1 = tmp_path / "round1"
    code, summary, _ = run_cli(project, capsys, "label", "export", "--n", "10", "--strategy", "uncertainty", "--out", str(out1))
    assert code == 0, summary
    assert summary["exported"] == 10 and summary["candidates"] == NEWS_ROWS
    assert summary["already_labelled"] == 1 and summary["repeated"] == 1 and summary["model_version"] == "1"
    interface = LabelInterface((out1 / "label_config.xml").read_text())
    interface.validate()
    tasks = json.loads((out1 / "tasks.json").read_text())
    assert len(tasks) == 10
    for task in tasks:
        TaskValue.model_validate(task)
        assert interface.validate_prediction(task["predictions"][0], return_errors=True) == []
        assert task["data"]["finsent_key"] == text_key(task["data"]["text"]) and "ACME" in task["data"]["ticker"].split(",")
        assert task["data"]["text"] in truth
    scores = [t["data"]["finsent_score"] for t in tasks]
    assert scores == sorted(scores, reverse=True)  # most uncertain first
    csv = pd.read_csv(out1 / "to_label.csv", keep_default_na=False)
    assert csv["text"].tolist() == [t["data"]["text"] for t in tasks] and (csv["label"] == "").all()
    assert exported_keys(project) == set(task_keys(out1))
    code, _, err = run_cli(project, capsys, "label", "export", "--n", "5", "--out", str(out1))
    assert code == 2 and "already holds an export" in err

    # Label Studio's export: task 1 a tie, task 2 skipped (cancelled), the others labelled (their true labels).
    ls_export = [annotated(tasks[0], 1, "bullish", "bearish"), annotated(tasks[1], 2, cancelled=True)]
    ls_export += [annotated(task, 3 + i, LABELS[truth[task["data"]["text"]]]) for i, task in enumerate(tasks[2:])]
    export_file = tmp_path / "project-1-at-2026-12-01.json"
    export_file.write_text(json.dumps(ls_export))
    before = snapshot(project)
    code, imported, err = run_cli(project, capsys, "label", "import", str(export_file), "--name", "ls-round-1")
    assert code == 0, err
    assert imported["accepted"] == 8 and imported["skipped"] == 1 and imported["cancelled"] == 1
    assert [h["text"] for h in imported["held_back"]] == [tasks[0]["data"]["text"]] and "no majority" in imported["held_back"][0]["reason"]
    assert "accepted 8, held back 1, skipped 1" in err  # the summary, on stderr
    batch = read_dataset(project / "data" / "batches" / "ls-round-1.csv")
    assert dict(zip(batch["text"], batch["label"])) == {t["data"]["text"]: truth[t["data"]["text"]] for t in tasks[2:]}
    after = snapshot(project)
    assert after[0] != before[0] and after[2] != before[2]  # a new data version, committed
    assert imported["data_version"]["dvc_md5"] in after[0].decode()

    # A file that is no export, and an export holding nothing new, change nothing.
    bad = tmp_path / "bad.json"
    bad.write_text('[{"id": 1, "data": {"text": "x"}, "annotations": [')
    code, _, err = run_cli(project, capsys, "label", "import", str(bad))
    assert code == 2 and err.strip().splitlines()[-1].startswith(f"finsent: error: {bad}: not JSON")
    code, _, err = run_cli(project, capsys, "label", "import", str(export_file), "--name", "ls-round-1-again")
    assert code == 2 and "no label to add" in err and "already labelled" in err
    assert snapshot(project) == after

    # Later exports never offer an exported text again, whatever the strategy.
    p = load_params(project / "params.yaml")
    champion = load_champion(p, project)
    seen = set(task_keys(out1))
    for strategy, n in (("diverse", 10), ("drifted", 5), ("margin", 5)):
        out = tmp_path / strategy
        result = export(p, project, n, strategy, out, champion=champion, log=lambda *_: None)
        assert result.exported == n and result.already_exported == len(seen), strategy
        keys = task_keys(out)
        assert len(keys) == n and not seen & set(keys), strategy
        seen |= set(keys)
    assert exported_keys(project) == seen and text_key(train_text) not in seen

    # The plain CSV filled in by hand: five labelled, five left empty.
    filled = pd.read_csv(tmp_path / "diverse" / "to_label.csv", keep_default_na=False)
    filled["label"] = [LABELS[truth[t]] if i < 5 else "" for i, t in enumerate(filled["text"])]
    filled.to_csv(tmp_path / "by-hand.csv", index=False)
    code, imported, err = run_cli(project, capsys, "label", "import", str(tmp_path / "by-hand.csv"))
    assert code == 0, err
    assert imported["format"] == "csv" and imported["accepted"] == 5 and imported["skipped"] == 5
    assert len(read_dataset(project / "data" / "batches" / "by-hand.csv")) == 5

    # Everything left is exported; then there is nothing to export, and nothing changes.
    rest = export(p, project, 100, "uncertainty", tmp_path / "rest", champion=champion, log=lambda *_: None)
    assert rest.exported == NEWS_ROWS - len(seen)
    before = snapshot(project)
    code, _, err = run_cli(project, capsys, "label", "export", "--out", str(tmp_path / "empty"))
    assert code == 2 and "no text to export" in err
    assert not (tmp_path / "empty").exists() and snapshot(project) == before
