import pandas as pd
import pytest

from finsent.data.frames import DataError, normalise_labels, read_dataset, stratified_sample, write_dataset


def test_reads_csv_and_maps_label_names(tmp_path):
    path = tmp_path / "b.csv"
    path.write_text("text,label\n$AAPL beats,bullish\nshares fall,0\nmeeting on May 5,NEUTRAL\nodd,happy\n")
    df = read_dataset(path)
    assert df["label"].tolist() == [1, 0, 2, -1]
    assert df["text"].tolist()[0] == "$AAPL beats"


def test_reads_jsonl(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_text('{"text": "stocks rally", "label": 1}\n{"text": "stocks slump", "label": "bearish"}\n')
    assert read_dataset(path)["label"].tolist() == [1, 0]


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "file not found"),
        (b"", "file is empty"),
        (b"text,label\n", "no rows"),
        ("text,label\ncaf\xe9 up,1\n".encode("latin-1"), "not valid UTF-8"),
        (b"headline,sentiment\nup,1\n", "missing column"),
    ],
)
def test_bad_files_get_specific_errors(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_dataset(path)


def test_normalise_labels_accepts_ints_floats_names():
    assert normalise_labels(pd.Series(["0", "1.0", 2, "Bearish", " neutral ", "3", None, "x"])).tolist() == [0, 1, 2, 0, 2, -1, -1, -1]


def test_write_dataset_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "out.csv"
    write_dataset(pd.DataFrame({"text": ["a"], "label": [1]}), path)
    before = path.read_text()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    with pytest.raises(RuntimeError):
        write_dataset(pd.DataFrame({"text": ["b"], "label": [0]}), path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temporary file left


def test_stratified_sample_keeps_class_shares(tfns_train):
    sample = stratified_sample(tfns_train, 900, seed=1)
    assert abs(len(sample) - 900) <= 3
    full = tfns_train["label"].value_counts(normalize=True)
    got = sample["label"].value_counts(normalize=True)
    assert ((full - got).abs() < 0.01).all()
