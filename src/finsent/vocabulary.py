"""The words every room shares: the labels, the probability columns and the text patterns.

Defined once: the slices the gate checks, the tickers the monitor extracts, the tokens the augmenters
protect and the drift descriptors all read the same cashtag and URL patterns.
"""

from __future__ import annotations

import re
import unicodedata

LABELS: tuple[str, ...] = ("bearish", "bullish", "neutral")  # label id i is LABELS[i] (TFNS's order)
PROBABILITY_COLUMNS: tuple[str, ...] = tuple(f"p_{name}" for name in LABELS)

URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
# A $cashtag: one to six letters with an optional class suffix ($BRK.B), not part of a longer word or
# an amount ($5, US$). Group 1 is the ticker.
CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?)(?![\w.]*\w)")
# Control characters (NUL included; tab and line breaks are text): never part of news. A text holding
# one is rejected with that reason, never cut or cleaned silently (PostgreSQL cannot store NUL).
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def visible(text: str) -> str:
    """``text`` without surrounding white space and without invisible format characters (zero-width
    spaces and joiners, the BOM): what decides whether a text is empty."""
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf").strip()
