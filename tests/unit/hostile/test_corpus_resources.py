"""Hostile custom resources through the operator's own path (parse, then the pure reconcile over
a world in which a valid object starts work): each is refused — Ready False, a message naming
the offending field — and nothing is planned to run. Expressions that try to escape the
language are also compiled and evaluated directly: an ExpressionError, never a hang or a crash.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pytest

from conveyor.features.expression_rows import compile_row_expression
from conveyor.features.expressions import ExpressionError, compile_expression
from tests.unit.hostile.worlds import example, verdict

Change = Callable[[dict[str, Any]], None]


def put(path: str, value: Any) -> Change:
    """Set `path` (dots; list indexes as numbers) to `value`, creating maps on the way."""

    def change(body: dict[str, Any]) -> None:
        *head, last = path.split(".")
        node: Any = body
        for key in head:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


def derive(expression: str) -> Change:
    """A first transform deriving column x from `expression`."""
    return lambda body: body["spec"]["transforms"].insert(
        0, {"op": "derive", "output": "x", "expression": expression}
    )


@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    change: Change
    field: str
    """The field the message must name, as the message spells it."""
    words: str = ""
    """What the message must also say."""


EXPRESSION = "spec.transforms[0].expression"
FS, TP, MV, RP = "FeatureSet", "TrainingPipeline", "ModelVersion", "RetrainPolicy"

CASES = [
    # Expressions that try to leave the language.
    Case("attribute-access", FS, derive("sepal_length_cm.__class__"), EXPRESSION, "attribute"),
    Case("class-bases", FS, derive("().__class__.__bases__"), EXPRESSION, "attribute"),
    Case("dunder-import", FS, derive("__import__('os').system('id')"), EXPRESSION, "only calls"),
    Case("import-call", FS, derive("__import__('os')"), EXPRESSION, "'__import__' is not allowed"),
    Case("open-file", FS, derive("open('/etc/passwd')"), EXPRESSION, "'open' is not allowed"),
    Case("eval-call", FS, derive("eval('1')"), EXPRESSION, "'eval' is not allowed"),
    Case("lambda", FS, derive("(lambda: 1)()"), EXPRESSION, "only calls"),
    Case("comprehension", FS, derive("[x for x in (1, 2)]"), EXPRESSION, "comprehension"),
    Case("generator", FS, derive("abs(x for x in (1, 2))"), EXPRESSION, "generator"),
    Case("walrus", FS, derive("(y := 1)"), EXPRESSION, "assignment expression"),
    Case("f-string", FS, derive("f'{sepal_length_cm}'"), EXPRESSION, "f-string"),
    Case("dunder-name", FS, derive("__builtins__"), EXPRESSION, "'__builtins__' is not allowed"),
    Case("keyword-args", FS, derive("abs(x=1)"), EXPRESSION, "keyword"),
    Case("subscript", FS, derive("sepal_length_cm[0]"), EXPRESSION, "subscript"),
    Case("bytes-literal", FS, derive("b'abc' == species"), EXPRESSION, "literal b'abc'"),
    Case("complex-literal", FS, derive("1j + sepal_length_cm"), EXPRESSION, "literal 1j"),
    Case("statement", FS, derive("import os"), EXPRESSION, "invalid syntax"),
    Case("two-statements", FS, derive("1; 2"), EXPRESSION, "invalid syntax"),
    # Expressions that try to exhaust the operator or the Job.
    Case(
        "integer-beyond-int64",
        FS,
        derive("sepal_length_cm * 1" + "0" * 30),
        EXPRESSION,
        "outside the 64-bit range",
    ),
    Case(
        "integer-beyond-int64-after-in",
        FS,
        derive("sepal_length_cm in (" + "9" * 20 + ",)"),
        EXPRESSION,
        "outside the 64-bit range",
    ),
    Case(
        "round-digits-never-return",
        FS,
        derive("round(sepal_length_cm, 99999999999)"),
        EXPRESSION,
        "between -1000 and 1000",
    ),
    Case(
        "parentheses-10000-deep",
        FS,
        derive("(" * 10_000 + "1" + ")" * 10_000),
        "spec.transforms.0.expression",
        "at most 4096 characters",
    ),
    Case(
        "parentheses-2000-deep",
        FS,
        derive("(" * 2000 + "1" + ")" * 2000),
        EXPRESSION,
        "too many nested parentheses",
    ),
    Case("minus-4000-times", FS, derive("-" * 4000 + "1"), EXPRESSION, "nests more than 64"),
    Case(
        "long-sum",
        FS,
        derive("+".join(["sepal_length_cm"] * 250)),
        EXPRESSION,
        "nests more than 64",
    ),
    Case(
        "wide-call-chain",
        FS,
        derive(" or ".join(["1<2"] * 400)),
        EXPRESSION,
        "more than 1000 parts",
    ),
    Case(
        "giant-string",
        FS,
        derive("'" + "a" * 100_000 + "'"),
        "spec.transforms.0.expression",
        "at most 4096",
    ),
    Case("nul-byte", FS, derive("sepal_length_cm\x00"), EXPRESSION, "null bytes"),
    Case(
        "cyrillic-lookalike",
        FS,
        derive("\u0455epal_length_cm * 2"),
        EXPRESSION,
        "is not defined",
    ),
    Case(
        "fullwidth-lookalike",
        FS,
        derive("\uff53epal_length_cm * 2"),
        EXPRESSION,
        "write 'sepal_length_cm' in ASCII",
    ),
    Case(
        "lone-surrogate",
        FS,
        derive("'\ud800' == species"),
        "spec.transforms.0.expression",
        "valid string",
    ),
    Case(
        "filter-reads-unknown",
        FS,
        lambda b: b["spec"]["transforms"].insert(0, {"op": "filter", "expression": "nope > 1"}),
        EXPRESSION,
        "'nope' is not defined",
    ),
    # FeatureSet fields.
    Case("source-uri-traversal", FS, put("spec.sources.0.uri", "s3://../../etc"), "uri", ""),
    Case("source-uri-file", FS, put("spec.sources.0.uri", "file:///etc/passwd"), "uri", ""),
    Case(
        "source-uri-metadata-service",
        FS,
        put("spec.sources.0.uri", "http://169.254.169.254/latest/meta-data"),
        "spec.sources.0.uri",
    ),
    Case("source-name-traversal", FS, put("spec.sources.0.name", "../x"), "spec.sources.0.name"),
    Case("column-min-nan", FS, put("spec.schema.columns.2.min", float("nan")), "columns[2].min"),
    Case("column-max-inf", FS, put("spec.schema.columns.2.max", float("inf")), "columns[2].max"),
    Case(
        "clip-min-nan",
        FS,
        lambda b: b["spec"]["transforms"].insert(
            0, {"op": "clip", "columns": ["sepal_length_cm"], "min": float("nan")}
        ),
        "spec.transforms[0].min",
        "finite",
    ),
    Case(
        "negative-parallelism",
        FS,
        put("spec.materialization.parallelism", -1),
        "spec.materialization.parallelism",
    ),
    Case(
        "cron-never-fires",
        FS,
        put("spec.materialization.schedule", "0 0 31 2 *"),
        "spec.materialization.schedule",
        "matches no date",
    ),
    Case("op-dunder", FS, put("spec.transforms.0", {"op": "__class__"}), "spec.transforms.0.op"),
    Case("transforms-not-list", FS, put("spec.transforms", "derive"), "spec.transforms"),
    Case("spec-null", FS, put("spec", None), "spec"),
    Case("missing-spec", FS, lambda b: b.pop("spec"), "spec", "Field required"),
    Case(
        "one-hot-billion",
        FS,
        put("spec.transforms.0", {"op": "oneHot", "columns": ["x"], "maxCategories": 10**9}),
        "spec.transforms.0.maxCategories",
    ),
    # TrainingPipeline fields.
    Case(
        "estimator-os-system", TP, put("spec.model.estimator", "os.system"), "spec.model.estimator"
    ),
    Case(
        "estimator-subprocess",
        TP,
        put("spec.model.estimator", "subprocess:Popen"),
        "spec.model.estimator",
    ),
    Case(
        "estimator-eval", TP, put("spec.model.estimator", "builtins:eval"), "spec.model.estimator"
    ),
    Case(
        "param-dunder",
        TP,
        put("spec.model.params", {"__class__": 1}),
        "spec.model.params.__class__",
    ),
    Case(
        "param-nan",
        TP,
        put("spec.model.params", {"n_estimators": float("nan")}),
        "spec.model.params.n_estimators",
    ),
    Case(
        "param-negative",
        TP,
        put("spec.model.params", {"n_estimators": -5}),
        "spec.model.params.n_estimators",
    ),
    Case(
        "search-dunder",
        TP,
        put("spec.search.space", {"__init__": [1, 2]}),
        "spec.search.space.__init__",
    ),
    Case(
        "search-range-nan",
        TP,
        put("spec.search.space", {"max_depth": {"low": 1, "high": float("nan")}}),
        "spec.search.space.max_depth",
    ),
    Case(
        "search-range-huge-int",
        TP,
        put("spec.search.space", {"min_samples_leaf": {"low": 1, "high": 10**30, "type": "int"}}),
        "spec.search.space.min_samples_leaf.high",
    ),
    Case("test-size-nan", TP, put("spec.split.testSize", float("nan")), "spec.split.testSize"),
    Case("featureset-traversal", TP, put("spec.featureSet", "../etc"), "spec.featureSet"),
    Case("metric-dunder", TP, put("spec.metric", "__import__"), "spec.metric"),
    Case("features-unknown", TP, put("spec.features", ["__class__"]), "spec.features[0]"),
    Case("negative-replicas", TP, put("spec.serving.replicas", -1), "spec.serving.replicas"),
    Case(
        "canary-weight-1e308",
        TP,
        put("spec.serving.rollout", {"strategy": "Canary", "steps": [{"weight": 1e308}]}),
        "spec.serving.rollout.steps.0.weight",
    ),
    Case("spec-string", TP, put("spec", "x"), "spec"),
    # ModelVersion fields.
    Case("version-negative", MV, put("spec.version", -1), "spec.version"),
    Case("stage-dunder", MV, put("spec.stage", "__class__"), "spec.stage"),
    Case(
        "artifact-other-bucket",
        MV,
        put("spec.artifact.uri", "s3://other/models/default/iris-classifier/runs/iris-r1/m.skops"),
        "artifact",
        "not registered by Conveyor",
    ),
    Case(
        "artifact-path-traversal",
        MV,
        put(
            "spec.artifact.uri",
            "s3://conveyor/models/default/iris-classifier/runs/iris-r1/../../../../x/m.skops",
        ),
        "spec.artifact.uri",
        "not registered by Conveyor",
    ),
    Case(
        "artifact-file-uri", MV, put("spec.artifact.uri", "file:///etc/passwd"), "spec.artifact.uri"
    ),
    Case("digest-md5", MV, put("spec.artifact.digest", "md5:abc"), "spec.artifact.digest"),
    Case(
        "metric-nan", MV, put("spec.metrics", {"accuracy": float("nan")}), "spec.metrics.accuracy"
    ),
    Case("name-traversal", MV, put("metadata.name", "../iris-classifier-v1"), "metadata.name"),
    Case("model-traversal", MV, put("spec.model", "../x"), "spec.model"),
    # RetrainPolicy fields.
    Case(
        "regex-unbalanced",
        RP,
        put("spec.triggers.alert.matchers.0.value", "("),
        "spec.triggers.alert.matchers[0].value",
        "not a regular expression",
    ),
    Case(
        "regex-repetition-overflow",
        RP,
        put("spec.triggers.alert.matchers.0.value", "a{99999999999}"),
        "spec.triggers.alert.matchers[0].value",
        "not a regular expression",
    ),
    Case(
        "cron-february-31",
        RP,
        put("spec.triggers.schedule.cron", "0 0 31 2 *"),
        "spec.triggers.schedule.cron",
        "matches no date",
    ),
    Case(
        "time-zone-traversal",
        RP,
        put("spec.triggers.schedule.timeZone", "../../../etc/passwd"),
        "spec.triggers.schedule.timeZone",
    ),
    Case(
        "time-zone-absolute-path",
        RP,
        put("spec.triggers.schedule.timeZone", "/etc/localtime"),
        "spec.triggers.schedule.timeZone",
    ),
    Case("cooldown-negative", RP, put("spec.cooldownSeconds", -1), "spec.cooldownSeconds"),
    Case("runs-per-day-nan", RP, put("spec.maxRunsPerDay", float("nan")), "spec.maxRunsPerDay"),
    Case("pipeline-traversal", RP, put("spec.pipeline", "../iris"), "spec.pipeline"),
    Case("no-triggers", RP, put("spec.triggers", {}), "spec.triggers"),
    Case("operator-unknown", RP, put("spec.triggers.alert.matchers.0.operator", "=="), "operator"),
]


def _ids(cases: list[Case]) -> list[str]:
    return [f"{i + 1:02d}-{case.kind}-{case.id}" for i, case in enumerate(cases)]


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_a_hostile_object_is_refused_naming_its_field(case: Case) -> None:
    body = example(case.kind)
    case.change(body)
    started = time.monotonic()
    outcome = verdict(case.kind, body)
    assert time.monotonic() - started < 5, "the reconcile took too long"

    assert outcome.ready == "False", outcome
    assert outcome.creates == (), f"a refused {case.kind} planned {outcome.creates}"
    assert case.field in outcome.message, outcome.message
    assert case.words in outcome.message, outcome.message


# The same hostile expressions, compiled for both paths and evaluated: a refusal, or a value.
TABLE = pa.table(
    {
        "x": pa.array([1.0, None, -2.5]),
        "n": pa.array([1, 2, None], pa.int64()),
        "s": pa.array(["a", None, "b"]),
        "ts": pa.array([0, 1, None], pa.timestamp("us", tz="UTC")),
    }
)
EVALUATED = [
    ("power-tower", "10 ** 10 ** 10", [float("inf")] * 3),
    ("power-huge", "2 ** 99999999", [float("inf")] * 3),
    ("column-power-huge", "x ** 99999999", [1.0, None, float("-inf")]),
    ("exp-overflow", "exp(1e308)", [float("inf")] * 3),
    ("divide-by-zero", "n // 0", [None, None, None]),
    ("literal-int64-max", "n * 0 + 9223372036854775807", [9223372036854775807] * 2 + [None]),
]
REFUSED = [
    ("round-never-returns", "round(x, 99999999999)"),
    ("int-overflow-literal", "n + 1" + "0" * 19),
    ("int-overflow-arith", "n + 9223372036854775807"),
    ("string-arithmetic", "s * 99999999999"),
    ("type-confusion", "if_else(x, 'a', 1)"),
    ("attribute", "x.real"),
    ("timestamp-literal-overflow", "ts in (9.3e18,)"),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [(text, expected) for _, text, expected in EVALUATED],
    ids=[f"{i + 1:02d}-{name}" for i, (name, _, _) in enumerate(EVALUATED)],
)
def test_a_huge_expression_value_is_computed_at_once(text: str, expected: list[Any]) -> None:
    started = time.monotonic()
    assert compile_expression(text, TABLE.column_names).evaluate(TABLE).to_pylist() == expected
    row = compile_row_expression(text, TABLE.schema)
    assert [row.run(values) for values in TABLE.to_pylist()] == expected
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    "text",
    [text for _, text in REFUSED],
    ids=[f"{i + 1:02d}-{n}" for i, (n, _) in enumerate(REFUSED)],
)
def test_a_hostile_expression_is_an_expression_error(text: str) -> None:
    started = time.monotonic()
    with pytest.raises(ExpressionError, match=r"\S"):
        compile_expression(text, TABLE.column_names).evaluate(TABLE)
    assert time.monotonic() - started < 2


def test_the_corpus_counts() -> None:
    kinds = {case.kind for case in CASES}
    assert kinds == {"FeatureSet", "TrainingPipeline", "ModelVersion", "RetrainPolicy"}
    assert len(CASES) + len(EVALUATED) + len(REFUSED) >= 50
