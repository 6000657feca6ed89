import numpy as np

from finsent.training.features import encode_texts, length_bucketed_batches, pad_batch, sorted_batches


def test_pad_batch_matches_tokenizer_padding(tokenizer):
    texts = ["$AAPL beats", "Shares of the company fell sharply after the guidance cut", "ok"]
    encoded = encode_texts(tokenizer, texts, max_length=32)
    ids, mask = pad_batch(encoded, np.array([0, 1, 2]))
    reference = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    assert ids.tolist() == reference["input_ids"].tolist()
    assert mask.tolist() == reference["attention_mask"].tolist()


def test_truncation_respects_max_length(tokenizer):
    encoded = encode_texts(tokenizer, ["word " * 500], max_length=16)
    assert encoded.lengths.tolist() == [16]


def test_bucketed_batches_cover_every_row_once_and_reduce_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 80, size=1000)
    batches = length_bucketed_batches(lengths, 32, np.random.default_rng(1))
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(1000))
    padded = sum(len(b) * lengths[b].max() for b in batches)
    random_padded = sum(len(b) * lengths[b].max() for b in np.array_split(rng.permutation(1000), len(batches)))
    assert padded < 0.8 * random_padded


def test_bucketed_batches_are_seeded():
    lengths = np.arange(100)
    a = length_bucketed_batches(lengths, 8, np.random.default_rng(3))
    b = length_bucketed_batches(lengths, 8, np.random.default_rng(3))
    assert all((x == y).all() for x, y in zip(a, b))


def test_sorted_batches_longest_first():
    batches = sorted_batches(np.array([3, 9, 1, 7]), 2)
    assert [b.tolist() for b in batches] == [[1, 3], [0, 2]]
