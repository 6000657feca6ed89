"""Validation gate: a Great Expectations 1.x suite for a labelled news batch.

``prepare_for_validation`` (pure) adds the derived columns the suite checks: stripped length, the
raw label as written, duplicate and leakage flags, one-hot class columns. ``validate_frame`` runs the
suite in an ephemeral GX context and returns a ``ValidationReport`` with, for each failed
expectation, how many rows failed and a few examples.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from finsent.config import DataParams, Params, ValidateParams
from finsent.data.frames import REQUIRED_COLUMNS, normalise_labels
from finsent.errors import FinsentError
from finsent.files import write_json
from finsent.vocabulary import CONTROL_CHARS, LABELS

ACCEPTED_LABELS = sorted({str(i) for i in range(len(LABELS))} | set(LABELS) | {f"{i}.0" for i in range(len(LABELS))})
_SPACES = re.compile(r"\s+")


class ValidationError(FinsentError, ValueError):
    """A batch failed the validation gate; ``report`` says which expectations and rows."""

    def __init__(
        self, reports: list[ValidationReport], quarantined: list[str] | None = None, left_in_place: list[str] | None = None
    ) -> None:
        self.reports = [r for r in reports if not r.success]
        self.quarantined = quarantined or []
        self.left_in_place = left_in_place or []
        lines = ["validation failed; nothing downstream ran"] + [r.summary() for r in self.reports]
        lines += [f"rejected batch kept at {path}" for path in self.quarantined]
        lines += [
            f"{path} is part of the recorded data version and was left in place: replace it with a corrected "
            "batch and version that (finsent data add), or check out an earlier version (finsent data checkout)"
            for path in self.left_in_place
        ]
        super().__init__("\n".join(lines))


@dataclass
class Failure:
    expectation: str
    column: str | None
    unexpected_count: int | None
    unexpected_percent: float | None
    observed: object
    examples: list = field(default_factory=list)


@dataclass
class ValidationReport:
    name: str
    rows: int
    success: bool
    evaluated: int
    failures: list[Failure] = field(default_factory=list)

    def summary(self) -> str:
        if self.success:
            return f"{self.name}: {self.rows} rows passed all {self.evaluated} expectations"
        lines = [f"{self.name}: {len(self.failures)} of {self.evaluated} expectations failed on {self.rows} rows"]
        for f in self.failures:
            count = f"{f.unexpected_count} rows" if f.unexpected_count is not None else f"observed {f.observed}"
            where = f" on {f.column}" if f.column else ""
            lines.append(f"  - {f.expectation}{where}: {count}; examples: {f.examples}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)


def normalise_text(text: str) -> str:
    """The key for duplicate and leakage checks: case and whitespace do not make a new row."""
    return _SPACES.sub(" ", text).strip().lower()


def drop_eval_overlap(train: pd.DataFrame, eval_df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Remove training rows whose normalised text is also in the evaluation data."""
    eval_keys = set(eval_df["text"].map(normalise_text))
    leaked = train["text"].map(normalise_text).isin(eval_keys)
    return train.loc[~leaked].reset_index(drop=True), int(leaked.sum())


def prepare_for_validation(raw: pd.DataFrame, eval_df: pd.DataFrame | None) -> pd.DataFrame:
    """Derived columns for the suite; ``raw`` holds text and label as read (labels not yet mapped)."""
    df = pd.DataFrame(index=raw.index)
    text = raw["text"] if "text" in raw else pd.Series([""] * len(raw), index=raw.index)
    df["text"] = text
    as_str = text.map(lambda t: t if isinstance(t, str) else "")
    df["text_is_str"] = text.map(lambda t: isinstance(t, str))
    df["text_chars"] = as_str.str.strip().str.len()
    df["has_control_chars"] = as_str.str.contains(CONTROL_CHARS)
    keys = as_str.map(normalise_text)
    df["is_duplicate"] = keys.duplicated(keep="first") & (df["text_chars"] > 0)
    eval_keys = set(eval_df["text"].map(normalise_text)) if eval_df is not None else set()
    df["in_eval"] = keys.isin(eval_keys) & (df["text_chars"] > 0)
    raw_label = raw["label"] if "label" in raw else pd.Series([None] * len(raw), index=raw.index)
    df["label"] = raw_label
    df["label_raw"] = raw_label.map(lambda v: str(v).strip().lower() if v is not None else None)
    codes = normalise_labels(raw_label)
    for i, name in enumerate(LABELS):
        df[f"is_{name}"] = (codes == i).astype(float)
    return df


def build_suite(p: ValidateParams, rows: int):
    import great_expectations as gx
    from great_expectations import expectations as gxe

    suite = gx.ExpectationSuite(name="labelled_news_batch")
    for column in REQUIRED_COLUMNS:
        suite.add_expectation(gxe.ExpectColumnToExist(column=column))
    suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=p.min_rows))
    suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="text"))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="text_is_str", value_set=[True]))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="text_chars", min_value=p.min_text_chars, max_value=p.max_text_chars))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="has_control_chars", value_set=[False]))
    suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="label_raw"))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="label_raw", value_set=ACCEPTED_LABELS))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="is_duplicate", value_set=[False], mostly=1.0 - p.max_duplicate_share))
    leak_mostly = min(1.0, max(0.0, 1.0 - (p.max_leak_rows / rows if rows else 0.0)))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="in_eval", value_set=[False], mostly=leak_mostly))
    if rows >= p.class_share_min_rows:
        for name, (low, high) in p.class_share_bounds.items():
            suite.add_expectation(gxe.ExpectColumnMeanToBeBetween(column=f"is_{name}", min_value=low, max_value=high))
    return suite


