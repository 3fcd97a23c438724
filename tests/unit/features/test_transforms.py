"""Transforms: fitted while streaming, and applied identically at materialization and serving."""

from __future__ import annotations

import csv
import io
import json
import math
import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
import yaml

from conveyor.api.v1alpha1.featureset import FeatureSet, FeatureSetSpec
from conveyor.features.accumulators import SKETCH_RELATIVE_ERROR, Moments, Quantiles
from conveyor.features.conform import conform, rows_to_batch
from conveyor.features.transforms import (
    FittedTransforms,
    NonFiniteResult,
    TransformError,
    deduplicate_latest,
    fit_transforms,
)
from conveyor.sandbox.datasets import DATASETS, render_csv

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
COLUMNS = ["id", "at", "x", "y", "n", "colour", "label"]
SCHEMA = {
    "entityKey": "id",
    "eventTime": "at",
    "target": "label",
    "columns": [
        {"name": "id", "type": "int", "nullable": False},
        {"name": "at", "type": "timestamp", "nullable": False},
        {"name": "x", "type": "float"},
        {"name": "y", "type": "float"},
        {"name": "n", "type": "int"},
        {"name": "colour", "type": "category"},
        {"name": "label", "type": "category", "nullable": False},
    ],
}


def raw_rows(count: int = 60) -> list[dict[str, Any]]:
    """Rows as JSON values, with nulls, negatives and a skewed category distribution."""
    rng = random.Random(7)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    colours = ["blue"] * 5 + ["red"] * 3 + ["light green"] * 2 + ["white"]
    rows = []
    for i in range(count):
        rows.append(
            {
                "id": i + 1,
                "at": (start + timedelta(minutes=37 * i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "x": None if i % 9 == 4 else rng.uniform(0, 1),
                "y": None if i % 11 == 5 else rng.gauss(1.0, 2.0),
                "n": None if i % 7 == 3 else rng.randint(-5, 40),
                "colour": None if i % 13 == 6 else rng.choice(colours),
                "label": rng.choice(["yes", "no"]),
            }
        )
    return rows


def csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(
            [
                "" if row[c] is None else repr(row[c]) if isinstance(row[c], float) else row[c]
                for c in COLUMNS
            ]
        )
    return buffer.getvalue().encode()


def spec_with(*transforms: dict[str, Any], schema: dict[str, Any] = SCHEMA) -> FeatureSetSpec:
    return FeatureSetSpec.model_validate(
        {
            "sources": [{"name": "raw", "uri": "s3://raw/data.csv"}],
            "schema": schema,
            "transforms": list(transforms),
        }
    )


def materialize(
    spec: FeatureSetSpec, data: bytes, batch_rows: int = 7
) -> tuple[FittedTransforms, pa.Table]:
    """The materialization path: CSV read as text, conformed, fitted by streaming, applied."""
    read = pacsv.read_csv(
        io.BytesIO(data),
        convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(COLUMNS, pa.string())),
    )
    conformed = conform(read, spec.schema_).batch
    batches = pa.Table.from_batches([conformed]).to_batches(max_chunksize=batch_rows)
    fitted = fit_transforms(spec, lambda: iter(batches))
    return fitted, pa.concat_tables(fitted.apply(batch) for batch in batches)


def serve(
    fitted: FeatureSetSpec | FittedTransforms, spec: FeatureSetSpec, rows: list[dict[str, Any]]
) -> pa.Table:
    """The serving path: JSON request rows (no target), conformed, applied with serving=True."""
    request = json.loads(json.dumps([{k: v for k, v in r.items() if k != "label"} for r in rows]))
    assert isinstance(fitted, FittedTransforms)
    return fitted.apply(
        conform(rows_to_batch(request, spec.schema_), spec.schema_).batch, serving=True
    )


EVERY_KIND = {
    "derive": [
        {"op": "derive", "output": "xy", "expression": "x * y + log1p(abs(n))"},
        {"op": "derive", "output": "late", "expression": "hour(at) >= 12", "outputType": "int"},
        {
            "op": "derive",
            "output": "shade",
            "expression": "upper(colour)",
            "outputType": "category",
        },
    ],
    "filter": [{"op": "filter", "expression": "x > 0.3 or is_null(x)"}],
    "impute-mean": [{"op": "impute", "columns": ["x", "n"], "strategy": "mean"}],
    "impute-median": [{"op": "impute", "columns": ["y", "n"], "strategy": "median"}],
    "impute-mostFrequent": [
        {"op": "impute", "columns": ["colour", "n"], "strategy": "mostFrequent"}
    ],
    "impute-constant": [
        {"op": "impute", "columns": ["n"], "strategy": "constant", "value": "7"},
        {"op": "impute", "columns": ["colour"], "strategy": "constant", "value": "unknown"},
    ],
    "clip": [{"op": "clip", "columns": ["x", "n"], "min": 0.2, "max": 0.8}],
    "standardScale": [{"op": "standardScale", "columns": ["x", "y", "n"]}],
    "minMaxScale": [{"op": "minMaxScale", "columns": ["x", "n"]}],
    "oneHot": [{"op": "oneHot", "columns": ["colour"], "maxCategories": 2}],
    "ordinal": [{"op": "ordinal", "columns": ["colour", "n"]}],
    "log": [{"op": "log", "columns": ["y", "n"]}],
    "chain": [
        {"op": "impute", "columns": ["x", "y"], "strategy": "median"},
        {"op": "derive", "output": "ratio", "expression": "x / y"},
        {"op": "filter", "expression": "ratio < 5"},
        {"op": "standardScale", "columns": ["x", "ratio"]},
        {"op": "oneHot", "columns": ["colour"]},
        {"op": "derive", "output": "blue_x", "expression": "colour_blue * x"},
        {"op": "minMaxScale", "columns": ["blue_x"]},
    ],
}


def by_id(table: pa.Table) -> dict[int, dict[str, Any]]:
    return {row["id"]: row for row in table.to_pylist()}


@pytest.mark.parametrize("kind", list(EVERY_KIND))
def test_serving_raw_rows_gives_exactly_the_materialized_features(kind: str) -> None:
    spec = spec_with(*EVERY_KIND[kind])
    rows = raw_rows()
    fitted, stored = materialize(spec, csv_bytes(rows))
    online = serve(fitted, spec, rows)
    # The target is there (conform() gives every schema column) but empty: requests have none.
    assert online.column_names == ["id", "at", "label", *fitted.feature_columns]
    assert online.column("label").null_count == len(rows)
    assert online.num_rows == len(rows)  # serving answers every row, filter or not
    compared = ["id", "at", *fitted.feature_columns]
    served = by_id(online.select(compared))
    assert stored.num_rows > 0
    for identifier, features in by_id(stored.select(compared)).items():
        assert served[identifier] == features, (kind, identifier)  # exact, float for float
    for name in fitted.feature_columns:
        assert online.schema.field(name).type == stored.schema.field(name).type


def test_filter_drops_rows_at_materialization_only() -> None:
    spec = spec_with(*EVERY_KIND["filter"])
    rows = raw_rows()
    _, stored = materialize(spec, csv_bytes(rows))
    kept = [r["id"] for r in rows if r["x"] is None or r["x"] > 0.3]
    assert stored.column("id").to_pylist() == kept
    assert stored.column_names[:3] == ["id", "at", "label"]


def test_fitting_many_small_batches_gives_the_parameters_of_one_batch() -> None:
    spec = spec_with(
        *EVERY_KIND["chain"],
        {"op": "impute", "columns": ["n"], "strategy": "mean"},
        {"op": "minMaxScale", "columns": ["y"]},
    )
    data = csv_bytes(raw_rows(500))
    one, _ = materialize(spec, data, batch_rows=100_000)
    many, _ = materialize(spec, data, batch_rows=3)
    assert_parameters_close(one.to_json(), many.to_json())


def assert_parameters_close(a: Any, b: Any) -> None:
    if isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_parameters_close(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_parameters_close(x, y)
    else:
        assert a == b


def test_fitted_parameters_are_the_textbook_statistics() -> None:
    spec = spec_with(
        {"op": "impute", "columns": ["x"], "strategy": "median"},
        {"op": "standardScale", "columns": ["x", "y"]},
        {"op": "minMaxScale", "columns": ["n"]},
    )
    rows = raw_rows(200)
    fitted, _ = materialize(spec, csv_bytes(rows))
    xs = np.array([r["x"] for r in rows if r["x"] is not None])
    imputed = np.array([r["x"] if r["x"] is not None else np.median(xs) for r in rows])
    ys = np.array([r["y"] for r in rows if r["y"] is not None])
    ns = [r["n"] for r in rows if r["n"] is not None]
    impute, scale, minmax = (step["fitted"] for step in fitted.steps)
    assert impute["fill"]["x"] == np.median(xs)
    assert scale["mean"]["x"] == pytest.approx(imputed.mean(), rel=1e-12)
    assert scale["scale"]["x"] == pytest.approx(imputed.std(), rel=1e-12)
    assert scale["scale"]["y"] == pytest.approx(ys.std(), rel=1e-12)
    assert (minmax["min"]["n"], minmax["max"]["n"]) == (min(ns), max(ns))


def test_fitted_transforms_survive_a_json_round_trip() -> None:
    spec = spec_with(*EVERY_KIND["chain"])
    rows = raw_rows()
    fitted, stored = materialize(spec, csv_bytes(rows))
    restored = FittedTransforms.from_json(json.loads(json.dumps(fitted.to_json())))
    assert restored == fitted
    read = pacsv.read_csv(
        io.BytesIO(csv_bytes(rows)),
        convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(COLUMNS, pa.string())),
    )
    assert restored.apply(conform(read, spec.schema_).batch).equals(stored)


def test_an_unknown_format_is_refused_with_what_to_do() -> None:
    with pytest.raises(ValueError, match="re-materialize"):
        FittedTransforms.from_json({"format": 99})


def test_one_hot_names_sorted_categories_and_routes_the_rest_to_other() -> None:
    spec = spec_with({"op": "oneHot", "columns": ["colour"], "maxCategories": 2})
    fitted, _ = materialize(spec, csv_bytes(raw_rows()))
    assert fitted.feature_columns == ["x", "y", "n", "colour_blue", "colour_red", "colour_other"]
    served = serve(
        fitted,
        spec,
        [
            {"id": 1, "colour": "blue"},
            {"id": 2, "colour": "light green"},
            {"id": 3, "colour": "purple"},
            {"id": 4, "colour": None},
        ],
    )
    assert [
        [row[f"colour_{c}"] for c in ("blue", "red", "other")] for row in served.to_pylist()
    ] == [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]


def test_one_hot_without_other_gives_zeros_for_an_unseen_category_and_sanitises_names() -> None:
    spec = spec_with({"op": "oneHot", "columns": ["colour"]})
    fitted, _ = materialize(spec, csv_bytes(raw_rows()))
    assert fitted.feature_columns[3:] == [
        "colour_blue",
        "colour_light_green",
        "colour_red",
        "colour_white",
    ]
    [row] = serve(fitted, spec, [{"id": 1, "colour": "purple"}]).to_pylist()
    assert [row[name] for name in fitted.feature_columns[3:]] == [0.0] * 4


def test_ordinal_codes_sorted_categories_and_gives_minus_one_to_unseen_ones() -> None:
    spec = spec_with({"op": "ordinal", "columns": ["colour"]})
    fitted, _ = materialize(spec, csv_bytes(raw_rows()))
    served = serve(
        fitted,
        spec,
        [{"id": 1, "colour": c} for c in ("blue", "light green", "red", "white", "purple", None)],
    )
    assert served.column("colour").to_pylist() == [0, 1, 2, 3, -1, None]


def test_degenerate_columns_scale_safely_and_log_of_a_negative_is_null() -> None:
    rows = [{**row, "x": 2.5} for row in raw_rows(10)]
    spec = spec_with(
        {"op": "standardScale", "columns": ["x"]},
        {"op": "minMaxScale", "columns": ["y"]},
        {"op": "derive", "output": "flat", "expression": "x * 0 + 1"},
        {"op": "minMaxScale", "columns": ["flat"]},
        {"op": "log", "columns": ["n"]},
    )
    _, stored = materialize(spec, csv_bytes(rows))
    assert set(stored.column("x").to_pylist()) == {0.0}  # std 0 divides by 1
    assert set(stored.column("flat").to_pylist()) == {0.0}  # range 0 gives 0
    logs = stored.column("n").to_pylist()
    for row, value in zip(rows, logs, strict=True):
        n = row["n"]
        assert value == (None if n is None or n < 0 else math.log1p(n))


def test_impute_fills_before_a_later_scale_sees_the_column() -> None:
    spec = spec_with(
        {"op": "impute", "columns": ["x"], "strategy": "constant", "value": "10"},
        {"op": "standardScale", "columns": ["x"]},
    )
    rows = raw_rows()
    fitted, stored = materialize(spec, csv_bytes(rows))
    filled = np.array([10.0 if r["x"] is None else r["x"] for r in rows])
    assert fitted.steps[1]["fitted"]["mean"]["x"] == pytest.approx(filled.mean(), rel=1e-12)
    assert stored.column("x").null_count == 0


@pytest.mark.parametrize(
    ("transform", "field", "message"),
    [
        (
            {"op": "standardScale", "columns": ["label"]},
            "spec.transforms[0].columns",
            "'label' is the target (spec.schema.target)",
        ),
        ({"op": "log", "columns": ["id"]}, "spec.transforms[0].columns", "'id' is the entity key"),
        (
            {"op": "derive", "output": "leak", "expression": "if_else(label == 'yes', 1, 0)"},
            "spec.transforms[0].expression",
            "a derived feature cannot read the target 'label'",
        ),
        (
            {"op": "derive", "output": "at", "expression": "x"},
            "spec.transforms[0].output",
            "'at' is the event time (spec.schema.eventTime)",
        ),
        (
            {"op": "clip", "columns": ["nope"], "min": 0},
            "spec.transforms[0].columns",
            "column(s) nope not defined at this step (columns: id, at, x, y, n, colour, label)",
        ),
        (
            {"op": "standardScale", "columns": ["colour"]},
            "spec.transforms[0].columns",
            "standardScale cannot take 'colour' of type category",
        ),
        ({"op": "impute", "columns": ["x"]}, "spec.transforms[0].strategy", "needs a strategy"),
        (
            {"op": "impute", "columns": ["n"], "strategy": "constant", "value": "seven"},
            "spec.transforms[0].value",
            "'seven' is not a valid int (column 'n')",
        ),
        (
            {"op": "derive", "output": "z", "expression": "open('x')"},
            "spec.transforms[0].expression",
            "function 'open' is not allowed",
        ),
        ({"op": "clip", "columns": ["x"]}, "spec.transforms[0].min", "clip needs min, max or both"),
        ({"op": "filter"}, "spec.transforms[0].expression", "filter needs an expression"),
    ],
)
def test_an_unusable_step_is_reported_by_its_field(
    transform: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(TransformError) as caught:
        materialize(spec_with(transform), csv_bytes(raw_rows(5)))
    assert caught.value.field == field
    assert message in str(caught.value)


def test_a_step_after_a_one_hot_may_read_its_new_columns_but_not_invented_ones() -> None:
    spec = spec_with(
        {"op": "oneHot", "columns": ["colour"]},
        {"op": "derive", "output": "z", "expression": "colour_pink + 1"},
    )
    with pytest.raises(TransformError, match=r"spec.transforms\[1\].expression.*'colour_pink'"):
        materialize(spec, csv_bytes(raw_rows(20)))


def test_too_many_categories_name_the_column() -> None:
    rows = [{**row, "colour": f"c{i}"} for i, row in enumerate(raw_rows(10_050))]
    spec = spec_with({"op": "ordinal", "columns": ["colour"]})
    with pytest.raises(TransformError, match="column 'colour' has more than 10000 distinct"):
        materialize(spec, csv_bytes(rows), batch_rows=4096)


def test_fitting_passes_over_the_data_once_per_dependency_level() -> None:
    spec = spec_with(*EVERY_KIND["chain"])
    data = csv_bytes(raw_rows())
    read = pacsv.read_csv(
        io.BytesIO(data),
        convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(COLUMNS, pa.string())),
    )
    batch = conform(read, spec.schema_).batch
    passes = 0

    def scan() -> Iterable[pa.RecordBatch]:
        nonlocal passes
        passes += 1
        yield batch

    fit_transforms(spec, scan)
    # impute+oneHot | standardScale (reads the imputed x) | minMaxScale (reads blue_x)
    assert passes == 3


def test_streaming_moments_and_median_match_numpy() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(1e6, 3.0, 10_001)
    moments, quantiles = Moments(), Quantiles()
    for chunk in np.array_split(values, 97):
        moments.update(chunk)
        quantiles.update(chunk)
    assert moments.mean == pytest.approx(values.mean(), rel=1e-12)
    assert moments.std == pytest.approx(values.std(), rel=1e-9)
    assert quantiles.median() == np.median(values)
    assert not quantiles.sketched


def test_the_median_of_many_distinct_values_is_approximate_within_the_bound() -> None:
    values = np.random.default_rng(5).lognormal(0, 2, 250_000)
    quantiles = Quantiles()
    for chunk in np.array_split(values, 10):
        quantiles.update(chunk)
    assert quantiles.sketched
    assert len(quantiles.keys) < 100_000
    assert quantiles.median() == pytest.approx(np.median(values), rel=2 * SKETCH_RELATIVE_ERROR)


def test_deduplicate_keeps_the_latest_row_per_key_in_input_order() -> None:
    table = pa.table(
        {
            "key": [1, 2, 1, 3, 2, None, None, 1],
            "time": pa.array([5, 1, 9, 2, 1, 3, 4, None], pa.int64()),
            "value": ["a", "b", "c", "d", "e", "f", "g", "h"],
        }
    )
    # key 1: time 9 wins over 5 and null; key 2: a tie at time 1 goes to the last seen
    assert deduplicate_latest(table, "key", "time").column("value").to_pylist() == [
        "c",
        "d",
        "e",
        "f",
        "g",
    ]


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_the_examples_fit_and_serve_their_own_rows_identically(name: str) -> None:
    resource = FeatureSet.model_validate(
        yaml.safe_load((EXAMPLES / name / "featureset.yaml").read_text())
    )
    spec = resource.spec
    read = pacsv.read_csv(
        io.BytesIO(render_csv(name)),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(DATASETS[name].columns, pa.string())
        ),
    )
    conformed = conform(read, spec.schema_)
    assert conformed.rejected == 0
    batches = pa.Table.from_batches([conformed.batch]).to_batches(max_chunksize=64)
    fitted = fit_transforms(spec, lambda: iter(batches))
    stored = fitted.apply(conformed.batch)
    raw = [
        {k: v for k, v in row.items() if k != spec.schema_.target}
        for row in read.slice(0, 20).to_pylist()
    ]
    online = fitted.apply(
        conform(rows_to_batch(raw, spec.schema_), spec.schema_).batch, serving=True
    )
    target = spec.schema_.target
    assert online.drop_columns([target]).equals(stored.slice(0, 20).drop_columns([target]))


