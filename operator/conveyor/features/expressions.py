"""A small, safe expression language over the columns of a record batch.

Used by the `derive` and `filter` transforms. The text is parsed with `ast.parse(text, mode="eval")`
and only a whitelist of node types is accepted; the tree is then compiled into a tree of closures
over `pyarrow.compute`, evaluated a whole batch at a time. User text is never handed to `eval`,
`exec` or `compile`.

The language:

- literals: numbers, strings, True, False, None; column names; parentheses;
- arithmetic `+ - * / // % **`, unary `-` and `+`;
- comparisons `== != < <= > >=`, chained (`0 < x <= 5`), and `x in ("a", "b")` / `not in`
  against a literal tuple or list;
- logic `and`, `or`, `not` (SQL's three-valued logic: `null and False` is False);
- functions: see FUNCTIONS.

Semantics that differ from Python, chosen so that one bad row never fails a whole batch:

- nulls propagate: any operation on a null gives null (except `and`/`or`, `coalesce`, `is_null`);
- division, floor division and modulo by zero give null;
- `/` and `**` always give float; `log`, `log1p` and `sqrt` outside their domain give null;
- `floor`, `ceil` and `round` keep the float type; `round(x, n)` rounds half to even on the scaled
  value (`round(2.675, 2)` is 2.68 here, 2.67 in Python);
- `%` and `//` on integers go through float64: exact up to 2**53;
- a string literal compared with a timestamp column is read as an ISO-8601 timestamp (naive = UTC).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_NODES",
    "Expression",
    "ExpressionError",
    "compile_expression",
]

# A compiled node: batch -> array (or chunked array) of the batch's length, or a scalar.
Value: TypeAlias = pa.Array | pa.ChunkedArray | pa.Scalar
Evaluator: TypeAlias = Callable[[pa.Table], Value]

TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")

MAX_DEPTH = 64
"""Deepest nesting of a parsed expression: compiling and evaluating recurse once per level."""
MAX_NODES = 1000
"""Most parsed nodes: every node is a pyarrow call on every batch."""


class ExpressionError(ValueError):
    """The expression cannot be compiled or evaluated; the message names what to fix."""


@dataclass(frozen=True)
class _Function:
    arity: tuple[int, int]  # smallest and largest number of arguments
    build: Callable[[list[Value]], Value]


def _float(value: Value) -> Value:
    return pc.cast(value, pa.float64())


def _null_where(condition: Value, value: Value) -> Value:
    """`value`, with null where `condition` is true (and where `condition` is null)."""
    return pc.if_else(condition, pa.scalar(None, _value_type(value)), value)


def _value_type(value: Value) -> pa.DataType:
    return value.type


def _in_domain(function: Callable[[Value], Value], lowest: float, inclusive: bool):
    def build(args: list[Value]) -> Value:
        x = _float(args[0])
        outside = pc.less(x, lowest) if inclusive else pc.less_equal(x, lowest)
        # Masking the argument first keeps arrow from computing nan for a value that becomes null.
        return function(_null_where(outside, x))

    return build


def _round(args: list[Value]) -> Value:
    digits = 0
    if len(args) == 2:
        if not isinstance(args[1], pa.Scalar) or not pa.types.is_integer(args[1].type):
            raise ExpressionError("round(x, n): n must be an integer literal")
        digits = args[1].as_py()
    return pc.round(_float(args[0]), digits, round_mode="half_to_even")


def _clip(args: list[Value]) -> Value:
    x, low, high = args
    capped = pc.min_element_wise(x, high, skip_nulls=False)
    return pc.max_element_wise(capped, low, skip_nulls=False)


FUNCTIONS: dict[str, _Function] = {
    "log": _Function((1, 1), _in_domain(pc.ln, 0.0, inclusive=False)),
    "log1p": _Function((1, 1), _in_domain(pc.log1p, -1.0, inclusive=False)),
    "exp": _Function((1, 1), lambda a: pc.exp(_float(a[0]))),
    "sqrt": _Function((1, 1), _in_domain(pc.sqrt, 0.0, inclusive=True)),
    "abs": _Function((1, 1), lambda a: pc.abs(a[0])),
    "round": _Function((1, 2), _round),
    "floor": _Function((1, 1), lambda a: pc.floor(_float(a[0]))),
    "ceil": _Function((1, 1), lambda a: pc.ceil(_float(a[0]))),
    "min": _Function((2, 2), lambda a: pc.min_element_wise(a[0], a[1], skip_nulls=False)),
    "max": _Function((2, 2), lambda a: pc.max_element_wise(a[0], a[1], skip_nulls=False)),
    "clip": _Function((3, 3), _clip),
    "coalesce": _Function((2, 16), lambda a: pc.coalesce(*a)),
    "is_null": _Function((1, 1), lambda a: pc.is_null(a[0], nan_is_null=True)),
    "if_else": _Function((3, 3), lambda a: pc.if_else(a[0], a[1], a[2])),
    "lower": _Function((1, 1), lambda a: pc.utf8_lower(a[0])),
    "upper": _Function((1, 1), lambda a: pc.utf8_upper(a[0])),
    "length": _Function((1, 1), lambda a: pc.utf8_length(a[0])),
    "year": _Function((1, 1), lambda a: pc.year(a[0])),
    "month": _Function((1, 1), lambda a: pc.month(a[0])),
    "day": _Function((1, 1), lambda a: pc.day(a[0])),
    "hour": _Function((1, 1), lambda a: pc.hour(a[0])),
    "dayofweek": _Function((1, 1), lambda a: pc.day_of_week(a[0])),  # Monday = 0
}


def _divide(a: Value, b: Value) -> Value:
    divisor = _float(b)
    return pc.divide(_float(a), _null_where(pc.equal(divisor, 0.0), divisor))


def _floor_divide(a: Value, b: Value) -> Value:
    quotient = pc.floor(_divide(a, b))
    if _is_integer(a) and _is_integer(b):
        return pc.cast(quotient, pa.int64())
    return quotient


def _modulo(a: Value, b: Value) -> Value:
    # Python's sign convention: the result has the sign of the divisor.
    remainder = pc.subtract(_float(a), pc.multiply(_float(b), pc.floor(_divide(a, b))))
    if _is_integer(a) and _is_integer(b):
        return pc.cast(remainder, pa.int64())
    return remainder


def _is_integer(value: Value) -> bool:
    return pa.types.is_integer(value.type)


_BINARY_OPERATORS: dict[type[ast.operator], tuple[str, Callable[[Value, Value], Value]]] = {
    ast.Add: ("+", pc.add_checked),
    ast.Sub: ("-", pc.subtract_checked),
    ast.Mult: ("*", pc.multiply_checked),
    ast.Div: ("/", _divide),
    ast.FloorDiv: ("//", _floor_divide),
    ast.Mod: ("%", _modulo),
    ast.Pow: ("**", lambda a, b: pc.power(_float(a), _float(b))),
}

_COMPARISONS: dict[type[ast.cmpop], Callable[[Value, Value], Value]] = {
    ast.Eq: pc.equal,
    ast.NotEq: pc.not_equal,
    ast.Lt: pc.less,
    ast.LtE: pc.less_equal,
    ast.Gt: pc.greater,
    ast.GtE: pc.greater_equal,
}

# Names for the constructs people most often try, so the error says what was written.
_CONSTRUCT_NAMES: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscript",
    ast.Lambda: "lambda",
    ast.ListComp: "list comprehension",
    ast.SetComp: "set comprehension",
    ast.DictComp: "dict comprehension",
    ast.GeneratorExp: "generator expression",
    ast.Dict: "dict literal",
    ast.Set: "set literal",
    ast.List: "list literal (only allowed after 'in')",
    ast.Tuple: "tuple (only allowed after 'in')",
    ast.Starred: "starred argument",
    ast.JoinedStr: "f-string",
    ast.NamedExpr: "assignment expression",
    ast.IfExp: "conditional expression (use if_else(cond, a, b))",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.BitAnd: "bitwise operator",
    ast.BitOr: "bitwise operator",
    ast.BitXor: "bitwise operator",
    ast.LShift: "bitwise operator",
    ast.RShift: "bitwise operator",
    ast.MatMult: "matrix multiplication",
    ast.Invert: "bitwise operator",
    ast.Is: "'is' comparison (use is_null(x))",
    ast.IsNot: "'is not' comparison (use not is_null(x))",
}


@dataclass
class Expression:
    """A compiled expression; evaluate it on any batch that has its columns."""

    text: str
    columns: frozenset[str]
    _evaluator: Evaluator = field(repr=False, compare=False)

    def evaluate(self, batch: pa.RecordBatch | pa.Table) -> pa.Array:
        """The expression's value for each row of `batch` (same length, nulls propagated)."""
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        missing = sorted(self.columns - set(table.column_names))
        if missing:
            raise ExpressionError(
                f"expression {self.text!r} needs column(s) {', '.join(missing)}, "
                f"which the batch does not have (it has: {', '.join(table.column_names)})"
            )
        try:
            value = self._evaluator(table)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
            raise ExpressionError(
                f"expression {self.text!r} cannot be evaluated: {error}"
            ) from error
        return _as_array(value, table.num_rows)


