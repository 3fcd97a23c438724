"""The expression language's one grammar: parse, whitelist, bound, then hand each node to a target.

Both compilers of the language (expressions.py: pyarrow closures over a batch; expression_rows.py:
Python closures over one row) walk the tree through `walk()`, so what is allowed, the size
bounds and every error message are written once. A target only says how to compute what the
walker accepted.
"""

from __future__ import annotations

import ast
from typing import Any, Generic, Protocol, TypeVar

__all__ = [
    "FUNCTION_ARITY",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_ROUND_DIGITS",
    "ExpressionError",
    "Target",
    "parse",
    "walk",
]

MAX_DEPTH = 64
"""Deepest nesting of a parsed expression: compiling and evaluating recurse once per level."""
MAX_NODES = 1000
"""Most parsed nodes: every node is a pyarrow call on every batch."""
MAX_ROUND_DIGITS = 1000
"""Largest |n| of `round(x, n)`: a float64 has no digit beyond 10**±324 (a larger n overflows
or gives x), pyarrow's round does not return for some n (99999999999), and the row compiler
scales by n multiplications."""
INT64_RANGE = range(-(2**63), 2**63)
"""Integer literals are int64 in both compilers: a larger one has no arrow type."""

FUNCTION_ARITY: dict[str, tuple[int, int]] = {
    "log": (1, 1),
    "log1p": (1, 1),
    "exp": (1, 1),
    "sqrt": (1, 1),
    "abs": (1, 1),
    "round": (1, 2),
    "floor": (1, 1),
    "ceil": (1, 1),
    "min": (2, 2),
    "max": (2, 2),
    "clip": (3, 3),
    "coalesce": (2, 16),
    "is_null": (1, 1),
    "if_else": (3, 3),
    "lower": (1, 1),
    "upper": (1, 1),
    "length": (1, 1),
    "year": (1, 1),
    "month": (1, 1),
    "day": (1, 1),
    "hour": (1, 1),
    "dayofweek": (1, 1),
}
"""The functions of the language: smallest and largest number of arguments."""

BINARY_OPERATORS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
}

COMPARISONS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
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


class ExpressionError(ValueError):
    """The expression cannot be compiled or evaluated; the message names what to fix."""


N = TypeVar("N")


class Target(Protocol[N]):
    """What a compiler makes of each construct the walker accepted (N: its compiled node)."""

    def constant(self, value: Any) -> N: ...
    def column(self, name: str) -> N: ...
    def binary(self, symbol: str, left: N, right: N) -> N: ...
    def negate(self, operand: N) -> N: ...
    def invert(self, operand: N) -> N: ...
    def boolean(self, conjunction: bool, operands: list[N]) -> N: ...
    def comparison(self, symbol: str, left: N, right: N) -> N: ...
    def membership(self, left: N, values: list[Any], negate: bool) -> N: ...
    def chain(self, comparisons: list[N]) -> N: ...
    def call(self, name: str, arguments: list[N]) -> N: ...