def test_apply_with_rows_names_the_rows_that_survive_filters() -> None:
    from conveyor.api.v1alpha1 import FeatureSetSpec
    from conveyor.features.transforms import fit_transforms

    spec = FeatureSetSpec.model_validate(
        {
            "sources": [{"name": "raw", "uri": "s3://raw/x.csv"}],
            "schema": {
                "columns": [{"name": "x", "type": "float"}, {"name": "y", "type": "float"}],
                "target": "y",
            },
            "transforms": [
                {"op": "filter", "expression": "x > 1"},
                {"op": "standardScale", "columns": ["x"]},
            ],
        }
    )
    batch = pa.table({"x": [0.5, 2.0, 3.0, 1.0, 4.0], "y": [1.0, 2.0, 3.0, 4.0, 5.0]})
    fitted = fit_transforms(spec, lambda: iter(batch.to_batches()))
    features, rows, rejected = fitted.apply_with_rows(batch)
    assert rows.to_pylist() == [1, 2, 4]
    assert rejected.count == 0
    assert features.column("y").to_pylist() == [2.0, 3.0, 5.0]
    assert features.equals(fitted.apply(batch))


NON_FINITE = FeatureSetSpec.model_validate(
    {
        "sources": [{"name": "raw", "uri": "s3://raw/x.csv"}],
        "schema": {
            "entityKey": "id",
            "columns": [
                {"name": "id", "type": "int"},
                {"name": "x", "type": "float"},
                {"name": "y", "type": "float"},
            ],
        },
        "transforms": [
            {"op": "derive", "output": "big", "expression": "x ** 10 ** 10 ** 10"},
            {"op": "derive", "output": "gap", "expression": "exp(y) - exp(y)"},
            {"op": "derive", "output": "whole", "expression": "-exp(y)", "outputType": "int"},
            {"op": "standardScale", "columns": ["y"]},
        ],
    }
)
# id 2: big = inf; id 3: exp(800) overflows, so gap = inf - inf = nan and whole = -inf.
NON_FINITE_ROWS = pa.table(
    {"id": [1, 2, 3, 4, 5], "x": [0.5, 2.0, 0.5, None, 1.0], "y": [1.0, 2.0, 800.0, 4.0, 5.0]}
)


