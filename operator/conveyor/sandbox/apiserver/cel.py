"""CEL for the sandbox API server: CRD validation rules and ValidatingAdmissionPolicy expressions.

A real server evaluates both with cel-go in Kubernetes' CEL environment. Here cel-python (`celpy`)
parses and evaluates the same language, and this module adds what Kubernetes' environment has
and celpy lacks, where rules commonly rely on it:

- values typed by the schema when one is known (`to_cel`): a `type: number` field is a double
  even when a client wrote `1`, as on a real server;
- cel-go's runtime equality: numbers compare across int and double (`1 == 1.0`), lists and maps
  deeply, values of different types are unequal instead of an error; ordering across int/double;
- Kubernetes' string library (`charAt`, `indexOf`, `lastIndexOf`, `lowerAscii`, `upperAscii`,
  `replace`, `split`, `substring`, `trim`, `join`), list library (`isSorted`, `sum`, `min`,
  `max`, `indexOf`, `lastIndexOf`) and regex library (`find`, `findAll`);
- cel-go's wording of errors (`no such key: x`, `no such overload`, `division by zero`), and
  syntax errors and calls of unknown functions found when an expression is compiled.

Not supported (an expression using them fails with a message saying so): optional syntax
(`a.?b`, `orValue`), `format`, the `url`, `quantity`, `ip`, `cidr`, `sets` and `authorizer`
libraries. There is no static type checking and no cost budget.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import celpy
import lark
import re2
from celpy import celtypes
from celpy.evaluation import CELEvalError, base_functions

__all__ = [
    "CelError",
    "Expression",
    "LazyMap",
    "compile_expression",
    "evaluate",
    "evaluate_bool",
    "to_cel",
]

Value = Any  # a celpy value: celtypes.*, None, or a CELEvalError carried as a value


class CelError(Exception):
    """An expression that cannot be compiled or evaluated; the message reads as cel-go's."""


_MACROS = frozenset({"has", "dyn", "all", "exists", "exists_one", "map", "filter", "reduce"})
_NUMBERS = (celtypes.IntType, celtypes.UintType, celtypes.DoubleType)
_INT64 = (-(2**63), 2**63 - 1)


# --- equality and ordering as cel-go does them at run time ---------------------------------


def _equal(left: Value, right: Value) -> bool:
    """cel-go's heterogeneous equality: no error across types, numbers by value, deep."""
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, celtypes.BoolType) or isinstance(right, celtypes.BoolType):
        both = isinstance(left, celtypes.BoolType) and isinstance(right, celtypes.BoolType)
        return both and bool(left) == bool(right)
    if isinstance(left, _NUMBERS) and isinstance(right, _NUMBERS):
        if isinstance(left, celtypes.DoubleType) or isinstance(right, celtypes.DoubleType):
            return float(left) == float(right)
        return int(left) == int(right)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_equal(v, right[k]) for k, v in left.items())
    if isinstance(left, str) and isinstance(right, str):
        return str(left) == str(right)
    if type(left) is not type(right):
        return False
    return bool(left == right)


def _propagating(function: Callable[..., Value]) -> Callable[..., Value]:
    """An error operand is the result, as in celpy's own operators."""

    @functools.wraps(function)
    def wrapper(*args: Value) -> Value:
        for arg in args:
            if isinstance(arg, CELEvalError):
                return arg
        return function(*args)

    return wrapper


@_propagating
def _eq(left: Value, right: Value) -> Value:
    return celtypes.BoolType(_equal(left, right))


@_propagating
def _ne(left: Value, right: Value) -> Value:
    return celtypes.BoolType(not _equal(left, right))


@_propagating
def _in(item: Value, container: Value) -> Value:
    if isinstance(container, dict | list):
        return celtypes.BoolType(any(_equal(item, member) for member in container))
    return CELEvalError("no such overload", TypeError, (f"{type(container).__name__}",))


def _ordering(name: str) -> Callable[[Value, Value], Value]:
    fallback = base_functions[name]
    compare = {
        "_<_": lambda a, b: a < b,
        "_<=_": lambda a, b: a <= b,
        "_>_": lambda a, b: a > b,
        "_>=_": lambda a, b: a >= b,
    }[name]

    @_propagating
    def order(left: Value, right: Value) -> Value:
        numeric = isinstance(left, _NUMBERS) and isinstance(right, _NUMBERS)
        bools = isinstance(left, celtypes.BoolType) or isinstance(right, celtypes.BoolType)
        if numeric and not bools:
            return celtypes.BoolType(compare(float(left), float(right)))
        return fallback(left, right)

    return order


