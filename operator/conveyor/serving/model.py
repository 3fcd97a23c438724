"""The served model: the skops pipeline's FeatureStep, then the estimator — in onnxruntime when
a verified ONNX file came with it, else the pipeline's own scikit-learn estimator.

Raw rows always go through the pipeline's `FeatureStep` (the FeatureSet's conform and fitted
transforms, the code materialization ran): the server never re-implements a transform. Only
the estimator has two runtimes, and both read the same feature matrix.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
import pyarrow as pa
from sklearn.base import is_classifier
from sklearn.pipeline import Pipeline

from ..api.v1alpha1.featureset import FeatureSchema
from ..training.artifacts import ROW_PATH_MAX_ROWS, ArtifactError, FeatureStep
from .errors import ArtifactUnreadable, WarmupFailed

__all__ = [
    "ModelInput",
    "OnnxRuntime",
    "Prediction",
    "Runtime",
    "ServedModel",
    "SklearnRuntime",
    "model_inputs",
    "tensor_datatype",
]

logger = logging.getLogger(__name__)

_DATATYPES = {
    "float": "FP64",
    "int": "INT64",
    "bool": "BOOL",
    "category": "BYTES",
    "string": "BYTES",
    "timestamp": "BYTES",
}
_ONNX_FLOATS = {"tensor(float)": np.float32, "tensor(double)": np.float64}


# The arrow type a column's request values take (conform parses timestamps from text).
_ARROW = {
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
    "category": pa.string(),
    "string": pa.string(),
    "timestamp": pa.string(),
}


@dataclass(frozen=True, slots=True)
class ModelInput:
    """One raw input column of the FeatureSet schema, as the server takes it."""

    name: str
    """The V2 input name and the key of a raw record (the FeatureSet column's name)."""
    source: str | None
    """The raw source column's name, also accepted as a record key when it differs."""
    column_type: str
    datatype: str
    """Its V2 datatype: FP64, INT64, BOOL or BYTES."""
    required: bool
    """False for the entity key and the event time: a prediction does not need them."""


def model_inputs(schema: FeatureSchema) -> tuple[ModelInput, ...]:
    """The raw columns a request sends: every schema column but the target, in schema order."""
    optional = {schema.entity_key, schema.event_time}
    return tuple(
        ModelInput(
            name=column.name,
            source=column.source_column if column.source_column != column.name else None,
            column_type=column.type,
            datatype=_DATATYPES[column.type],
            required=column.name not in optional,
        )
        for column in schema.columns
        if column.name != schema.target
    )


class Prediction(NamedTuple):
    labels: np.ndarray
    """One prediction per row: a class label or a regression value."""
    probabilities: np.ndarray | None
    """Rows by classes (in `ServedModel.classes` order), for classifiers that have them."""


class Runtime(Protocol):
    name: str

    def predict(self, features: np.ndarray) -> Prediction: ...


class SklearnRuntime:
    """The pipeline's fitted estimator, called on the feature matrix."""

    name = "sklearn"

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator
        self.with_probabilities = is_classifier(estimator) and hasattr(estimator, "predict_proba")

    def predict(self, features: np.ndarray) -> Prediction:
        labels = np.asarray(self.estimator.predict(features))
        if not self.with_probabilities:
            return Prediction(labels, None)
        return Prediction(labels, np.asarray(self.estimator.predict_proba(features)))


class OnnxRuntime:
    """The estimator exported to ONNX (skl2onnx), in onnxruntime on one thread: its first
    output is the label or value, its second (classifiers) the probabilities."""

    name = "onnx"

    def __init__(self, data: bytes, *, width: int, classifier: bool) -> None:
        # Only a server with an ONNX file pays for importing onnx and onnxruntime.
        from ..training.onnx_file import open_onnx, session_options

        try:
            # The trainer's own checks (standard operators only, no external data or
            # functions); one thread: a single row is faster without a pool, pods scale out.
            self.session = open_onnx(data, options=session_options(threads=1))
        except ArtifactError as error:
            raise ArtifactUnreadable(f"the ONNX file cannot be loaded: {error}") from error
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].type not in _ONNX_FLOATS:
            found = ", ".join(f"{item.name} ({item.type})" for item in inputs)
            raise ArtifactUnreadable(
                f"the ONNX file must take one float or double tensor of features; it takes {found}"
            )
        shape = inputs[0].shape
        if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != width):
            raise ArtifactUnreadable(
                f"the ONNX file takes input of shape {shape}, but the pipeline's feature step "
                f"makes {width} features per row"
            )
        self.input_name = inputs[0].name
        self.input_dtype = _ONNX_FLOATS[inputs[0].type]
        outputs = self.session.get_outputs()[:2]
        not_tensors = [
            f"{item.name} ({item.type})" for item in outputs if not item.type.startswith("tensor(")
        ]
        if not_tensors:
            raise ArtifactUnreadable(
                f"the ONNX file's outputs must be tensors (labels, then probabilities: skl2onnx "
                f"with zipmap=False); it gives {', '.join(not_tensors)}"
            )
        self.outputs = [output.name for output in outputs]
        self.with_probabilities = classifier and len(self.outputs) > 1
        if classifier and not self.with_probabilities:
            logger.warning("The ONNX classifier has no probabilities output; serving labels only")

    def predict(self, features: np.ndarray) -> Prediction:
        results = self.session.run(
            self.outputs, {self.input_name: features.astype(self.input_dtype, copy=False)}
        )
        labels = results[0]
        if labels.ndim == 2 and labels.shape[1] == 1:  # regressors answer [N, 1]
            labels = labels.ravel()
        return Prediction(labels, results[1] if self.with_probabilities else None)


