"""Property tests: random specs to every kind's parse and pure reconcile, random text and random
grammar-shaped expressions to the expression compilers. Never an exception out of a reconcile —
always a Ready condition, and a refused object names a field; the expression compilers answer a
value or their own ExpressionError (the row compiler also RowUnsupported/OffRowPath, which send
a request to the batch path), never another exception, never a hang.

Deterministic in CI (`derandomize=True`, no example database); the example counts keep the
whole module within about 20 s on two cores.
"""

from __future__ import annotations

import contextlib
import copy
import math
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.features.expression_grammar import FUNCTION_ARITY
from conveyor.features.expression_rows import compile_row_expression
from conveyor.features.expressions import ExpressionError, compile_expression
from conveyor.features.row_values import OffRowPath, RowUnsupported
from tests.unit.hostile.worlds import KINDS, example, verdict

PROFILE = settings(
    derandomize=True,
    database=None,
    deadline=2000,  # milliseconds for one example: a hang fails, a slow CI core does not
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- random specs --------------------------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["__class__", "../x", "s3://other/x", "0 0 31 2 *", "derive", "(a+)+$"])
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into `value`'s maps and lists."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


PATHS = {kind: _paths(example(kind)["spec"]) for kind in KINDS}


def _check(kind: str, body: dict[str, Any]) -> None:
    outcome = verdict(kind, body)
    assert outcome.ready in ("True", "False"), outcome
    if outcome.reason == "InvalidSpec":
        assert outcome.message, outcome
        assert not outcome.creates, outcome


@settings(PROFILE, max_examples=300)
@given(kind=st.sampled_from(KINDS), spec=JSON)
def test_a_random_spec_never_raises_out_of_a_reconcile(kind: str, spec: Any) -> None:
    body = example(kind)
    body["spec"] = spec
    _check(kind, body)


@settings(PROFILE, max_examples=1500)
@given(kind=st.sampled_from(KINDS), data=st.data())
def test_a_mutated_example_never_raises_out_of_a_reconcile(kind: str, data: Any) -> None:
    body = example(kind)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        path = data.draw(st.sampled_from(PATHS[kind]), label="path")
        node: Any = body["spec"]
        try:
            for key in path[:-1]:
                node = node[key]
            if data.draw(st.booleans(), label="delete"):
                del node[path[-1]]
            else:
                node[path[-1]] = data.draw(JSON, label="value")
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced the way there
    _check(kind, copy.deepcopy(body))


# -- random expressions --------------------------------------------------------------------------

COLUMNS = ["x", "n", "s", "ts"]
TABLE = pa.table(
    {
        "x": pa.array([1.5, None, -0.0, float("nan")]),
        "n": pa.array([3, None, -(2**63), 0], pa.int64()),
        "s": pa.array(["a", None, "", "Ü"]),
        "ts": pa.array([0, None, 10**15, -(10**12)], pa.timestamp("us", tz="UTC")),
    }
)
ROWS = TABLE.to_pylist()


def _compile_both(text: str) -> None:
    """Compile and evaluate `text` on both paths: values or the language's own errors."""
    try:
        expression = compile_expression(text, COLUMNS)
    except ExpressionError as error:
        assert str(error)
        return
    try:
        values = expression.evaluate(TABLE)
        assert len(values) == TABLE.num_rows
    except ExpressionError as error:
        assert str(error)
    try:
        row = compile_row_expression(text, TABLE.schema)
    except (ExpressionError, RowUnsupported):
        return
    for values_of_row in ROWS:
        with contextlib.suppress(OffRowPath):
            row.run(values_of_row)


ALPHABET = st.sampled_from(
    list("xnsts0123456789.+-*/%()<>=!,'\" _eE")
    + ["**", "//", " and ", " or ", "not ", " in ", "__", "\x00", "\u0455", "\uff53", "\n"]
    + [f"{name}(" for name in FUNCTION_ARITY]
)


@settings(PROFILE, max_examples=2000)
@given(st.text(max_size=60) | st.lists(ALPHABET, max_size=30).map("".join))
def test_random_text_is_an_expression_or_an_expression_error(text: str) -> None:
    _compile_both(text)


LITERALS = st.one_of(
    st.integers(min_value=-(2**66), max_value=2**66).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["1e308", "1e-320", "True", "False", "None", "'a'", "'2026-01-01'", "''"]),
)
LEAVES = st.sampled_from([*COLUMNS, "nope", "__class__"]) | LITERALS


def _expressions(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    operators = ["+", "-", "*", "/", "//", "%", "**", "<", "<=", "==", "!=", ">", ">="]
    return st.one_of(
        st.tuples(children, st.sampled_from([*operators, "and", "or", "&", "@"]), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(st.sampled_from(["-", "+", "not ", "~"]), children).map(
            lambda t: f"{t[0]}({t[1]})"
        ),
        st.tuples(
            st.sampled_from([*FUNCTION_ARITY, "eval", "getattr"]),
            st.lists(children, min_size=0, max_size=4),
        ).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
        st.tuples(children, st.lists(LITERALS, max_size=3)).map(
            lambda t: f"({t[0]} in ({', '.join(t[1])},))"
        ),
        st.tuples(children, st.integers(-5, 2000)).map(lambda t: f"round({t[0]}, {t[1]})"),
        children.map(lambda c: f"({c}).__class__"),
    )


EXPRESSIONS = st.recursive(LEAVES, _expressions, max_leaves=12)


@settings(PROFILE, max_examples=2000)
@given(EXPRESSIONS)
def test_a_grammar_shaped_expression_evaluates_or_is_refused(text: str) -> None:
    _compile_both(text)


@settings(PROFILE, max_examples=200)
@given(st.integers(min_value=1, max_value=12_000), st.sampled_from(["(", "-", "abs(", "not "]))
def test_any_nesting_is_refused_not_a_crash(depth: int, opener: str) -> None:
    closer = ")" if opener.endswith("(") else ""
    text = opener * depth + "x" + closer * depth
    _compile_both(text)
    if depth > 200:
        try:
            compile_expression(text, COLUMNS)
        except ExpressionError as error:
            assert "nest" in str(error) or "parentheses" in str(error)
        else:
            raise AssertionError(f"{depth} levels of {opener!r} compiled")


def test_the_example_paths_cover_every_kind() -> None:
    assert all(len(PATHS[kind]) >= 5 for kind in KINDS)
    assert not math.isnan(len(PATHS["FeatureSet"]))
