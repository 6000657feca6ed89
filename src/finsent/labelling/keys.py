"""The key of a text in the labelling loop: a hash of the text as ``data`` compares texts.

``data`` calls two texts the same when they differ only in case and spacing
(``finsent.data.validate.normalise_text``); the key hashes that form, so a text exported once, or
labelled once, is known again whichever batch, file or Label Studio task it comes back in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from finsent.data.validate import normalise_text

KEY_PREFIX = "sha256:"


def text_key(text: str) -> str:
    """``sha256:<hex>`` of the normalised text (71 characters)."""
    return KEY_PREFIX + hashlib.sha256(normalise_text(str(text)).encode("utf-8")).hexdigest()


def text_keys(texts: Iterable[str]) -> set[str]:
    return {text_key(t) for t in texts}
