"""Small real models for the serving tests, made as training makes them: a FeatureSet's
transforms fitted on conformed rows, `build_pipeline` around a fitted estimator, the skops file
from `dump_model`, the estimator exported to ONNX by skl2onnx, and a model card with a sample row.

The flowers FeatureSet is iris with a category (`garden`, one-hot encoded) and a bool
(`watered`) column besides the four float measures, so requests exercise every V2 datatype.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
from sklearn.base import is_classifier
from sklearn.datasets import load_iris
from sklearn.pipeline import Pipeline

from conveyor.api.v1alpha1.featureset import FeatureSetSpec
from conveyor.features.conform import conform
from conveyor.features.transforms import fit_transforms
from conveyor.training.artifacts import build_pipeline, digest, dump_model
from conveyor.training.onnx import export_onnx as trainer_export

MEASURES = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]
FLOWERS = {
    "sources": [{"name": "flowers", "uri": "s3://conveyor-raw/iris/*.csv"}],
    "schema": {
        "entityKey": "flower_id",
        "eventTime": "observed_at",
        "target": "species",
        "columns": [
            {"name": "flower_id", "type": "int", "nullable": False},
            {"name": "observed_at", "type": "timestamp", "nullable": False},
            *({"name": name, "type": "float", "min": 0, "max": 20} for name in MEASURES),
            {
                "name": "garden",
                "type": "category",
                "nullable": False,
                "categories": ["north", "south"],
            },
            {"name": "watered", "type": "bool", "nullable": False},
            {"name": "species", "type": "category", "nullable": False},
        ],
    },
    "transforms": [
        {"op": "impute", "columns": MEASURES, "strategy": "median"},
        {
            "op": "derive",
            "output": "petal_area_cm2",
            "expression": "petal_length_cm * petal_width_cm",
        },
        {"op": "standardScale", "columns": [*MEASURES, "petal_area_cm2"]},
        {"op": "oneHot", "columns": ["garden"]},
    ],
}
SPECIES = ["setosa", "versicolor", "virginica"]


def flower_rows() -> list[dict[str, Any]]:
    """The iris flowers as raw rows, target included."""
    data = load_iris()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        {
            "flower_id": index,
            "observed_at": (start + timedelta(hours=index)).isoformat(),
            **dict(zip(MEASURES, map(float, measures), strict=True)),
            "garden": "north" if index % 2 else "south",
            "watered": index % 3 == 0,
            "species": SPECIES[label],
        }
        for index, (measures, label) in enumerate(zip(data.data, data.target, strict=True))
    ]


def request_row(row: dict[str, Any]) -> dict[str, Any]:
    """A raw row as a client sends it: no target, no keys."""
    return {k: v for k, v in row.items() if k not in ("species", "flower_id", "observed_at")}


@dataclass
class TrainedModel:
    """A fitted pipeline and the files a training run leaves for it."""

    pipeline: Pipeline
    features: np.ndarray
    schema: dict[str, Any]
    rows: list[dict[str, Any]]
    onnx: bytes | None = None
    card: dict[str, Any] = field(default_factory=dict)
    skops: bytes = b""
    """The model file (dumped once: skops files of the same model differ in their zip dates)."""

    def __post_init__(self) -> None:
        self.skops = self.skops or dump_model(self.pipeline)

    @property
    def digest(self) -> str:
        return digest(self.skops)

    def card_json(self) -> bytes:
        return json.dumps(self.card).encode()


def train_flowers(estimator: Any, *, onnx: bool = True) -> TrainedModel:
    """`estimator` fitted on the flowers, as `conveyor train` would store it."""
    rows = flower_rows()
    return _train(FLOWERS, rows, estimator, onnx=onnx, sample=request_row(rows[0]))


def _train(
    definition: dict[str, Any],
    rows: list[dict[str, Any]],
    estimator: Any,
    *,
    onnx: bool,
    sample: dict[str, Any],
) -> TrainedModel:
    spec = FeatureSetSpec.model_validate(definition)
    target = spec.schema_.target or ""
    batch = conform(pa.Table.from_pylist(rows), spec.schema_).batch
    fitted = fit_transforms(spec, lambda: [batch])
    table = fitted.apply(batch)
    features = np.column_stack(
        [
            np.asarray(table.column(c).to_numpy(zero_copy_only=False), dtype=np.float64)
            for c in fitted.feature_columns
        ]
    )
    schema = spec.schema_.to_wire()
    pipeline = build_pipeline(estimator, schema=schema, transforms=fitted.to_json())
    pipeline.fit(features, np.asarray(table.column(target).to_pylist()))
    model = TrainedModel(pipeline, features, schema, rows)
    if onnx:  # exported and checked as `conveyor train` does
        export = trainer_export(pipeline, features)
        assert export.data is not None, export.card
        model.onnx = export.data
    model.card = {
        "format": 1,
        "kind": "ModelCard",
        "feature_schema": schema,
        "feature_columns": list(fitted.feature_columns),
        "target": target,
        "sample_row": sample,
    }
    return model


def export_onnx(estimator: Any, width: int, *, zipmap: bool = False) -> bytes:
    """A hand-made ONNX file of `estimator` (float inputs, zipmap as asked): what a file the
    trainer did not make looks like."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    options = {id(estimator): {"zipmap": zipmap}} if is_classifier(estimator) else None
    exported = convert_sklearn(
        estimator, initial_types=[("features", FloatTensorType([None, width]))], options=options
    )
    data: bytes = exported.SerializeToString()
    return data


PLANTS = {
    "sources": [{"name": "plants", "uri": "s3://conveyor-raw/plants/*.csv"}],
    "schema": {
        "target": "growth_cm",
        "columns": [
            {"name": "height_cm", "type": "float", "min": 0, "max": 100, "nullable": False},
            {"name": "leaves", "type": "int", "min": 0, "nullable": False},
            {"name": "soil", "type": "category", "categories": ["clay", "loam", "sand"]},
            {"name": "growth_cm", "type": "float", "nullable": False},
        ],
    },
    "transforms": [{"op": "oneHot", "columns": ["soil"]}],
}


def train_plants(estimator: Any, *, onnx: bool = True) -> TrainedModel:
    """A regressor of growth from height, leaves and soil (a category one-hot encoded)."""
    soils = ["clay", "loam", "sand"]
    rows = [
        {
            "height_cm": float(index % 50) + 0.5,
            "leaves": index % 7,
            "soil": soils[index % 3],
            "growth_cm": 0.3 * (index % 50) + 2.0 * (index % 7) + 1.5 * (index % 3),
        }
        for index in range(120)
    ]
    sample = {k: v for k, v in rows[0].items() if k != "growth_cm"}
    return _train(PLANTS, rows, estimator, onnx=onnx, sample=sample)


def iris_rows() -> list[dict[str, Any]]:
    """The flowers as the iris example's FeatureSet reads them (no garden, no watering)."""
    return [
        {k: v for k, v in row.items() if k not in ("garden", "watered")} for row in flower_rows()
    ]


def train_iris(estimator: Any, definition: dict[str, Any]) -> TrainedModel:
    """`estimator` fitted on the iris example's FeatureSet (`definition`, its spec)."""
    rows = iris_rows()
    return _train(definition, rows, estimator, onnx=True, sample=request_row(rows[0]))
