"""Expectations on the shipped TFNS dataset itself."""

from pathlib import Path

from finsent.config import ValidateParams
from finsent.data.frames import read_table
from finsent.data.validate import normalise_text, validate_frame

TFNS = Path(__file__).resolve().parents[2] / "datasets" / "tfns"


def test_row_counts_and_label_set(tfns_train, tfns_valid):
    assert len(tfns_train) == 9543 and len(tfns_valid) == 2388
    assert set(tfns_train["label"]) == {0, 1, 2} == set(tfns_valid["label"])
    assert tfns_train["label"].value_counts().to_dict() == {2: 6178, 1: 1923, 0: 1442}


def test_no_blank_text_and_no_exact_duplicates(tfns_train, tfns_valid):
    for df in (tfns_train, tfns_valid):
        assert df["text"].str.strip().str.len().min() > 0
        assert not df["text"].duplicated().any()


def test_training_and_evaluation_share_at_most_one_normalised_row(tfns_train, tfns_valid):
    shared = set(tfns_train["text"].map(normalise_text)) & set(tfns_valid["text"].map(normalise_text))
    assert len(shared) <= 1  # one upstream near-duplicate; the prepare stage drops it from training


def test_evaluation_split_passes_the_validation_suite():
    report = validate_frame(read_table(TFNS / "sent_valid.csv"), None, ValidateParams(min_text_chars=2), "sent_valid")
    assert report.success, report.summary()


def test_licence_note_ships_with_the_data():
    note = (TFNS / "README.md").read_text()
    assert "MIT" in note and "zeroshot/twitter-financial-news-sentiment" in note
