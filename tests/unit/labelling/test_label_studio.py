"""Label Studio's formats: the config and the import tasks checked by label-studio-sdk's own validators,
and the JSON export (a fixture in Label Studio's documented export format) read back into labels:
majority, ties held back, cancelled and empty annotations counted, unknown labels refused, and a file
that is no export a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from label_studio_sdk.label_interface import LabelInterface
from label_studio_sdk.label_interface.objects import TaskValue

from finsent.errors import FinsentError
from finsent.labelling import label_studio as ls
from finsent.labelling.keys import text_key
from finsent.vocabulary import LABELS

FIXTURE = Path(__file__).with_name("label_studio_export.json")


def chosen(n: int = 3) -> pd.DataFrame:
    texts = ["Acme beats estimates", "Acme misses estimates", "Acme holds its meeting"][:n]
    return pd.DataFrame(
        {
            "key": [text_key(t) for t in texts],
            "text": texts,
            "ticker": ["ACME", "", "ACME,BETA"][:n],
            "published_at": ["2026-11-30T09:00:00Z"] * n,
            "predicted": ["bullish", "bearish", "neutral"][:n],
            "confidence": [0.9, 0.45, 0.34][:n],
            "strategy": "uncertainty",
            "score": [0.2, 0.8, 0.99][:n],
        }
    )


def annotation(*labels: str, cancelled: bool = False, user: int = 1) -> dict:
    """An annotation as Label Studio exports it."""
    return {
        "id": 9000 + user,
        "completed_by": user,
        "result": [{"id": f"r{user}", "from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": list(labels)}}]
        if labels
        else [],
        "was_cancelled": cancelled,
        "ground_truth": False,
        "lead_time": 1.0,
    }


def test_the_config_is_valid_for_label_studio_with_the_three_labels():
    interface = LabelInterface(ls.label_config())
    interface.validate()  # raises on a bad config
    control = interface.get_control(ls.CONTROL)
    assert control.tag == "Choices" and control.labels == list(LABELS) and control.to_name == [ls.OBJECT]


def test_import_tasks_pass_label_studios_task_and_prediction_checks():
    interface = LabelInterface(ls.label_config())
    tasks = ls.make_tasks(chosen(), "finsent-sentiment v3")
    assert len(tasks) == 3
    for task, row in zip(tasks, chosen().itertuples()):
        TaskValue.model_validate(task)
        assert interface.validate_task({"data": task["data"]})  # every object's $variable is in data
        (prediction,) = task["predictions"]
        assert interface.validate_prediction(prediction, return_errors=True) == []
        assert prediction["model_version"] == "finsent-sentiment v3" and prediction["score"] == row.confidence
        assert prediction["result"][0]["value"]["choices"] == [row.predicted]
        assert task["data"]["finsent_key"] == row.key and task["data"]["ticker"] == row.ticker
    # The check can fail: a label outside the config is refused by the same validator.
    bad = {"score": 0.5, "result": ls.choice_result("positive")}
    assert interface.validate_prediction(bad, return_errors=True)


def test_the_plain_csv_has_an_empty_label_column():
    frame = ls.to_label_frame(chosen())
    assert list(frame.columns) == list(ls.CSV_COLUMNS)
    assert (frame["label"] == "").all() and frame["text"].tolist() == chosen()["text"].tolist()


def test_the_fixture_is_label_studios_export_format():
    tasks = json.loads(FIXTURE.read_text())
    interface = LabelInterface(ls.label_config())
    unknown = []
    for task in tasks:
        TaskValue.model_validate(task)
        for item in task["annotations"]:
            if item["result"] and not interface.validate_annotation(item):
                unknown.append(task["id"])
    assert unknown == [105]  # the one annotation with a label outside the config


def test_export_majority_tie_cancelled_empty_and_unknown_label():
    parsed = ls.parse_export(FIXTURE.read_bytes())
    assert parsed.source_format == "label-studio-json" and parsed.tasks == 8
    labels = dict(zip(parsed.rows["text"], parsed.rows["label"]))
    assert labels == {
        "Acme beats estimates and raises its outlook": LABELS.index("bullish"),  # 2 of 3
        "Acme keeps its dividend unchanged": LABELS.index("neutral"),  # the other annotation was cancelled
        "Acme recalls 2 million cars over brake faults": LABELS.index("bearish"),  # not the prediction: the annotation
    }
    assert parsed.rows.set_index("text")["votes"].to_dict()["Acme beats estimates and raises its outlook"] == 3
    assert all(parsed.rows["key"] == parsed.rows["text"].map(text_key))
    held = {h.text: h for h in parsed.held_back}
    assert set(held) == {"Acme shares slip as the chief executive resigns", "Acme wins a large defence contract"}
    assert "no majority" in held["Acme shares slip as the chief executive resigns"].reason
    assert held["Acme shares slip as the chief executive resigns"].tasks == ["102"]
    assert "'positive' is not one of bearish, bullish, neutral" in held["Acme wins a large defence contract"].reason
    assert parsed.cancelled == 2  # tasks 103 and 107
    assert parsed.empty == 1  # task 104: submitted with no choice
    assert parsed.skipped == 3  # 103 (only cancelled), 104 (only empty), 106 (never annotated)


def test_a_weak_majority_is_held_back_under_min_agreement():
    parsed = ls.parse_export(FIXTURE.read_bytes(), min_agreement=0.7)
    held = {h.text: h.reason for h in parsed.held_back}
    assert "2 of 3 votes, under label.min_agreement 0.7" in held["Acme beats estimates and raises its outlook"]
    assert "Acme beats estimates and raises its outlook" not in set(parsed.rows["text"])


def test_one_text_in_two_tasks_pools_its_votes():
    task = lambda i, *labels: {"id": i, "data": {"text": "Acme  BEATS estimates"}, "annotations": [annotation(*labels)]}  # noqa: E731
    agree = ls.parse_export(json.dumps([task(1, "bullish"), task(2, "bullish") | {"data": {"text": "acme beats estimates"}}]))
    assert agree.rows["votes"].tolist() == [2] and agree.rows["label"].tolist() == [LABELS.index("bullish")]
    disagree = ls.parse_export(json.dumps([task(1, "bullish"), task(2, "bearish")]))
    assert disagree.rows.empty and disagree.held_back[0].tasks == ["1", "2"]


def test_several_labels_in_one_annotation_or_another_control_are_held_back():
    several = {"id": 1, "data": {"text": "Acme is mixed"}, "annotations": [annotation("bullish", "bearish")]}
    other = {
        "id": 2,
        "data": {"text": "Acme is other"},
        "annotations": [{"result": [{"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": ["earnings"]}}]}],
    }
    no_text = {"id": 3, "data": {"headline": "Acme"}, "annotations": [annotation("bullish")]}
    parsed = ls.parse_export(json.dumps([several, other, no_text]))
    reasons = {h.tasks[0]: h.reason for h in parsed.held_back}
    assert "chose several labels" in reasons["1"]
    assert "control(s) topic, not 'sentiment'" in reasons["2"]
    assert "no text under data.text" in reasons["3"]
    assert parsed.rows.empty


def test_an_export_round_trip_gives_back_the_chosen_labels():
    tasks = ls.make_tasks(chosen(), "finsent-sentiment v3")
    for i, (task, label) in enumerate(zip(tasks, ["bearish", "bullish", "neutral"])):
        task |= {"id": i + 1, "annotations": [annotation(label)]}
    parsed = ls.parse_export(json.dumps(tasks))
    assert [LABELS[i] for i in parsed.rows["label"]] == ["bearish", "bullish", "neutral"]
    assert parsed.rows["key"].tolist() == chosen()["key"].tolist()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('[{"id": 1, "data": {"text": "x"}', "not JSON (Expecting"),
        (b"\xff\xfe[", "not UTF-8"),
        ('{"tasks": []}', "a list of tasks; got a dict"),
        ("[]", "holds no tasks"),
        ('[{"id": 4, "annotations": []}]', "task 4: not a Label Studio task"),
        ('[{"id": 5, "data": {"text": "x"}, "annotations": {"result": []}}]', "task 5: annotations is not a list"),
        ('[{"id": 6, "data": {"text": "x"}, "annotations": [{"result": "bullish"}]}]', "task 6: an annotation's result is a str"),
        ('[{"data": {"text": "x"}, "annotations": [{"result": [{"type": "choices", "value": "bullish"}]}]}]', "task #1 in the file"),
    ],
)
def test_a_file_that_is_no_export_is_a_clear_error(raw, message):
    with pytest.raises(ls.LabelStudioFormatError, match=None) as caught:
        ls.parse_export(raw)
    assert isinstance(caught.value, FinsentError)
    assert message in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_hand_filled_csv():
    frame = ls.to_label_frame(chosen()).astype(object)
    frame.loc[len(frame)] = {**frame.iloc[0].to_dict(), "label": "bullish"}  # the same text twice, agreeing
    frame["label"] = ["Bullish", "0", None, "bullish"]
    extra = pd.DataFrame({"text": ["Acme is great", "   "], "label": ["positive", "neutral"]})
    parsed = ls.parse_csv(pd.concat([frame, extra], ignore_index=True))
    assert parsed.source_format == "csv" and parsed.tasks == 6
    assert dict(zip(parsed.rows["text"], parsed.rows["label"])) == {"Acme beats estimates": 1, "Acme misses estimates": 0}
    assert parsed.rows["votes"].tolist() == [2, 1]
    assert parsed.skipped == 1  # the empty label
    reasons = sorted(h.reason for h in parsed.held_back)
    assert reasons == ["label 'positive' is not one of bearish, bullish, neutral", "the row has no text"]
    with pytest.raises(ls.LabelStudioFormatError, match=r"lacks column\(s\) \['label'\]"):
        ls.parse_csv(pd.DataFrame({"text": ["x"]}))


def test_majority():
    assert ls.majority(["bullish", "bullish", "bearish"], 0.5) == ("bullish", "")
    assert ls.majority(["bullish"], 1.0) == ("bullish", "")
    assert ls.majority(["bullish", "bearish"], 0.5)[0] is None
    assert ls.majority(["bullish", "bullish", "bearish", "neutral"], 0.5) == ("bullish", "")
    assert ls.majority(["bullish", "bullish", "bearish", "neutral"], 0.6)[0] is None
