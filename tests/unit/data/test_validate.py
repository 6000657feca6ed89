import pandas as pd

from finsent.config import ValidateParams
from finsent.data.validate import drop_eval_overlap, prepare_for_validation, validate_frame

EVAL = pd.DataFrame({"text": ["$ALLY - Ally Financial pulls outlook", "Markets calm"], "label": ["0", "2"]})


def failed(report) -> dict[str, int | None]:
    return {f"{f.expectation}:{f.column}": f.unexpected_count for f in report.failures}


def test_clean_batch_passes():
    batch = pd.DataFrame(
        {"text": ["$AAPL beats estimates", "Shares slump on guidance cut", "Board meets Tuesday"], "label": ["1", "0", "2"]}
    )
    report = validate_frame(batch, EVAL, ValidateParams(), "clean")
    assert report.success, report.summary()


def test_each_problem_is_named_with_counts_and_examples():
    batch = pd.DataFrame(
        {
            "text": ["good news $AAPL", "   ", "GOOD news  $aapl", "$ALLY - ally financial pulls outlook", "x" * 5000, "fine row"],
            "label": ["1", "2", "1", "0", "2", "happy"],
        }
    )
    report = validate_frame(batch, EVAL, ValidateParams(), "bad")
    got = failed(report)
    assert not report.success
    assert got["expect_column_values_to_be_between:text_chars"] == 2  # blank and too long
    assert got["expect_column_values_to_be_in_set:label_raw"] == 1
    assert got["expect_column_values_to_be_in_set:is_duplicate"] == 1  # case/space-insensitive duplicate
    assert got["expect_column_values_to_be_in_set:in_eval"] == 1  # leakage into the evaluation set
    leak = next(f for f in report.failures if f.column == "in_eval")
    assert leak.examples == ["$ALLY - ally financial pulls outlook"]
    assert "in_eval" in report.summary()


def test_missing_columns_fail_before_anything_else():
    report = validate_frame(pd.DataFrame({"headline": ["x"]}), None, ValidateParams(), "cols")
    assert not report.success
    assert {f.column for f in report.failures} == {"text", "label"}


def test_class_share_bounds_apply_to_large_batches():
    batch = pd.DataFrame({"text": [f"headline number {i}" for i in range(300)], "label": ["2"] * 300})
    report = validate_frame(batch, None, ValidateParams(), "skewed")
    assert any(f.expectation == "expect_column_mean_to_be_between" for f in report.failures)


def test_prepare_flags_and_overlap_drop():
    prepared = prepare_for_validation(pd.DataFrame({"text": ["A b", "a  B", "Markets calm"], "label": ["1", "1", "2"]}), EVAL)
    assert prepared["is_duplicate"].tolist() == [False, True, False]
    assert prepared["in_eval"].tolist() == [False, False, True]
    train = pd.DataFrame({"text": ["markets  CALM", "other"], "label": [2, 1]})
    kept, dropped = drop_eval_overlap(train, EVAL)
    assert dropped == 1 and kept["text"].tolist() == ["other"]
