"""Markdown for people: tables whose cells cannot break them, and numbers written one way.

The flows publish what a run found as Prefect artifacts (markdown shown in the UI). The text comes from
the rooms (the training report from registry, the window's from monitoring, the search's from training);
this leaf is what they share, on the floor so that every room can use it. Pure: strings in, strings out.

A cell holds any text: a ``|`` would end the cell and a line break the row, so both are escaped; a
reason or a file name is shown in full, never cut.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

MISSING = "n/a"  # a number the run did not produce (no dev split, a signal not computed)


def number(value: object, digits: int = 4) -> str:
    """``value`` for a table: floats to ``digits`` significant digits, None and NaN as ``n/a``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def signed(value: object, digits: int = 3) -> str:
    """A change, with its sign always shown (``+0.42``, ``-0.1``)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value):
        return f"{value:+.{digits}g}"
    return number(value, digits)


def line(text: object) -> str:
    """``text`` on one line (for a heading or a list item): line breaks become spaces."""
    return " ".join(str(text).splitlines()) if text is not None else ""


def cell(value: object) -> str:
    """``value`` as one table cell: ``\\`` and ``|`` escaped, line breaks as ``<br>``, numbers by ``number``."""
    text = value if isinstance(value, str) else number(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    return "<br>".join(text.splitlines()) if text else " "


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table; a short row is padded with empty cells, a long one cut."""
    width = len(headers)
    out = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * width]
    for row in rows:
        cells = [cell(v) for v in list(row)[:width]]
        cells += [" "] * (width - len(cells))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def code(text: object) -> str:
    """``text`` as inline code, with a fence longer than any run of backticks inside it."""
    body = line(text)
    longest = current = 0
    for ch in body:
        current = current + 1 if ch == "`" else 0
        longest = max(longest, current)
    fence = "`" * (longest + 1)
    pad = " " if body.startswith("`") or body.endswith("`") else ""
    return f"{fence}{pad}{body}{pad}{fence}"