def _as_array(value: Value, rows: int) -> pa.Array:
    if isinstance(value, pa.ChunkedArray):
        if value.num_chunks == 0:
            return pa.array([], type=value.type)
        return value.combine_chunks()
    if isinstance(value, pa.Scalar):
        if value.type == pa.null():
            return pa.nulls(rows)
        return pa.repeat(value, rows)
    return value


def compile_expression(text: str, columns: Iterable[str] | None) -> Expression:
    """Compile `text`; every name must be one of `columns` (any name when None: the grammar
    alone is checked), every function one of FUNCTIONS."""
    known = None if columns is None else list(columns)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        where = f"position {error.offset}: " if error.offset else ""
        raise ExpressionError(f"{where}invalid syntax in {text!r}: {error.msg}") from error
    except (RecursionError, MemoryError) as error:  # the parser's own stack ran out
        raise ExpressionError(_too_deep(text)) from error
    _check_size(tree, text)
    compiler = _Compiler(text.strip(), known)
    evaluator = compiler.compile(tree.body)
    return Expression(text=text, columns=frozenset(compiler.used), _evaluator=evaluator)


def _check_size(tree: ast.AST, text: str) -> None:
    """Refuse a tree deeper than MAX_DEPTH or larger than MAX_NODES, walking it without
    recursion (the compiler that follows recurses once per level)."""
    nodes, stack = 0, [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise ExpressionError(_too_deep(text))
        if nodes > MAX_NODES:
            raise ExpressionError(
                f"expression {_excerpt(text)} has more than {MAX_NODES} parts; "
                "split it into several derive steps"
            )
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _too_deep(text: str) -> str:
    return (
        f"expression {_excerpt(text)} nests more than {MAX_DEPTH} levels deep; "
        "split it into several derive steps"
    )


def _excerpt(text: str, limit: int = 60) -> str:
    text = text.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


class _Compiler:
    """Walks a whitelisted tree once and returns closures; anything else is an ExpressionError."""

    def __init__(self, text: str, columns: list[str] | None) -> None:
        self.text = text
        self.columns = columns
        self.used: set[str] = set()

    def fail(self, node: ast.AST, message: str) -> ExpressionError:
        return ExpressionError(f"position {self.position(node)}: {message} in {self.text!r}")

    def position(self, node: ast.AST) -> int:
        """1-based character position of `node` in the text (ast offsets count UTF-8 bytes)."""
        lines = self.text.splitlines(keepends=True)
        line = getattr(node, "lineno", 1)
        offset = getattr(node, "col_offset", 0)
        before = "".join(lines[: line - 1])
        column = len(lines[line - 1].encode()[:offset].decode(errors="ignore")) if lines else 0
        return len(before) + column + 1

    def forbidden(self, node: ast.AST) -> ExpressionError:
        construct = _CONSTRUCT_NAMES.get(type(node), type(node).__name__)
        return self.fail(node, f"{construct} is not allowed")

    def compile(self, node: ast.AST) -> Evaluator:
        method = getattr(self, f"compile_{type(node).__name__}", None)
        if method is None:
            raise self.forbidden(node)
        return method(node)

    def compile_Attribute(self, node: ast.Attribute) -> Evaluator:
        raise self.fail(node, f"attribute access ('.{node.attr}') is not allowed")

    def compile_Constant(self, node: ast.Constant) -> Evaluator:
        value = node.value
        if value is not None and not isinstance(value, bool | int | float | str):
            raise self.fail(node, f"literal {value!r} is not allowed")
        scalar = pa.scalar(value)
        return lambda table: scalar

    def compile_Name(self, node: ast.Name) -> Evaluator:
        name = node.id
        if name.startswith("__"):
            raise self.fail(node, f"name {name!r} is not allowed")
        if self.columns is not None and name not in self.columns:
            hint = f"; {name}() is a function" if name in FUNCTIONS else ""
            raise self.fail(
                node,
                f"column {name!r} is not defined (columns: {', '.join(self.columns)}){hint}",
            )
        self.used.add(name)
        return lambda table: table.column(name)

    def compile_BinOp(self, node: ast.BinOp) -> Evaluator:
        if type(node.op) not in _BINARY_OPERATORS:
            raise self.fail(
                node, f"{_CONSTRUCT_NAMES.get(type(node.op), 'operator')} is not allowed"
            )
        _, operation = _BINARY_OPERATORS[type(node.op)]
        left, right = self.compile(node.left), self.compile(node.right)
        return lambda table: operation(left(table), right(table))

    def compile_UnaryOp(self, node: ast.UnaryOp) -> Evaluator:
        operand = self.compile(node.operand)
        if isinstance(node.op, ast.USub):
            return lambda table: pc.negate_checked(operand(table))
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.Not):
            return lambda table: pc.invert(operand(table))
        raise self.fail(node, f"{_CONSTRUCT_NAMES.get(type(node.op), 'operator')} is not allowed")

    def compile_BoolOp(self, node: ast.BoolOp) -> Evaluator:
        combine = pc.and_kleene if isinstance(node.op, ast.And) else pc.or_kleene
        operands = [self.compile(value) for value in node.values]

        def evaluate(table: pa.Table) -> Value:
            result = operands[0](table)
            for operand in operands[1:]:
                result = combine(result, operand(table))
            return result

        return evaluate

    def compile_Compare(self, node: ast.Compare) -> Evaluator:
        pairs: list[Evaluator] = []
        left = self.compile(node.left)
        for index, (operator, comparator) in enumerate(
            zip(node.ops, node.comparators, strict=True)
        ):
            if isinstance(operator, ast.In | ast.NotIn):
                if index != len(node.ops) - 1:
                    raise self.fail(node, "a comparison cannot follow 'in (...)' in a chain")
                pairs.append(self.membership(left, operator, comparator))
                continue
            if type(operator) not in _COMPARISONS:
                raise self.fail(
                    node, f"{_CONSTRUCT_NAMES.get(type(operator), 'operator')} is not allowed"
                )
            right = self.compile(comparator)
            pairs.append(_comparison(_COMPARISONS[type(operator)], left, right))
            left = right

        def evaluate(table: pa.Table) -> Value:
            result = pairs[0](table)
            for pair in pairs[1:]:
                result = pc.and_kleene(result, pair(table))
            return result

        return evaluate

    def membership(self, left: Evaluator, operator: ast.cmpop, node: ast.expr) -> Evaluator:
        if not isinstance(node, ast.Tuple | ast.List):
            raise self.fail(node, "'in' needs a literal tuple or list, like x in ('a', 'b')")
        values = []
        for element in node.elts:
            if not isinstance(element, ast.Constant) or element.value is None:
                raise self.fail(element, "the values after 'in' must be number or string literals")
            values.append(element.value)
        negate = isinstance(operator, ast.NotIn)

        def evaluate(table: pa.Table) -> Value:
            value = left(table)
            value_set = pa.array(values, type=value.type) if values else pa.array([], value.type)
            found = pc.is_in(value, value_set=value_set)
            # is_in says False for null; keep null as null like every other comparison.
            found = _null_where(pc.is_null(value), found)
            return pc.invert(found) if negate else found

        return evaluate

    def compile_Call(self, node: ast.Call) -> Evaluator:
        if not isinstance(node.func, ast.Name):
            raise self.fail(node, "only calls of the allowed functions by name are allowed")
        name = node.func.id
        function = FUNCTIONS.get(name)
        if function is None:
            raise self.fail(
                node, f"function {name!r} is not allowed (allowed: {', '.join(FUNCTIONS)})"
            )
        if node.keywords:
            raise self.fail(node.keywords[0], f"{name}() takes no keyword arguments")
        low, high = function.arity
        if not low <= len(node.args) <= high:
            expected = str(low) if low == high else f"{low} to {high}"
            raise self.fail(node, f"{name}() takes {expected} argument(s), {len(node.args)} given")
        arguments = [self.compile(argument) for argument in node.args]
        build = function.build
        if name == "round" and len(node.args) == 2:
            _check_round_digits(self, node.args[1])
        return lambda table: build([argument(table) for argument in arguments])


