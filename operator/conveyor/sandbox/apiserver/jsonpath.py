"""The JSONPath that printer columns use, evaluated as kubectl's `jsonpath` package does.

Supported: `.a.b`, `['a.b']`, `[0]`, `[-1]`, `[1:3]`, `[*]`, `.*` and filters
`[?(@.type=="Ready")]` (==, !=, <, <=, >, >=, or a bare `@.a` for existence); the whole path
may be wrapped in `{}`. Recursive descent (`..`) is refused with a ValueError, as are other
expressions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["Step", "evaluate", "parse"]

# One step of a parsed path: ("field", name), ("wildcard",), ("index", i),
# ("slice", start, stop) or ("filter", steps, operator, literal).
Step = tuple[Any, ...]

_FIELD_NAME = re.compile(r"[^.\[\]\s]+")
_FILTER = re.compile(
    r"^\?\(\s*@(?P<path>[^=!<>]*?)\s*"
    r"(?:(?P<op>==|!=|<=|>=|<|>)\s*(?P<literal>.+?))?\s*\)$"
)
_SLICE = re.compile(r"^(-?\d*):(-?\d*)$")


def parse(expression: str) -> list[Step]:
    """The steps of a JSONPath expression; a ValueError names the part that is not supported."""
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if not text:
        raise ValueError("the path is empty")
    steps: list[Step] = []
    position = 0
    while position < len(text):
        if text.startswith("..", position):
            raise ValueError("recursive descent (..) is not supported")
        if text[position] == "[":
            end = _closing_bracket(text, position)
            steps.append(_bracket_step(text[position + 1 : end].strip()))
            position = end + 1
            continue
        if text[position] == ".":
            position += 1
        name = _FIELD_NAME.match(text, position)
        if not name:
            raise ValueError(f"expected a field name at offset {position}")
        steps.append(("wildcard",) if name[0] == "*" else ("field", name[0]))
        position = name.end()
    return steps


def _closing_bracket(text: str, start: int) -> int:
    quote, depth = "", 0
    for position in range(start + 1, len(text)):
        char = text[position]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "]" and depth == 0:
            return position
    raise ValueError(f"unclosed [ at offset {start}")


def _bracket_step(inner: str) -> Step:
    if inner == "*":
        return ("wildcard",)
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return ("field", inner[1:-1])
    if re.fullmatch(r"-?\d+", inner):
        return ("index", int(inner))
    if bounds := _SLICE.match(inner):
        start, stop = (int(bound) if bound else None for bound in (bounds[1], bounds[2]))
        return ("slice", start, stop)
    if filtered := _FILTER.match(inner):
        left = parse(filtered["path"]) if filtered["path"].strip() else []
        literal = _literal(filtered["literal"]) if filtered["op"] else None
        return ("filter", left, filtered["op"], literal)
    raise ValueError(f"unsupported expression [{inner}]")


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    words = {"true": True, "false": False, "null": None}
    if text in words:
        return words[text]
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        raise ValueError(f"unsupported filter value {text!r}") from None


def evaluate(steps: list[Step], root: Any) -> list[Any]:
    """Every value the steps reach from root, in document order."""
    current = [root]
    for step in steps:
        current = [found for value in current for found in _apply(step, value)]
    return current


def _apply(step: Step, value: Any) -> list[Any]:
    kind = step[0]
    if kind == "field":
        return [value[step[1]]] if isinstance(value, dict) and step[1] in value else []
    if kind == "wildcard":
        return list(value.values()) if isinstance(value, dict) else list(value or [])
    if not isinstance(value, list):
        return []
    if kind == "index":
        return [value[step[1]]] if -len(value) <= step[1] < len(value) else []
    if kind == "slice":
        return value[step[1] : step[2]]
    _, left, operator, literal = step
    return [item for item in value if _passes(evaluate(left, item), operator, literal)]


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _passes(found: list[Any], operator: str | None, literal: Any) -> bool:
    if operator is None:
        return bool(found)
    if len(found) != 1:
        return False
    left = found[0]
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, literal))
    if not numbers and type(left) is not type(literal):
        return False  # Go's template comparison refuses mixed types
    try:
        return _COMPARISONS[operator](left, literal)
    except TypeError:
        return False
