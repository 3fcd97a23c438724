"""CEL as Kubernetes' environment evaluates it: typed values, equality, libraries, errors."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.sandbox.apiserver.cel import (
    CelError,
    LazyMap,
    compile_expression,
    evaluate,
    evaluate_bool,
    to_cel,
)


def run(source: str, **variables: Any) -> Any:
    return evaluate(compile_expression(source), {k: to_cel(v) for k, v in variables.items()})


def failure(source: str, **variables: Any) -> str:
    with pytest.raises(CelError) as raised:
        run(source, **variables)
    return str(raised.value)


@pytest.mark.parametrize(
    "source",
    [
        "1 == 1.0",
        "[1, 2.5] == [1.0, 2.5]",
        "{'a': {'b': 1}} == {'a': {'b': 1.0}}",
        "'x' != 1",
        "1 < 2.5 && 3.0 >= 3",
        "null == null",
        "2.0 in [1, 2]",
    ],
)
def test_equality_and_ordering_follow_cel_go_at_run_time(source: str) -> None:
    assert run(source) is not None and bool(run(source)) is True


def test_schema_types_numbers_as_a_real_server_does() -> None:
    schema = {"type": "object", "additionalProperties": {"type": "number"}}
    assert type(to_cel({"a": 1}, schema)["a"]).__name__ == "DoubleType"
    assert type(to_cel({"a": 1})["a"]).__name__ == "IntType"
    assert type(to_cel(2.0, {"type": "integer"})).__name__ == "IntType"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("'Hello World'.lowerAscii()", "hello world"),
        ("'a,b,c'.split(',')", ["a", "b", "c"]),
        ("['a', 'b'].join('-')", "a-b"),
        ("'abc'.charAt(1) + 'abcd'.substring(2) + ' x '.trim()", "bcdx"),
        ("'banana'.indexOf('an') + 'banana'.lastIndexOf('an')", 4),
        ("'a-b'.replace('-', '+')", "a+b"),
        ("[3, 1].isSorted() || [1, 2, 2].isSorted()", True),
        ("[1, 2.5].sum() + [4, 2].max()", 7.5),
        ("'v12 v3'.findAll('[0-9]+')", ["12", "3"]),
        ("{'a': 1, 'b': 2}.filter(k, k != 'a')", ["b"]),
    ],
)
def test_kubernetes_libraries(source: str, expected: Any) -> None:
    assert run(source) == expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("object.spec.missing", "no such key: missing"),
        ("object.spec['missing']", "no such key: missing"),
        ("1 / 0", "division by zero"),
        ("'a' + 1", "no such overload"),
        ("nobody", "undeclared reference to 'nobody'"),
    ],
)
def test_evaluation_errors_read_as_cel_go(source: str, message: str) -> None:
    assert failure(source, object={"spec": {}}).startswith(message)


def test_syntax_errors_and_unknown_functions_fail_at_compile_time() -> None:
    with pytest.raises(CelError, match=r"^ERROR: <input>:1:\d+: Syntax error"):
        compile_expression("object.spec ==")
    with pytest.raises(CelError, match="undeclared reference to 'format'"):
        compile_expression("'%s'.format(['x'])")


def test_the_names_an_expression_mentions_tell_transition_rules() -> None:
    assert "oldSelf" in compile_expression("self == oldSelf").names
    assert "oldSelf" not in compile_expression("self.size() > 0").names


def test_a_result_that_is_not_a_bool_is_an_error() -> None:
    with pytest.raises(CelError, match="must evaluate to a bool, not string"):
        evaluate_bool(compile_expression("'yes'"), {})


def test_lazy_variables_fail_only_where_they_are_used() -> None:
    calls = []

    def broken() -> Any:
        calls.append("broken")
        return evaluate(compile_expression("1 / 0"), {})

    variables = LazyMap({"ok": lambda: to_cel("fine"), "broken": broken})
    assert bool(evaluate(compile_expression("variables.ok == 'fine'"), {"variables": variables}))
    assert calls == []
    with pytest.raises(CelError, match="division by zero"):
        evaluate(compile_expression("variables.broken == 1"), {"variables": variables})
