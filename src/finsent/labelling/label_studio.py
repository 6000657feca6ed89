"""Label Studio's formats, pure: the labelling config, the tasks to import, and reading the labels back.

- ``label_config``: a ``<Text>`` with a single-choice ``<Choices>`` of ``finsent.vocabulary.LABELS``.
- ``make_tasks``: Label Studio's JSON import format (labelstud.io/guide/tasks, .../predictions): one
  task per text, ``data`` holding the text, its tickers, its publication time and its finsent key, and
  the champion's choice as a pre-annotation under ``predictions`` with ``model_version`` and
  ``score``. The score is the champion's probability for its choice: Label Studio's Data Manager sorts
  by it, and its uncertainty sampling serves the lowest score first.
- ``parse_export``: Label Studio's JSON export (labelstud.io/guide/export: a list of tasks, each with
  ``annotations``, each with ``result`` [{"type": "choices", "value": {"choices": [...]}}] and
  ``was_cancelled``). ``parse_csv`` reads the plain CSV of ``to_label.csv`` filled in by hand.
Both end in ``resolve``: votes per text (the same text in two tasks pools its votes), majority
wins. Held back, each with its reason: ties and weak majorities (``label.min_agreement``), labels
outside LABELS, an annotation choosing several labels, a task without text. Counted: annotations
cancelled (Label Studio's Skip), annotations submitted with no choice, and tasks left with no vote.
A file that is not such an export at all is a ``LabelStudioFormatError``: nothing is taken from it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import quoteattr

import pandas as pd

from finsent.errors import FinsentError
from finsent.labelling.keys import text_key
from finsent.vocabulary import LABELS, visible

CONTROL = "sentiment"  # the <Choices> name: from_name of every result
OBJECT = "text"  # the <Text> name (to_name), and the task data key it shows
DATA_FIELDS = ("text", "ticker", "published_at", "finsent_key", "finsent_strategy", "finsent_score")
CSV_COLUMNS = ("key", "text", "ticker", "published_at", "predicted", "confidence", "strategy", "score", "label")
EXAMPLES = 5  # tasks named in an error message


class LabelStudioFormatError(FinsentError, ValueError):
    """A file is not a Label Studio JSON export (or a filled-in to_label.csv) that finsent can read."""


# --- export to Label Studio -----------------------------------------------------------------------


def label_config() -> str:
    """The labelling config: the text, and one of the three labels to choose."""
    choices = "\n".join(f"    <Choice value={quoteattr(name)}/>" for name in LABELS)
    return (
        "<View>\n"
        '  <Header value="How does this news read for the company it names?"/>\n'
        f'  <Text name="{OBJECT}" value="${OBJECT}"/>\n'
        f'  <Choices name="{CONTROL}" toName="{OBJECT}" choice="single" showInline="true" required="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        "</View>\n"
    )


def choice_result(label: str) -> list[dict[str, Any]]:
    """A ``result`` choosing ``label``, as annotations and predictions hold it."""
    return [{"from_name": CONTROL, "to_name": OBJECT, "type": "choices", "value": {"choices": [label]}}]


def make_tasks(rows: pd.DataFrame, model_version: str) -> list[dict[str, Any]]:
    """Import tasks from ``rows`` (key, text, ticker, published_at, predicted (a label name),
    confidence, strategy, score), in order."""
    tasks = []
    for row in rows.itertuples(index=False):
        tasks.append(
            {
                "data": {
                    "text": str(row.text),
                    "ticker": str(row.ticker),
                    "published_at": str(row.published_at),
                    "finsent_key": str(row.key),
                    "finsent_strategy": str(row.strategy),
                    "finsent_score": round(float(row.score), 6),
                },
                "predictions": [
                    {"model_version": model_version, "score": round(float(row.confidence), 6), "result": choice_result(str(row.predicted))}
                ],
            }
        )
    return tasks


def to_label_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The plain CSV for labelling without Label Studio: the columns of ``CSV_COLUMNS``, label empty."""
    out = rows.assign(label="")
    return out[list(CSV_COLUMNS)].reset_index(drop=True)


# --- labels back ----------------------------------------------------------------------------------