# --- Kubernetes' libraries -------------------------------------------------------------------


def _library(function: Callable[..., Value]) -> Callable[..., Value]:
    """A library function: wrong argument types are `no such overload`, not a crash."""

    @_propagating
    @functools.wraps(function)
    def wrapper(*args: Value) -> Value:
        try:
            return function(*args)
        except CelError as error:
            return CELEvalError(str(error), ValueError, ())
        except (TypeError, AttributeError, ValueError):
            kinds = ", ".join(type(arg).__name__ for arg in args)
            return CELEvalError("no such overload", TypeError, (f"{function.__name__}({kinds})",))

    return wrapper


def _text(value: Value) -> str:
    if not isinstance(value, celtypes.StringType):
        raise TypeError("not a string")
    return str(value)


def _index(value: Value) -> int:
    if not isinstance(value, celtypes.IntType) or isinstance(value, celtypes.BoolType):
        raise TypeError("not an int")
    return int(value)


def _char_at(text: Value, index: Value) -> Value:
    string, position = _text(text), _index(index)
    if not 0 <= position <= len(string):
        raise CelError(f"index out of range: {position}")
    return celtypes.StringType(string[position : position + 1])


def _index_of(target: Value, item: Value, start: Value = None) -> Value:
    if isinstance(target, list):
        found = [i for i, member in enumerate(target) if _equal(member, item)]
        return celtypes.IntType(found[0] if found else -1)
    string, offset = _text(target), 0 if start is None else _index(start)
    if not 0 <= offset <= len(string):
        raise CelError(f"index out of range: {offset}")
    return celtypes.IntType(string.find(_text(item), offset))


def _last_index_of(target: Value, item: Value, end: Value = None) -> Value:
    if isinstance(target, list):
        found = [i for i, member in enumerate(target) if _equal(member, item)]
        return celtypes.IntType(found[-1] if found else -1)
    string = _text(target)
    limit = len(string) if end is None else _index(end)
    if not 0 <= limit <= len(string):
        raise CelError(f"index out of range: {limit}")
    return celtypes.IntType(string.rfind(_text(item), 0, limit + len(_text(item))))


def _ascii(convert: Callable[[str], str]) -> Callable[[Value], Value]:
    def change(text: Value) -> Value:
        return celtypes.StringType("".join(c if ord(c) > 127 else convert(c) for c in _text(text)))

    return change


def _replace(text: Value, old: Value, new: Value, count: Value = None) -> Value:
    limit = -1 if count is None else _index(count)
    return celtypes.StringType(_text(text).replace(_text(old), _text(new), limit))


def _split(text: Value, separator: Value, count: Value = None) -> Value:
    limit = -1 if count is None else _index(count)
    if limit == 0:
        return celtypes.ListType([])
    parts = _text(text).split(_text(separator), limit - 1 if limit > 0 else -1)
    return celtypes.ListType([celtypes.StringType(part) for part in parts])


def _substring(text: Value, start: Value, end: Value = None) -> Value:
    string = _text(text)
    first, last = _index(start), len(string) if end is None else _index(end)
    if not 0 <= first <= last <= len(string):
        raise CelError(f"index out of range: {first}, {last}")
    return celtypes.StringType(string[first:last])


def _trim(text: Value) -> Value:
    return celtypes.StringType(_text(text).strip())


def _join(items: Value, separator: Value = None) -> Value:
    glue = "" if separator is None else _text(separator)
    return celtypes.StringType(glue.join(_text(item) for item in items))


def _is_sorted(items: Value) -> Value:
    in_order = _ordering("_<=_")
    for left, right in itertools.pairwise(items):
        result = in_order(left, right)
        if not isinstance(result, celtypes.BoolType):
            return result
        if not result:
            return celtypes.BoolType(False)
    return celtypes.BoolType(True)


def _sum(items: Value) -> Value:
    if any(isinstance(item, celtypes.DoubleType) for item in items):
        return celtypes.DoubleType(math.fsum(float(item) for item in items))
    return celtypes.IntType(sum(int(item) for item in items))


