"""The dev split: carved from the training data, stratified and seeded, for every training decision.

A row's side depends only on its text, its label and the seed (a keyed hash), not on the file's row
order, so re-ordering the data changes nothing. Within each class the rows are ranked by that hash and
the first ``fraction`` of them go to dev: exact class shares. Copies of a text (case and spacing
ignored) always land on the same side, so no dev text is also a training text.
"""

from __future__ import annotations

import hashlib

import pandas as pd

from finsent.data.validate import normalise_text


def text_rank_key(text: str, seed: int) -> int:
    digest = hashlib.blake2b(normalise_text(text).encode("utf-8", "surrogatepass"), digest_size=8, key=str(seed).encode())
    return int.from_bytes(digest.digest(), "big")


def dev_split(train: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train without dev, dev). ``fraction`` of each class's distinct texts go to dev, chosen by hash."""
    if fraction <= 0 or train.empty:
        return train.reset_index(drop=True), train.iloc[0:0].reset_index(drop=True)
    keys = train["text"].map(normalise_text)
    ranks = train["text"].map(lambda t: text_rank_key(t, seed))
    dev_keys: set[str] = set()
    for _, rows in pd.DataFrame({"key": keys, "rank": ranks, "label": train["label"]}).groupby("label"):
        distinct = rows.drop_duplicates("key").sort_values(["rank", "key"])
        n_dev = int(round(fraction * len(distinct)))
        dev_keys.update(distinct["key"].iloc[:n_dev])
    in_dev = keys.isin(dev_keys).to_numpy()
    return train.loc[~in_dev].reset_index(drop=True), train.loc[in_dev].reset_index(drop=True)
