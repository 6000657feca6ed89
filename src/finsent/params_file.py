"""Writing values back into a params YAML file by hand-edit rules, so its comments and layout survive.

``set_values(text, {("train", "learning_rate"): 2e-4, ("train", "on_cuda", "epochs"): 6.0})`` replaces
the value of each key in place (its trailing comment kept) or adds the key at the top of its section.
The result is parsed again and checked to hold exactly the values asked for, so a file this editor
does not understand raises instead of being written wrongly.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from finsent.config import ConfigError

INDENT = 2


def yaml_scalar(value: Any) -> str:
    """A value in YAML flow style on one line: ``2.0e-04``, ``cosine``, ``[a, b]``."""
    if isinstance(value, float):
        text = repr(value)  # the shortest exact form; YAML 1.1 reads 1e-05 as a string, so add a dot
        return text.replace("e", ".0e", 1) if "e" in text and "." not in text else text
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def _key_line(line: str, depth: int) -> str | None:
    """The key a ``key: value`` line defines at nesting ``depth``, if it does."""
    match = re.match(rf"^ {{{depth * INDENT}}}([A-Za-z_][\w.-]*):(\s|$)", line)
    return match.group(1) if match else None


def _section_end(lines: list[str], start: int, depth: int) -> int:
    """The index after the last line of the block opened at ``lines[start]``."""
    end = start + 1
    while end < len(lines):
        stripped = lines[end].strip()
        if stripped and not stripped.startswith("#") and len(lines[end]) - len(lines[end].lstrip(" ")) <= depth * INDENT:
            break
        end += 1
    return end


def _set_one(lines: list[str], path: tuple[str, ...], value: Any) -> None:
    start, end = 0, len(lines)
    for depth, key in enumerate(path[:-1]):
        found = next((i for i in range(start, end) if _key_line(lines[i], depth) == key), None)
        if found is None:
            raise ConfigError(f"cannot write {'.'.join(path)}: section {'.'.join(path[: depth + 1])} is not in the file")
        start, end = found + 1, _section_end(lines, found, depth)
    depth, key = len(path) - 1, path[-1]
    found = next((i for i in range(start, end) if _key_line(lines[i], depth) == key), None)
    if found is None:
        lines.insert(start, f"{' ' * depth * INDENT}{key}: {yaml_scalar(value)}  # written by finsent tune")
        return
    head, _, rest = lines[found].partition(":")
    comment = re.search(r"\s+#.*$", rest)
    if rest.strip() and not comment and rest.strip().startswith(("{", "[", "|", ">")):
        raise ConfigError(f"cannot write {'.'.join(path)}: its value spans a block this editor does not rewrite")
    lines[found] = f"{head}: {yaml_scalar(value)}{comment.group(0) if comment else ''}"


def _get(tree: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def set_values(text: str, values: dict[tuple[str, ...], Any]) -> str:
    """``text`` with each dotted path set to its value; checked by parsing the result."""
    lines = text.splitlines()
    for path, value in values.items():
        _set_one(lines, path, value)
    result = "\n".join(lines) + "\n"
    parsed = yaml.safe_load(result)
    wrong = {".".join(p): (v, _get(parsed, p)) for p, v in values.items() if _get(parsed, p) != v}
    if wrong:
        raise ConfigError(f"writing the params file went wrong (asked, read back): {wrong}")
    return result