def _extreme(pick: Callable[..., Any]) -> Callable[[Value], Value]:
    def extreme(items: Value) -> Value:
        if not items:
            raise CelError("min/max of an empty list")
        return pick(items, key=lambda item: float(item) if isinstance(item, _NUMBERS) else item)

    return extreme


def _find(text: Value, pattern: Value) -> Value:
    match = re2.search(_text(pattern), _text(text))
    return celtypes.StringType(match.group(0) if match else "")


def _find_all(text: Value, pattern: Value, count: Value = None) -> Value:
    found = [m.group(0) for m in re2.finditer(_text(pattern), _text(text))]
    limit = None if count is None or _index(count) < 0 else _index(count)
    return celtypes.ListType([celtypes.StringType(item) for item in found[:limit]])


_FUNCTIONS: dict[str, Callable[..., Value]] = {
    "_==_": _eq,
    "_!=_": _ne,
    "_in_": _in,
    **{name: _ordering(name) for name in ("_<_", "_<=_", "_>_", "_>=_")},
    "charAt": _library(_char_at),
    "indexOf": _library(_index_of),
    "lastIndexOf": _library(_last_index_of),
    "lowerAscii": _library(_ascii(str.lower)),
    "upperAscii": _library(_ascii(str.upper)),
    "replace": _library(_replace),
    "split": _library(_split),
    "substring": _library(_substring),
    "trim": _library(_trim),
    "join": _library(_join),
    "isSorted": _library(_is_sorted),
    "sum": _library(_sum),
    "min": _library(_extreme(min)),
    "max": _library(_extreme(max)),
    "find": _library(_find),
    "findAll": _library(_find_all),
}
_KNOWN_FUNCTIONS = frozenset(_FUNCTIONS) | frozenset(base_functions) | _MACROS


# --- compiling and evaluating ----------------------------------------------------------------


@dataclass(frozen=True)
class Expression:
    """A compiled expression; `names` are the identifiers it mentions (variables and locals)."""

    source: str
    runner: celpy.Runner
    names: frozenset[str]


@functools.cache
def _environment() -> celpy.Environment:
    return celpy.Environment()  # builds the parser: ~70 ms, so once


@functools.lru_cache(maxsize=2048)
def compile_expression(source: str) -> Expression:
    """The compiled expression, or CelError worded as cel-go's compile errors."""
    environment = _environment()
    try:
        tree = environment.compile(source)
    except celpy.CELParseError as error:
        line, column = error.line or 1, error.column or 1
        text = source.splitlines()[line - 1] if source.splitlines() else ""
        raise CelError(
            f"ERROR: <input>:{line}:{column}: Syntax error: unexpected input\n"
            f" | {text}\n | {' ' * (column - 1)}^"
        ) from None
    names: set[str] = set()
    for node in tree.iter_subtrees():
        call = _called_function(node)
        if call is not None and call.value not in _KNOWN_FUNCTIONS:
            raise CelError(
                f"ERROR: <input>:{call.line}:{call.column}: undeclared reference to "
                f"'{call.value}' (in container '')"
            )
        if node.data == "ident" and node.children:
            names.add(str(node.children[0]))
    return Expression(source, environment.program(tree, functions=_FUNCTIONS), frozenset(names))


def _called_function(node: lark.Tree) -> lark.Token | None:
    if node.data == "ident_arg" and node.children:
        token = node.children[0]
    elif node.data == "member_dot_arg" and len(node.children) > 1:
        token = node.children[1]
    else:
        return None
    return token if isinstance(token, lark.Token) else None


def evaluate(expression: Expression, variables: Mapping[str, Value]) -> Value:
    """The expression's value, or CelError with cel-go's wording of the failure."""
    try:
        result = expression.runner.evaluate(dict(variables))
    except CELEvalError as error:
        raise CelError(describe(error)) from None
    except (RecursionError, TypeError, ValueError, KeyError, AttributeError) as error:
        raise CelError(f"evaluation failed: {error}") from None
    if isinstance(result, CELEvalError):
        raise CelError(describe(result))
    return result


def evaluate_bool(expression: Expression, variables: Mapping[str, Value]) -> bool:
    """True or False; anything else is an error, as a real server's type check would make it."""
    result = evaluate(expression, variables)
    if not isinstance(result, celtypes.BoolType):
        raise CelError(f"expression must evaluate to a bool, not {_type_name(result)}")
    return bool(result)