def test_a_non_finite_result_rejects_its_row_with_a_reason_naming_the_step() -> None:
    fitted = fit_transforms(NON_FINITE, lambda: NON_FINITE_ROWS.to_batches())

    features, kept, rejected = fitted.apply_with_rows(NON_FINITE_ROWS)

    assert kept.to_pylist() == [0, 3, 4]
    assert features.column("id").to_pylist() == [1, 4, 5]
    assert rejected.rows == [1, 2]
    assert rejected.reasons == [
        "spec.transforms[0] (derive 'big' = x ** 10 ** 10 ** 10): inf is not a finite number",
        "spec.transforms[1] (derive 'gap' = exp(y) - exp(y)): nan is not a finite number",
    ]
    assert rejected.rules == {
        "spec.transforms[0] (derive 'big'): not a finite number": 1,
        "spec.transforms[1] (derive 'gap'): not a finite number": 1,
    }
    for name in ("big", "gap", "whole", "y"):  # nothing non-finite reaches the snapshot
        values = features.column(name).drop_null().to_numpy(zero_copy_only=False)
        assert np.isfinite(values.astype(float)).all(), name
    assert fitted.apply(NON_FINITE_ROWS).equals(features)


def test_an_int_derive_that_overflows_rejects_the_row_instead_of_failing_the_cast() -> None:
    spec = FeatureSetSpec.model_validate(
        {**NON_FINITE.model_dump(by_alias=True), "transforms": [NON_FINITE.transforms[2].to_wire()]}
    )
    fitted = fit_transforms(spec, lambda: NON_FINITE_ROWS.to_batches())

    features, _, rejected = fitted.apply_with_rows(NON_FINITE_ROWS)

    assert features.column("whole").to_pylist() == [-2, -7, -54, -148]
    assert rejected.reasons == [
        "spec.transforms[0] (derive 'whole' = -exp(y)): -inf is not a finite number"
    ]


