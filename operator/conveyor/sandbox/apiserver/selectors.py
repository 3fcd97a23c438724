"""Label selectors and field selectors, parsed from query strings and matched against objects.

Label selectors: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x,y)`, `a`, `!a`, comma-joined.
Field selectors: `path=value`, `path==value`, `path!=value`, comma-joined, where `path` is a
dotted path into the object (`metadata.name`, `metadata.namespace`, `status.phase`,
`involvedObject.uid`...). A missing field compares as the empty string, as on a real server.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conveyor.sandbox.apiserver.errors import bad_request

__all__ = ["Selector", "parse_field_selector", "parse_label_selector"]

Requirement = Callable[[dict[str, Any]], bool]

_LABEL_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_SET_REQUIREMENT = re.compile(rf"^\s*({_LABEL_KEY})\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQUALITY = re.compile(rf"^\s*({_LABEL_KEY})\s*(==|=|!=)\s*([-A-Za-z0-9_.]*)\s*$")
_EXISTS = re.compile(rf"^\s*(!?)\s*({_LABEL_KEY})\s*$")


@dataclass(frozen=True)
class Selector:
    """Requirements that must all hold; an empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, obj: dict[str, Any]) -> bool:
        return all(requirement(obj) for requirement in self.requirements)

    def __bool__(self) -> bool:
        return bool(self.requirements)


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not inside `( )` of a set requirement."""
    terms, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [term for term in terms if term.strip()]


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _label_requirement(term: str) -> Requirement:
    if match := _SET_REQUIREMENT.match(term):
        key, operator, raw_values = match.group(1), match.group(3), match.group(4)
        values = {value.strip() for value in raw_values.split(",") if value.strip()}
        if operator == "in":
            return lambda obj: _labels(obj).get(key) in values
        return lambda obj: _labels(obj).get(key) not in values
    if match := _EQUALITY.match(term):
        key, operator, value = match.group(1), match.group(3), match.group(4)
        if operator == "!=":
            return lambda obj: _labels(obj).get(key) != value
        return lambda obj: _labels(obj).get(key) == value
    if match := _EXISTS.match(term):
        negated, key = bool(match.group(1)), match.group(2)
        if negated:
            return lambda obj: key not in _labels(obj)
        return lambda obj: key in _labels(obj)
    raise bad_request(
        f"unable to parse requirement {term.strip()!r} of the label selector: expected "
        "'key=value', 'key!=value', 'key in (a,b)', 'key notin (a,b)', 'key' or '!key'"
    )


def parse_label_selector(selector: str | None) -> Selector:
    if not selector:
        return Selector()
    return Selector(tuple(_label_requirement(term) for term in _split_terms(selector)))


def _field_value(obj: dict[str, Any], path: str) -> str:
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, dict):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def _field_requirement(term: str) -> Requirement:
    for operator in ("!=", "==", "="):
        if operator in term:
            path, _, value = term.partition(operator)
            path, value = path.strip(), value.strip()
            if not path:
                break
            if operator == "!=":
                return lambda obj: _field_value(obj, path) != value
            return lambda obj: _field_value(obj, path) == value
    raise bad_request(
        f"invalid field selector {term.strip()!r}: expected 'field=value' or 'field!=value'"
    )


def parse_field_selector(selector: str | None) -> Selector:
    if not selector:
        return Selector()
    return Selector(tuple(_field_requirement(term) for term in selector.split(",") if term))