def _shorten(value: object, limit: int = 120) -> object:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def _failure_from(result, prepared: pd.DataFrame, max_examples: int) -> Failure:
    config = result.expectation_config
    kwargs = dict(config.kwargs)
    column = kwargs.get("column")
    info = result.result or {}
    examples = list(info.get("partial_unexpected_list") or [])[:max_examples]
    # Show the offending texts rather than derived flags such as True/False.
    index_list = info.get("partial_unexpected_index_list") or info.get("unexpected_index_list") or []
    if column in {"is_duplicate", "in_eval", "text_is_str", "text_chars", "has_control_chars"} and index_list:
        rows = [i if isinstance(i, int) else i.get("index", i) for i in index_list[:max_examples]]
        examples = [prepared.loc[r, "text"] for r in rows if r in prepared.index]
    return Failure(
        expectation=config.type,
        column=column,
        unexpected_count=info.get("unexpected_count"),
        unexpected_percent=info.get("unexpected_percent"),
        observed=info.get("observed_value"),
        examples=[_shorten(e) for e in examples],
    )


def validate_frame(raw: pd.DataFrame, eval_df: pd.DataFrame | None, p: ValidateParams, name: str = "batch") -> ValidationReport:
    """Run the suite on ``raw`` (text and label as read); ``eval_df`` is the evaluation set for the
    leakage check (None when validating the evaluation set itself)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:  # nothing else is meaningful without the columns
        failures = [Failure("expect_column_to_exist", c, None, None, list(raw.columns)) for c in missing]
        return ValidationReport(name, len(raw), False, len(REQUIRED_COLUMNS), failures)
    prepared = prepare_for_validation(raw, eval_df).reset_index(drop=True)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas("finsent")
    batch_definition = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("whole")
    suite = context.suites.add(build_suite(p, len(prepared)))
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=f"{name}_validation", data=batch_definition, suite=suite))
    result = definition.run(
        batch_parameters={"dataframe": prepared},
        result_format={
            "result_format": "SUMMARY",
            "partial_unexpected_count": p.report_examples,
            "include_unexpected_rows": False,
            "return_unexpected_index_query": False,
        },
    )
    failures = [_failure_from(r, prepared, p.report_examples) for r in result.results if not r.success]
    return ValidationReport(name=name, rows=len(prepared), success=bool(result.success), evaluated=len(result.results), failures=failures)


def training_files(root: Path, p: DataParams) -> list[Path]:
    """The labelled files that make up the training data: the base set, then every added batch."""
    data = Path(root) / p.data_dir
    return [data / p.train_file, *sorted((data / p.batches_dir).glob("*.csv"))]


def validate_file(path: Path, eval_raw: pd.DataFrame | None, p: ValidateParams) -> ValidationReport:
    """Read one file as it is (labels unmapped) and run the suite; unreadable files fail as reports."""
    from finsent.data.frames import DataError, read_table

    try:
        raw = read_table(path)
    except DataError as exc:
        return ValidationReport(path.name, 0, False, 1, [Failure("readable_utf8_table", None, None, None, str(exc))])
    return validate_frame(raw, eval_raw, p, name=path.name)


def run(p: Params, root: Path, report_path: Path) -> dict:
    """Validate the evaluation file and every training file; a failure stops the run with
    ``ValidationError`` before anything downstream. A failing batch that is not versioned yet (a file
    dropped into data/batches by hand) is moved to the quarantine folder with its report; a batch that
    is part of the recorded data version was accepted once and is never moved: it is copied there
    with its report, and the error says to replace it with a new version."""
    from finsent.data.frames import read_table
    from finsent.data.versioning import quarantine, recorded_files

    root = Path(root)
    eval_path = root / p.data.data_dir / p.data.eval_file
    eval_report = validate_file(eval_path, None, p.validate)
    eval_raw = read_table(eval_path) if eval_report.success else None
    files = training_files(root, p.data)
    # The upstream base set is checked for leakage too, but its overlap with the evaluation set is
    # dropped by the prepare stage rather than rejected; added batches must hold no evaluation rows.
    base_rules = dataclasses.replace(p.validate, max_leak_rows=10**9)
    reports = [eval_report, validate_file(files[0], eval_raw, base_rules)]
    reports += [validate_file(f, eval_raw, p.validate) for f in files[1:]]
    summary: dict[str, Any] = {"success": all(r.success for r in reports), "files": [r.to_dict() for r in reports]}
    write_report_dict(summary, report_path)
    if summary["success"]:
        return summary
    data_dir = root / p.data.data_dir
    batches_dir = data_dir / p.data.batches_dir
    versioned = recorded_files(root)  # None: unknown, so nothing is moved
    for report, path in zip(reports[1:], files):
        if not report.success and path.parent == batches_dir:
            kept = quarantine(path, root / p.data.quarantine_dir, json.dumps(report.to_dict(), indent=2, default=str))
            if versioned is None or path.relative_to(data_dir).as_posix() in versioned:
                summary.setdefault("versioned_failures", []).append(str(path))
            else:
                path.unlink()
            summary.setdefault("quarantined", []).append(str(kept))
    write_report_dict(summary, report_path)
    raise ValidationError(reports, summary.get("quarantined"), summary.get("versioned_failures"))


def write_report_dict(summary: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, summary)