def _check_round_digits(compiler: _Compiler, node: ast.expr) -> None:
    if not (isinstance(node, ast.Constant) and type(node.value) is int):
        raise compiler.fail(node, "round(x, n): n must be an integer literal")


def _comparison(
    compare: Callable[[Value, Value], Value], left: Evaluator, right: Evaluator
) -> Evaluator:
    def evaluate(table: pa.Table) -> Value:
        a, b = _align_timestamps(left(table), right(table))
        return compare(a, b)

    return evaluate


def _align_timestamps(a: Value, b: Value) -> tuple[Value, Value]:
    """A string literal compared with a timestamp is read as a timestamp (naive = UTC)."""
    if pa.types.is_timestamp(a.type) and isinstance(b, pa.Scalar) and pa.types.is_string(b.type):
        return a, _timestamp_literal(b)
    if pa.types.is_timestamp(b.type) and isinstance(a, pa.Scalar) and pa.types.is_string(a.type):
        return _timestamp_literal(a), b
    return a, b


def _timestamp_literal(value: pa.Scalar) -> pa.Scalar:
    text = value.as_py()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as error:
        raise ExpressionError(f"{text!r} is not an ISO-8601 timestamp") from error
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return pa.scalar(parsed, type=TIMESTAMP_TYPE)
