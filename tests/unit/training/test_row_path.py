"""FeatureStep's row path: a few request rows give the batch path's matrix and errors, exactly."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
import yaml

from conveyor.api.v1alpha1.featureset import FeatureSet, FeatureSetSpec
from conveyor.features.conform import conform, rows_to_batch
from conveyor.features.rowpath import OffRowPath
from conveyor.features.transforms import FittedTransforms, fit_transforms
from conveyor.sandbox.datasets import DATASETS, render_csv
from conveyor.training.artifacts import ROW_PATH_MAX_ROWS, FeatureError, FeatureStep
from tests.unit.features.test_transforms import (
    EVERY_KIND,
    NON_FINITE,
    NON_FINITE_ROWS,
    SCHEMA,
    csv_bytes,
    materialize,
    raw_rows,
    spec_with,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
AT = "2026-01-01T00:00:00Z"

# Request rows the ordinary client sends (JSON values), then the awkward ones.
EDGE_ROWS: list[dict[str, Any]] = [
    {"id": 1, "at": AT},  # every feature missing
    {"id": 2, "at": AT, "x": None, "y": None, "n": None, "colour": None},
    {"id": 3, "at": AT, "x": math.nan, "y": -0.0, "n": -3, "colour": "purple"},  # NaN is null
    {"id": 4, "at": AT, "x": -0.0, "y": 1e308, "n": 0, "colour": " blue "},
    {"id": 5, "at": AT, "x": 1e308, "y": -1e308, "n": 2**40, "colour": ""},
    {"id": 6, "at": "2026-01-01", "x": 5e-324, "y": 2, "n": -(2**40), "colour": "light green"},
    {"id": 7, "at": "2026-01-01 12:30", "x": 0.25, "y": 3.5, "n": 7, "colour": "white"},
    {"id": 8, "at": "2026-06-30T23:59:59.5+02:00", "x": 1, "y": -1, "n": 1, "colour": "red"},
    {"id": 9, "at": "NaN", "x": 0.75, "y": 0.5, "n": 12, "colour": "blue", "label": "yes"},
    {"id": 10, "at": AT, "x": 0.5, "y": 0.5, "n": 3, "colour": 3},  # a number as category
    {"id": 11, "at": AT, "x": 0.5, "y": 0.5, "n": 3, "colour": True},
    {"id": 2**62, "at": AT, "x": 0.1, "y": 0.2, "n": 2**53 + 1, "colour": "red"},
]
# Values conform reads as text or rejects: the row path hands these back to the batch path.
HANDED_BACK: list[dict[str, Any]] = [
    {"id": "12", "at": AT, "x": 0.5},
    {"id": 13, "at": AT, "x": "0.5"},
    {"id": 14, "at": AT, "x": True},
    {"id": 15, "at": AT, "n": 2.0},
    {"id": 16, "at": "2026-02-30T00:00:00", "x": 0.5},
    {"id": 17, "at": "yesterday", "x": 0.5},
    {"id": 18, "at": AT, "x": 2**60},
    {"id": 19, "at": AT, "n": 2**64},
]


def feature_step(spec: FeatureSetSpec, fitted: FittedTransforms) -> FeatureStep:
    return FeatureStep(spec.schema_.to_wire(), fitted.to_json())


def outcome(step: FeatureStep, request: Any) -> Any:
    """The matrix, bit for bit, or the error's type and words."""
    try:
        matrix = step.transform(request)
    except (FeatureError, ValueError, OverflowError, pa.ArrowException) as error:
        return type(error).__name__, str(error)
    return matrix.shape, matrix.tobytes()


def batch_outcome(step: FeatureStep, rows: list[dict[str, Any]]) -> Any:
    schema, _ = step._parsed()
    return outcome(step, pa.Table.from_batches([rows_to_batch(rows, schema)]))


def answered(step: FeatureStep, rows: list[dict[str, Any]]) -> bool:
    """Whether the row path answers `rows` itself (result or error) rather than handing back."""
    schema, fitted = step._parsed()
    path = fitted.row_path(schema)
    assert path is not None
    try:
        path.features(rows)
    except OffRowPath:
        return False
    except ValueError:  # a refusal, in the batch path's words (checked by the caller)
        return True
    return True