@dataclass
class Votes:
    """What one text received: its votes, and why it cannot be used (when it cannot)."""

    key: str
    text: str
    tasks: list[str] = field(default_factory=list)  # Label Studio task ids, or CSV row numbers
    votes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class HeldBack:
    key: str
    text: str
    tasks: list[str]
    reason: str


@dataclass(frozen=True)
class ParsedLabels:
    """Labels read from an export: the usable rows, and what was held back, skipped or cancelled."""

    source_format: str  # label-studio-json | csv
    rows: pd.DataFrame  # key, text, label (id), votes: one per accepted text
    held_back: list[HeldBack]
    tasks: int  # tasks (or CSV rows) read
    skipped: int  # tasks with no vote: never annotated, or only cancelled or empty annotations
    cancelled: int  # annotations cancelled (Label Studio's Skip button)
    empty: int  # annotations submitted without a choice


def majority(votes: Sequence[str], min_agreement: float) -> tuple[str | None, str]:
    """The label most votes chose, or None and why not: a tie, or a winner with less than
    ``min_agreement`` of the votes."""
    counts = Counter(votes).most_common()
    shown = ", ".join(f"{label} {count}" for label, count in counts)
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return None, f"annotators disagree, no majority ({shown})"
    label, count = counts[0]
    if count / len(votes) < min_agreement:
        return None, f"majority {label} has {count} of {len(votes)} votes, under label.min_agreement {min_agreement} ({shown})"
    return label, ""


def resolve(
    texts: dict[str, Votes], *, source_format: str, tasks: int, skipped: int, cancelled: int, empty: int, min_agreement: float
) -> ParsedLabels:
    """Each text's votes to one label, or held back with the reason."""
    rows, held = [], []
    for item in texts.values():
        if item.problems:
            held.append(HeldBack(item.key, item.text, item.tasks, "; ".join(dict.fromkeys(item.problems))))
            continue
        if not item.votes:
            continue  # counted as skipped where it was read
        label, why = majority(item.votes, min_agreement)
        if label is None:
            held.append(HeldBack(item.key, item.text, item.tasks, why))
        else:
            rows.append({"key": item.key, "text": item.text, "label": LABELS.index(label), "votes": len(item.votes)})
    frame = pd.DataFrame(rows, columns=["key", "text", "label", "votes"]).astype({"label": "int64", "votes": "int64"})
    return ParsedLabels(source_format, frame, held, tasks=tasks, skipped=skipped, cancelled=cancelled, empty=empty)


def _where(task: Any, index: int) -> str:
    task_id = task.get("id") if isinstance(task, dict) else None
    return f"task {task_id}" if task_id is not None else f"task #{index + 1} in the file"


def _annotation_choices(annotation: dict, where: str) -> tuple[list[str], list[str]]:
    """The labels an annotation chose with finsent's control, and the names of other choice controls
    it used (an export of another labelling config)."""
    result = annotation.get("result")
    if result is None:
        return [], []
    if not isinstance(result, list):
        raise LabelStudioFormatError(f"{where}: an annotation's result is a {type(result).__name__}, not a list of results")
    chosen: list[str] = []
    others: list[str] = []
    for region in result:
        if not isinstance(region, dict):
            raise LabelStudioFormatError(f"{where}: an annotation's result holds a {type(region).__name__}, not a result object")
        if region.get("type") != "choices":
            continue  # another kind of result (a comment, a rating): not a sentiment vote
        value = region.get("value")
        choices = value.get("choices") if isinstance(value, dict) else None
        if not isinstance(choices, list):
            raise LabelStudioFormatError(f"{where}: a choices result without value.choices: {json.dumps(region)[:200]}")
        if region.get("from_name", CONTROL) == CONTROL:
            chosen.extend(str(c) for c in choices)
        elif choices:
            others.append(str(region.get("from_name")))
    return chosen, others


