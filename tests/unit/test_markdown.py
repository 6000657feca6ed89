"""The floor's markdown helpers: a cell never breaks its table, numbers are written one way."""

from __future__ import annotations

import math

from finsent import markdown as md


def cells(row: str) -> list[str]:
    """The cells of one markdown table row, as a GFM reader splits them: an unescaped ``|`` ends a cell."""
    out, current, escaped = [], "", False
    for ch in row.strip()[1:]:
        if escaped:
            current, escaped = current + ch, False
        elif ch == "\\":
            current, escaped = current + ch, True
        elif ch == "|":
            out.append(current.strip())
            current = ""
        else:
            current += ch
    return out


def test_a_pipe_or_a_line_break_in_a_cell_keeps_the_table_whole():
    text = md.table(["#", "reason"], [[1, "a | b\nsecond line"], [2, "ends with a backslash \\"], [3, "plain"]])
    lines = text.splitlines()
    assert len(lines) == 5  # header, rule, three rows: the line break did not add a row
    assert all(len(cells(line)) == 2 for line in lines if not line.startswith("|---"))
    assert cells(lines[2]) == ["1", "a \\| b<br>second line"]
    assert cells(lines[3])[1] == "ends with a backslash \\\\"


def test_rows_are_padded_or_cut_to_the_header():
    lines = md.table(["a", "b"], [["only"], ["one", "two", "three"]]).splitlines()
    assert len(cells(lines[2])) == 2 and len(cells(lines[3])) == 2
    assert "three" not in lines[3]


def test_numbers():
    assert md.number(None) == md.number(math.nan) == "n/a"
    assert md.number(0.812345) == "0.8123" and md.number(12) == "12" and md.number(True) == "yes"
    assert md.signed(0.25) == "+0.25" and md.signed(-0.1) == "-0.1" and md.signed(None) == "n/a"
    assert md.line("two\nlines") == "two lines"


def test_inline_code_survives_backticks():
    assert md.code("run-1") == "`run-1`"
    assert md.code("a `b` c") == "``a `b` c``"