def test_fitting_leaves_out_the_rows_a_transform_rejects() -> None:
    fitted = fit_transforms(NON_FINITE, lambda: NON_FINITE_ROWS.to_batches())

    scale = fitted.steps[3]["fitted"]
    assert scale["mean"]["y"] == pytest.approx(np.mean([1.0, 4.0, 5.0]))  # not 2.0 nor 800.0
    assert scale["scale"]["y"] == pytest.approx(np.std([1.0, 4.0, 5.0]))


def test_serving_refuses_a_row_with_a_non_finite_result_with_the_same_reason() -> None:
    fitted = fit_transforms(NON_FINITE, lambda: NON_FINITE_ROWS.to_batches())
    _, _, rejected = fitted.apply_with_rows(NON_FINITE_ROWS)
    request = conform(
        rows_to_batch([{"x": 1.0, "y": 1.0}, {"x": 2.0, "y": 2.0}], NON_FINITE.schema_),
        NON_FINITE.schema_,
    ).batch

    with pytest.raises(NonFiniteResult) as refused:
        fitted.apply(request, serving=True)

    assert refused.value.rows == [1]
    assert refused.value.reasons == [rejected.reasons[0]]
    assert str(refused.value) == f"1 row(s) give a non-finite feature: row 1: {rejected.reasons[0]}"
    served = fitted.apply(request.slice(0, 1), serving=True)
    assert served.num_rows == 1