def parse_export(raw: str | bytes, min_agreement: float = 0.5) -> ParsedLabels:
    """Read Label Studio's JSON export (the list of tasks with their annotations)."""
    try:
        tasks = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise LabelStudioFormatError(f"not UTF-8 text (byte {exc.start}): export the project as JSON from Label Studio") from exc
    except json.JSONDecodeError as exc:
        raise LabelStudioFormatError(
            f"not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): export the project as JSON from Label Studio"
        ) from exc
    if isinstance(tasks, dict) and "data" in tasks:
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise LabelStudioFormatError(f"expected Label Studio's JSON export, a list of tasks; got a {type(tasks).__name__}")
    if not tasks:
        raise LabelStudioFormatError("the export holds no tasks")
    texts: dict[str, Votes] = {}
    skipped = cancelled = empty = 0
    for index, task in enumerate(tasks):
        where = _where(task, index)
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise LabelStudioFormatError(f"{where}: not a Label Studio task (an object with data and annotations)")
        text = task["data"].get(OBJECT)
        annotations = task.get("annotations") or []
        if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
            raise LabelStudioFormatError(f"{where}: annotations is not a list of annotation objects")
        task_id = str(task.get("id", f"#{index + 1}"))
        if not isinstance(text, str) or not visible(text):
            given = task["data"].get("finsent_key")
            key = str(given) if given else f"task:{task_id}"
            item = texts.setdefault(key, Votes(key, "" if text is None else str(text)))
            item.tasks.append(task_id)
            item.problems.append(f"the task has no text under data.{OBJECT}")
            continue
        key = text_key(text)
        item = texts.setdefault(key, Votes(key, text))
        item.tasks.append(task_id)
        votes_before = len(item.votes) + len(item.problems)
        for annotation in annotations:
            if annotation.get("was_cancelled"):
                cancelled += 1
                continue
            chosen, others = _annotation_choices(annotation, where)
            if not chosen and others:
                item.problems.append(
                    f"the labels come from control(s) {', '.join(dict.fromkeys(others))}, not {CONTROL!r}: "
                    "label the tasks with finsent's label_config.xml"
                )
                continue
            if not chosen:
                empty += 1
                continue
            unknown = [c for c in chosen if c not in LABELS]
            if unknown:
                item.problems.append(f"label {', '.join(map(repr, unknown))} is not one of {', '.join(LABELS)}")
            elif len(set(chosen)) > 1:
                item.problems.append(f"one annotation chose several labels ({', '.join(chosen)}): the config allows one")
            else:
                item.votes.append(chosen[0])
        if len(item.votes) + len(item.problems) == votes_before:
            skipped += 1
    return resolve(
        texts,
        source_format="label-studio-json",
        tasks=len(tasks),
        skipped=skipped,
        cancelled=cancelled,
        empty=empty,
        min_agreement=min_agreement,
    )


def parse_csv(frame: pd.DataFrame, min_agreement: float = 0.5) -> ParsedLabels:
    """Read ``to_label.csv`` filled in by hand (a ``text`` and a ``label`` column; other columns are
    ignored): a row with no label is skipped, a label name (any case) or id 0-2 is a vote."""
    missing = [c for c in ("text", "label") if c not in frame.columns]
    if missing:
        raise LabelStudioFormatError(
            f"the CSV lacks column(s) {missing}; found {list(frame.columns)} (fill in the label column of to_label.csv)"
        )
    by_name = {name: name for name in LABELS} | {str(i): name for i, name in enumerate(LABELS)}
    texts: dict[str, Votes] = {}
    skipped = 0
    for index, (text, label) in enumerate(zip(frame["text"], frame["label"])):
        row = f"row {index + 2}"  # the line in the file: the header is line 1
        if not isinstance(text, str) or not visible(text):
            key = f"row:{index + 2}"
            texts[key] = Votes(key, "", [row], problems=["the row has no text"])
            continue
        key = text_key(text)
        item = texts.setdefault(key, Votes(key, text))
        item.tasks.append(row)
        value = "" if label is None or (isinstance(label, float) and pd.isna(label)) else str(label).strip()
        if not value:
            skipped += 1
            continue
        name = by_name.get(value.lower())
        if name is None:
            item.problems.append(f"label {value!r} is not one of {', '.join(LABELS)}")
        else:
            item.votes.append(name)
    return resolve(texts, source_format="csv", tasks=len(frame), skipped=skipped, cancelled=0, empty=0, min_agreement=min_agreement)