def parse(text: str) -> ast.expr:
    """The parsed body of `text`, within the size bounds; an ExpressionError otherwise."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        where = f"position {error.offset}: " if error.offset else ""
        raise ExpressionError(f"{where}invalid syntax in {text!r}: {error.msg}") from error
    except (RecursionError, MemoryError) as error:  # the parser's own stack ran out
        raise ExpressionError(_too_deep(text)) from error
    _check_size(tree, text)
    return tree.body


def walk(text: str, columns: list[str] | None, target: Target[N]) -> tuple[N, set[str]]:
    """Compile `text` for `target`: its compiled tree and the columns it reads. Every name must
    be one of `columns` (any name when None: the grammar alone is checked)."""
    walker = _Walker(text.strip(), columns, target)
    return walker.compile(parse(text)), walker.used


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


class _Walker(Generic[N]):
    """Walks a whitelisted tree once; anything else is an ExpressionError."""

    def __init__(self, text: str, columns: list[str] | None, target: Target[N]) -> None:
        self.text = text
        self.columns = columns
        self.target = target
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

    def compile(self, node: ast.AST) -> N:
        method = getattr(self, f"compile_{type(node).__name__}", None)
        if method is None:
            raise self.forbidden(node)
        return method(node)

    def compile_Attribute(self, node: ast.Attribute) -> N:
        raise self.fail(node, f"attribute access ('.{node.attr}') is not allowed")

    def compile_Constant(self, node: ast.Constant) -> N:
        value = node.value
        if value is not None and not isinstance(value, bool | int | float | str):
            raise self.fail(node, f"literal {value!r} is not allowed")
        self.check_integer(node)
        return self.target.constant(value)

    def check_integer(self, node: ast.Constant) -> None:
        value = node.value
        if type(value) is int and value not in INT64_RANGE:
            digits = len(str(abs(value)))
            raise self.fail(
                node,
                f"integer literal of {digits} digits is outside the 64-bit range "
                f"(at most {INT64_RANGE.stop - 1}); write a float such as 1e{digits - 1}",
            )

    def check_spelling(self, node: ast.Name) -> None:
        """Python folds identifiers to NFKC (a fullwidth s, U+FF53, reads as s): a name must be
        written as it is read, so that what a person sees is the column that is used."""
        written = ast.get_source_segment(self.text, node)
        if written is not None and written != node.id:
            raise self.fail(
                node, f"name {written!r} is read as {node.id!r}; write {node.id!r} in ASCII"
            )

    def compile_Name(self, node: ast.Name) -> N:
        self.check_spelling(node)
        name = node.id
        if name.startswith("__"):
            raise self.fail(node, f"name {name!r} is not allowed")
        if self.columns is not None and name not in self.columns:
            hint = f"; {name}() is a function" if name in FUNCTION_ARITY else ""
            raise self.fail(
                node,
                f"column {name!r} is not defined (columns: {', '.join(self.columns)}){hint}",
            )
        self.used.add(name)
        return self.target.column(name)

    def compile_BinOp(self, node: ast.BinOp) -> N:
        if type(node.op) not in BINARY_OPERATORS:
            raise self.fail(
                node, f"{_CONSTRUCT_NAMES.get(type(node.op), 'operator')} is not allowed"
            )
        left, right = self.compile(node.left), self.compile(node.right)
        return self.target.binary(BINARY_OPERATORS[type(node.op)], left, right)

    def compile_UnaryOp(self, node: ast.UnaryOp) -> N:
        operand = self.compile(node.operand)
        if isinstance(node.op, ast.USub):
            return self.target.negate(operand)
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.Not):
            return self.target.invert(operand)
        raise self.fail(node, f"{_CONSTRUCT_NAMES.get(type(node.op), 'operator')} is not allowed")

    def compile_BoolOp(self, node: ast.BoolOp) -> N:
        operands = [self.compile(value) for value in node.values]
        return self.target.boolean(isinstance(node.op, ast.And), operands)

    def compile_Compare(self, node: ast.Compare) -> N:
        pairs: list[N] = []
        left = self.compile(node.left)
        for index, (operator, comparator) in enumerate(
            zip(node.ops, node.comparators, strict=True)
        ):
            if isinstance(operator, ast.In | ast.NotIn):
                if index != len(node.ops) - 1:
                    raise self.fail(node, "a comparison cannot follow 'in (...)' in a chain")
                values = self.literal_values(comparator)
                pairs.append(self.target.membership(left, values, isinstance(operator, ast.NotIn)))
                continue
            if type(operator) not in COMPARISONS:
                raise self.fail(
                    node, f"{_CONSTRUCT_NAMES.get(type(operator), 'operator')} is not allowed"
                )
            right = self.compile(comparator)
            pairs.append(self.target.comparison(COMPARISONS[type(operator)], left, right))
            left = right
        return pairs[0] if len(pairs) == 1 else self.target.chain(pairs)

    def literal_values(self, node: ast.expr) -> list[Any]:
        if not isinstance(node, ast.Tuple | ast.List):
            raise self.fail(node, "'in' needs a literal tuple or list, like x in ('a', 'b')")
        values = []
        for element in node.elts:
            if not isinstance(element, ast.Constant) or element.value is None:
                raise self.fail(element, "the values after 'in' must be number or string literals")
            self.check_integer(element)
            values.append(element.value)
        return values

    def compile_Call(self, node: ast.Call) -> N:
        if not isinstance(node.func, ast.Name):
            raise self.fail(node, "only calls of the allowed functions by name are allowed")
        self.check_spelling(node.func)
        name = node.func.id
        arity = FUNCTION_ARITY.get(name)
        if arity is None:
            raise self.fail(
                node, f"function {name!r} is not allowed (allowed: {', '.join(FUNCTION_ARITY)})"
            )
        if node.keywords:
            raise self.fail(node.keywords[0], f"{name}() takes no keyword arguments")
        low, high = arity
        if not low <= len(node.args) <= high:
            expected = str(low) if low == high else f"{low} to {high}"
            raise self.fail(node, f"{name}() takes {expected} argument(s), {len(node.args)} given")
        arguments = [self.compile(argument) for argument in node.args]
        if name == "round" and len(node.args) == 2:
            digits = node.args[1]
            if not (isinstance(digits, ast.Constant) and type(digits.value) is int):
                raise self.fail(digits, "round(x, n): n must be an integer literal")
            if abs(digits.value) > MAX_ROUND_DIGITS:
                bound = MAX_ROUND_DIGITS
                raise self.fail(digits, f"round(x, n): n must be between -{bound} and {bound}")
        return self.target.call(name, arguments)