class ServedModel:
    """One model version, ready to answer raw rows."""

    def __init__(self, name: str, version: int, pipeline: Pipeline, onnx: bytes | None = None):
        self.name = name
        self.version = str(version)
        step, estimator = _parts(pipeline)
        self.features: FeatureStep = step
        try:
            self.schema = FeatureSchema.model_validate(step.schema)
            width = len(step.feature_names_out)
        except (ValueError, KeyError, TypeError) as error:  # its JSON is not what it should be
            raise ArtifactUnreadable(f"the pipeline's feature step is unusable: {error}") from error
        self.inputs = model_inputs(self.schema)
        classifier = bool(is_classifier(estimator))
        self.task = "classification" if classifier else "regression"
        self.classes: list[Any] | None = (
            np.asarray(estimator.classes_).tolist() if classifier else None
        )
        self.runtime: Runtime = (
            OnnxRuntime(onnx, width=width, classifier=classifier)
            if onnx is not None
            else SklearnRuntime(estimator)
        )
        probe = self._probe(width)
        self.outputs = _output_metadata(probe, self.classes)

    def predict(self, records: Sequence[Mapping[str, Any]]) -> Prediction:
        """Raw rows → predictions; FeatureError when a row breaks the FeatureSet schema."""
        return self.runtime.predict(self.features.matrix(records))

    def predict_columns(self, columns: Mapping[str, list[Any]], rows: int) -> Prediction:
        """Input columns (by input name) → predictions: a few rows as records (the feature
        step's row path), a batch as a pyarrow table (its batch path: no record per row)."""
        if rows > ROW_PATH_MAX_ROWS:
            try:
                table = pa.table(
                    {
                        item.source or item.name: pa.array(
                            columns[item.name], _ARROW[item.column_type]
                        )
                        for item in self.inputs
                        if item.name in columns
                    }
                )
                return self.runtime.predict(self.features.matrix(table))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                pass  # an int pyarrow will not store as the column's type: read as records are
        if rows == 1:  # the common request, in one comprehension
            return self.predict([{name: values[0] for name, values in columns.items()}])
        names = list(columns)
        values = zip(*columns.values(), strict=True)
        return self.predict([dict(zip(names, row, strict=True)) for row in values])

    def _probe(self, width: int) -> Prediction:
        """The estimator's answer to one all-zero feature row: it runs, and its outputs' types
        and widths are what the metadata says."""
        try:
            probe = self.runtime.predict(np.zeros((1, width), dtype=np.float64))
        except Exception as error:
            raise WarmupFailed(
                f"the {self.runtime.name} estimator cannot predict a row of {width} features: "
                f"{type(error).__name__}: {error}"
            ) from error
        classes = len(self.classes or ())
        if probe.probabilities is not None and probe.probabilities.shape != (1, classes):
            raise ArtifactUnreadable(
                f"the {self.runtime.name} estimator gives {probe.probabilities.shape[-1]} "
                f"probabilities per row, but the model has {classes} classes"
            )
        return probe


def _parts(pipeline: Pipeline) -> tuple[FeatureStep, Any]:
    steps = getattr(pipeline, "steps", [])
    if len(steps) != 2 or not isinstance(steps[0][1], FeatureStep):
        names = ", ".join(f"{name} ({type(step).__name__})" for name, step in steps)
        raise ArtifactUnreadable(
            f"the model file must hold Pipeline([features (FeatureStep), model]) as the trainer "
            f"writes it; it holds [{names}]"
        )
    return steps[0][1], steps[1][1]


def tensor_datatype(values: np.ndarray) -> str:
    """The V2 datatype of an output array."""
    kind = values.dtype.kind
    if kind == "f":
        return "FP32" if values.dtype.itemsize == 4 else "FP64"
    if kind in "iu":
        return "INT64"
    if kind == "b":
        return "BOOL"
    return "BYTES"


def _output_metadata(probe: Prediction, classes: list[Any] | None) -> list[dict[str, Any]]:
    outputs: list[dict[str, Any]] = [
        {"name": "predict", "datatype": tensor_datatype(probe.labels), "shape": [-1]}
    ]
    if probe.probabilities is not None:
        outputs.append(
            {
                "name": "predict_proba",
                "datatype": tensor_datatype(probe.probabilities),
                "shape": [-1, len(classes or ())],
                "parameters": {"classes": classes},
            }
        )
    return outputs