def _type_name(value: Value) -> str:
    for kind, name in (
        (type(None), "null"),
        (celtypes.BoolType, "bool"),
        (celtypes.IntType, "int"),
        (celtypes.UintType, "uint"),
        (celtypes.DoubleType, "double"),
        (celtypes.StringType, "string"),
        (celtypes.ListType, "list"),
        (celtypes.MapType, "map"),
    ):
        if isinstance(value, kind):
            return name
    return type(value).__name__


_UNDECLARED = re.compile(r"undeclared reference to '([^']*)'")
_NO_MEMBER = re.compile(r"no such member in mapping: '([^']*)'")
_NO_SELECTION = re.compile(r"with type: '<class '([^']*)'>' does not support field selection")


def describe(error: CELEvalError) -> str:
    """cel-go's words for an evaluation error (celpy appends its whole activation to some)."""
    text = str(error.args[0]) if error.args else "evaluation error"
    details = error.args[2] if len(error.args) > 2 and isinstance(error.args[2], tuple) else ()
    if match := _NO_MEMBER.match(text):
        return f"no such key: {match.group(1)}"
    if text == "no such key" and details:
        return f"no such key: {details[0]}"
    if match := _UNDECLARED.search(text):
        return f"undeclared reference to '{match.group(1)}'"
    if text.startswith("found no matching overload") or text == "no such overload":
        return "no such overload" + (f": {details[0]}" if details else "")
    if "divide by zero" in text:
        return "division by zero"
    if "overflow" in text:
        return "integer overflow"
    if match := _NO_SELECTION.search(text):
        kind = match.group(1).rsplit(".", 1)[-1].removesuffix("Type").lower()
        return f"type '{'null' if kind == 'none' else kind}' does not support field selection"
    return text


# --- values ----------------------------------------------------------------------------------


def to_cel(value: Any, schema: Mapping[str, Any] | None = None) -> Value:
    """A JSON value as CEL sees it; with a schema, numbers take the schema's type."""
    declared = (schema or {}).get("type")
    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int | float):
        return _number(value, declared)
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, list):
        items = (schema or {}).get("items")
        return celtypes.ListType([to_cel(item, _sub(items)) for item in value])
    if isinstance(value, dict):
        return celtypes.MapType(
            {celtypes.StringType(k): to_cel(v, _property(schema, k)) for k, v in value.items()}
        )
    raise CelError(f"cannot convert {type(value).__name__} to a CEL value")


def _number(value: float, declared: Any) -> Value:
    if declared == "number" or (isinstance(value, float) and declared != "integer"):
        return celtypes.DoubleType(float(value))
    if isinstance(value, float) and not value.is_integer():
        return celtypes.DoubleType(value)
    number = int(value)
    if not _INT64[0] <= number <= _INT64[1]:
        return celtypes.DoubleType(float(value))
    return celtypes.IntType(number)


def _sub(schema: Any) -> Mapping[str, Any] | None:
    return schema if isinstance(schema, dict) else None


def _property(schema: Mapping[str, Any] | None, key: str) -> Mapping[str, Any] | None:
    if not schema:
        return None
    properties = schema.get("properties") or {}
    if key in properties:
        return _sub(properties[key])
    return _sub(schema.get("additionalProperties"))


class LazyMap(celtypes.MapType):
    """A map whose values are computed when first read (ValidatingAdmissionPolicy `variables`):
    an error in a variable matters only to the expressions that use it."""

    def __init__(self, factories: Mapping[str, Callable[[], Value]]) -> None:
        super().__init__({celtypes.StringType(name): None for name in factories})
        self._factories = dict(factories)
        self._values: dict[str, Value] = {}
        self._computing: set[str] = set()

    def __getitem__(self, key: Any) -> Value:
        name = str(key)
        if name not in self._factories:
            return super().__getitem__(key)
        if name in self._computing:
            return CELEvalError(f"variable {name!r} refers to itself", ValueError, ())
        if name not in self._values:
            self._computing.add(name)
            try:
                self._values[name] = self._factories[name]()
            except CelError as error:
                self._values[name] = CELEvalError(str(error), ValueError, ())
            finally:
                self._computing.discard(name)
        return self._values[name]

    def get(self, key: Any, default: Any = None) -> Value:
        return self[key] if str(key) in self._factories else default

    def values(self) -> Iterator[Value]:  # type: ignore[override]
        return (self[name] for name in self._factories)