def json_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return json.loads(json.dumps([{k: v for k, v in r.items() if k != "label"} for r in rows]))


def numeric(kind: str) -> list[dict[str, Any]]:
    """The kind's steps, then an ordinal of the text columns left, so a model can take them."""
    text_left = {"oneHot": [], "ordinal": [], "chain": [], "derive": ["colour", "shade"]}
    left = text_left.get(kind, ["colour"])
    return [*EVERY_KIND[kind], *([{"op": "ordinal", "columns": left}] if left else [])]


@pytest.mark.parametrize("kind", list(EVERY_KIND))
def test_every_transform_kind_gives_the_batch_matrix_row_by_row_and_together(kind: str) -> None:
    spec = spec_with(*numeric(kind))
    fitted, _ = materialize(spec, csv_bytes(raw_rows()))
    step = feature_step(spec, fitted)
    ordinary = json_rows(raw_rows())
    assert len(ordinary) <= ROW_PATH_MAX_ROWS
    assert answered(step, ordinary)
    assert outcome(step, ordinary) == batch_outcome(step, ordinary)
    for row in [*ordinary, *EDGE_ROWS, *HANDED_BACK]:
        assert outcome(step, [row]) == batch_outcome(step, [row]), (kind, row)
    assert all(answered(step, [row]) for row in EDGE_ROWS[:-1]), kind
    assert not any(answered(step, [row]) for row in HANDED_BACK), kind


def test_a_feature_set_with_a_text_feature_is_refused_alike_on_both_paths() -> None:
    spec = spec_with(*EVERY_KIND["log"])  # colour stays text: no model can take it
    fitted, _ = materialize(spec, csv_bytes(raw_rows()))
    step = feature_step(spec, fitted)
    schema, parsed = step._parsed()
    assert parsed.row_path(schema) is None
    request = json_rows(raw_rows(3))
    refused = outcome(step, request)
    assert "feature column 'colour' is of type string" in refused[1]
    assert refused == batch_outcome(step, request)


CHECKED = {
    **SCHEMA,
    "columns": [
        {"name": "id", "type": "int", "nullable": False},
        {"name": "at", "type": "timestamp", "nullable": False},
        {"name": "x", "type": "float", "nullable": False, "min": 0, "max": 1},
        {"name": "y", "type": "float", "min": -2.5},
        {"name": "n", "type": "int", "min": -5, "max": 40},
        {"name": "colour", "type": "category", "categories": ["blue", "red", "light green"]},
        {"name": "label", "type": "category", "nullable": False},
    ],
}
BROKEN = [
    {"x": None},
    {"x": math.nan, "n": 41},
    {"x": 1.5, "y": -3, "n": -6},
    {"x": 0.5, "y": math.inf},
    {"x": 0.5, "y": -math.inf, "colour": "white"},
    {"x": 0.5, "colour": " purple "},
    {"x": -0.25},
]


def test_rows_that_break_the_schema_are_refused_in_the_batch_paths_words() -> None:
    spec = spec_with(
        {"op": "standardScale", "columns": ["x", "y"]},
        {"op": "ordinal", "columns": ["colour"]},
        schema=CHECKED,
    )
    rows = [{**row, "x": min(max(row["x"] or 0.5, 0.0), 1.0)} for row in raw_rows()]
    fitted, _ = materialize(spec, csv_bytes(rows))
    step = feature_step(spec, fitted)
    good = {"id": 1, "at": AT, "x": 0.5, "y": 0.0, "n": 3, "colour": "red"}
    for broken in BROKEN:
        request = [{**good, **broken}]
        assert answered(step, request)
        refused = outcome(step, request)
        assert refused[0] == "FeatureError"
        assert refused == batch_outcome(step, request), broken
    request = [good, *({**good, **broken} for broken in BROKEN), good]  # more than five refused
    refused = outcome(step, request)
    assert refused[1].startswith("7 of 9 row(s) break the FeatureSet schema: x: missing value")
    assert refused == batch_outcome(step, request)


def test_a_non_finite_result_is_refused_naming_the_first_step_and_rows_as_the_batch_path_does() -> (
    None
):
    fitted = fit_transforms(NON_FINITE, lambda: NON_FINITE_ROWS.to_batches())
    step = feature_step(NON_FINITE, fitted)
    # Row 1 breaks at step 1 (gap), rows 2 and 3 at step 0 (big): the batch path names step 0.
    request = [
        {"x": 0.5, "y": 1.0},
        {"x": 0.5, "y": 800.0},
        {"x": 2.0, "y": 1.0},
        {"x": 3.0, "y": 800.0},
        {"x": 1.0, "y": 2.0},
    ]
    assert answered(step, request)
    refused = outcome(step, request)
    assert refused[1].startswith("2 row(s) give a non-finite feature: row 2: spec.transforms[0]")
    assert refused == batch_outcome(step, request)
    for row in request:
        assert outcome(step, [row]) == batch_outcome(step, [row])


def test_feature_step_takes_the_row_path_for_few_rows_and_the_batch_path_for_many(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec, rows = example("iris")
    fitted = fitted_example(spec)
    step = feature_step(spec, fitted)
    batches: list[int] = []
    apply = FittedTransforms.apply

    def counted(self: FittedTransforms, batch: Any, **options: Any) -> pa.Table:
        batches.append(batch.num_rows)
        return apply(self, batch, **options)

    monkeypatch.setattr(FittedTransforms, "apply", counted)
    step.transform(rows[:1])
    step.transform(rows[:ROW_PATH_MAX_ROWS])
    assert batches == []
    step.transform(rows[: ROW_PATH_MAX_ROWS + 1])
    step.transform([{**rows[0], "sepal_length_cm": "5.1"}])  # text for a number: handed back
    assert batches == [ROW_PATH_MAX_ROWS + 1, 1]


def example(name: str) -> tuple[FeatureSetSpec, list[dict[str, Any]]]:
    spec = FeatureSet.model_validate(
        yaml.safe_load((EXAMPLES / name / "featureset.yaml").read_text())
    ).spec
    read = pacsv.read_csv(io.BytesIO(render_csv(name)))
    rows = [{k: v for k, v in row.items() if k != spec.schema_.target} for row in read.to_pylist()]
    return spec, json.loads(json.dumps(rows, default=lambda value: value.isoformat()))


def fitted_example(spec: FeatureSetSpec) -> FittedTransforms:
    name = str(spec.sources[0].uri).split("/")[3]
    read = pacsv.read_csv(
        io.BytesIO(render_csv(name)),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(DATASETS[name].columns, pa.string())
        ),
    )
    table = pa.Table.from_batches([conform(read, spec.schema_).batch])
    return fit_transforms(spec, lambda: iter(table.to_batches(max_chunksize=64)))


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_the_examples_agree_on_one_row_a_few_rows_and_a_batch(name: str) -> None:
    spec, rows = example(name)
    step = feature_step(spec, fitted_example(spec))
    for request in ([rows[0]], [rows[-1]], rows[:ROW_PATH_MAX_ROWS]):
        assert answered(step, request)
        assert outcome(step, request) == batch_outcome(step, request)
    whole = step.transform(rows)
    assert np.array_equal(whole[:ROW_PATH_MAX_ROWS], step.transform(rows[:ROW_PATH_MAX_ROWS]))


@pytest.mark.parametrize("rows", [1, ROW_PATH_MAX_ROWS + 6])  # the row path, the batch path
def test_ints_beyond_64_bits_are_refused_and_large_ones_answered(rows: int) -> None:
    # Once an OverflowError (a 500 at the server) on the batch path; a request's fault, 422.
    from sklearn.linear_model import Ridge

    from tests.models import train_plants

    step = train_plants(Ridge()).pipeline.named_steps["features"]

    def send(leaves: int) -> np.ndarray:
        return np.asarray(
            step.transform([{"height_cm": 10.0, "leaves": leaves, "soil": "clay"}] * rows)
        )

    for too_large in (2**64, -(2**63) - 1):
        with pytest.raises(FeatureError, match=f"leaves: '{too_large}' is not a valid int"):
            send(too_large)
    # An int64 beyond 2**53 becomes the nearest float, as numpy would make it.
    assert send(2**63 - 1)[0][1] == float(2**63 - 1)
