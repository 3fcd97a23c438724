"""The served model and its file: a scikit-learn Pipeline saved with skops, never pickle.

The model is `Pipeline([("features", FeatureStep(...)), ("model", estimator)])`. `FeatureStep`
turns raw request rows into the feature matrix with exactly the code materialization used
(`conform()` then `FittedTransforms.apply(serving=True)`), so a served model cannot drift from its
training features. During training and evaluation it is fed the snapshot's already-transformed
feature matrix, which it passes through.

Loading is the dangerous direction, so `load_model()` checks, in this order and before any object
is built: the sha256 digest against the registry's, then every type the file names against the
allowlist (`is_trusted_type`); only then does skops construct the objects.

The allowlist: the types in `TRUSTED_TYPES`, any type whose module starts with one of
`TRUSTED_MODULE_PREFIXES` (scikit-learn, NumPy, SciPy, this module) except those under
`DENIED_MODULE_PREFIXES`, a few builtins, and the types an estimator plugin declares. A plugin is
a distribution an administrator installed that registers an entry point in the group
`conveyor.estimators`; its estimator class is trusted, and so is every type name listed in the
optional `trusted_types` attribute of the object the entry point loads, e.g.::

    class MyForest(BaseEstimator, ClassifierMixin):
        trusted_types = ("mypackage.trees.Node",)
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import skops.io
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline

from conveyor.api.v1alpha1.featureset import FeatureSchema
from conveyor.features.conform import conform, rows_to_batch
from conveyor.features.rowpath import OffRowPath, RowsRejected
from conveyor.features.transforms import FittedTransforms, NonFiniteResult

__all__ = [
    "DENIED_MODULE_PREFIXES",
    "ENTRY_POINT_GROUP",
    "MODEL_FILE",
    "ROW_PATH_MAX_ROWS",
    "TRUSTED_MODULE_PREFIXES",
    "TRUSTED_TYPES",
    "ArtifactError",
    "FeatureError",
    "FeatureStep",
    "build_pipeline",
    "digest",
    "dump_model",
    "is_trusted_type",
    "load_model",
    "model_size",
    "plugin_trusted_types",
]

logger = logging.getLogger(__name__)

MODEL_FILE = "model.skops"
ENTRY_POINT_GROUP = "conveyor.estimators"  # the same group estimators.py reads

TRUSTED_TYPES: tuple[str, ...] = (
    "conveyor.training.artifacts.FeatureStep",
    "sklearn.pipeline.Pipeline",
    # Internals of fitted scikit-learn estimators that skops does not trust by default
    # (found by dumping every classifier and regressor of sklearn.utils.all_estimators()).
    "sklearn._loss.loss.HalfTweedieLossIdentity",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.gaussian_process._gpc._BinaryGaussianProcessClassifierLaplace",
    "sklearn.gaussian_process.kernels.ConstantKernel",
    "sklearn.gaussian_process.kernels.Product",
    "sklearn.gaussian_process.kernels.RBF",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.tree._tree.Tree",
    # The one builtin container skops does not trust by default (it trusts dict, list, set,
    # tuple, slice, bytes and the primitives); some estimators keep frozensets of names.
    "builtins.frozenset",
)
"""Always trusted, besides skops' own defaults."""

TRUSTED_MODULE_PREFIXES: tuple[str, ...] = (
    "sklearn.",
    "numpy.",
    "scipy.",
    "conveyor.training.artifacts.",
)
"""Modules whose types a model may contain (fitted estimators' internals vary by version)."""

DENIED_MODULE_PREFIXES: tuple[str, ...] = (
    # Names under a trusted prefix that read or write files, download, or load pickles: a
    # model holding one (say as FunctionTransformer's func) would run it on request data.
    "numpy.load",  # load, loadtxt; numpy.load can unpickle
    "numpy.save",  # save, savez, savetxt
    "numpy.fromfile",
    "numpy.fromregex",
    "numpy.genfromtxt",
    "numpy.memmap",
    "numpy.DataSource",
    "numpy.lib.format.",
    "numpy.lib.npyio.",
    "numpy.lib._npyio_impl.",
    "numpy.lib._datasource.",
    "numpy.ctypeslib.",
    "numpy.f2py.",
    "numpy.distutils.",
    "numpy.testing.",
    "scipy.io.",
    "scipy.datasets.",
    "scipy._lib._testutils.",
    "sklearn.datasets.",  # fetch_* download and unpickle
    "sklearn.externals.",
    "sklearn.utils._testing.",
)
"""Never trusted, though under a trusted prefix."""


ROW_PATH_MAX_ROWS = 64
"""Requests of at most this many raw rows take the row path (features/rowpath.py). Measured with
bench/transform_row.py: the row path costs ~4.5 us a row on iris and ~9 on diabetes (7 and 12 for
one row), the batch path ~0.65 and ~1.3 ms a request plus ~1.5-3 us a row, so they cross near
200 rows; at 64 the row path is still ~2.5x faster, and a request it hands back (OffRowPath, then
the batch path) wastes little."""


class ArtifactError(Exception):
    """A model file that must not be served: wrong digest, untrusted types or unreadable."""


class FeatureError(ValueError):
    """Request rows that do not fit the FeatureSet's schema (the caller's input is wrong)."""


class FeatureStep(BaseEstimator, TransformerMixin):  # type: ignore[misc]
    """Raw request rows → the model's feature matrix, with the FeatureSet's fitted transforms.

    Stateless at `fit()`: the transforms were fitted when the snapshot was materialized.
    `transform()` accepts a list of dict rows (JSON values, by source or feature column name), a
    pyarrow Table of raw columns, or the snapshot's already-transformed numeric matrix (an
    ndarray as wide as `feature_names_out`), which passes through unchanged.
    """

    def __init__(self, schema: dict | None = None, transforms: dict | None = None) -> None:
        self.schema = schema  # the FeatureSchema, wire form (camelCase)
        self.transforms = transforms  # the snapshot's FittedTransforms.to_json()

    def fit(self, X: Any, y: Any = None) -> FeatureStep:
        self._parsed()  # fail at fit, not at the first request, when the JSON is unusable
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def transform(self, X: Any) -> np.ndarray:
        return self.matrix(X)

    def matrix(self, X: Any) -> np.ndarray:
        """`transform()` without scikit-learn's set_output wrapper around it (microseconds a
        call: the server's single-row path calls this)."""
        schema, fitted = self._parsed()
        if _is_records(X):
            if 0 < len(X) <= ROW_PATH_MAX_ROWS and (features := _row_features(X, schema, fitted)):
                return features.matrix
            return _features(rows_to_batch(X, schema), schema, fitted)
        if isinstance(X, pa.Table) and (matrix := _lane_features(X, schema, fitted)) is not None:
            return matrix
        if isinstance(X, pa.RecordBatch | pa.Table):
            return _features(X, schema, fitted)
        width = len(fitted.feature_columns)
        if isinstance(X, np.ndarray):
            if X.ndim == 2 and X.shape[1] == width and np.issubdtype(X.dtype, np.number):
                return X
            raise FeatureError(
                f"an array given to the model must be the transformed feature matrix of "
                f"{width} numeric columns ({', '.join(fitted.feature_columns)}); got shape "
                f"{X.shape} of {X.dtype}. Send raw rows as a list of objects instead"
            )
        raise FeatureError(
            f"the model takes a list of rows (objects keyed by column name), a pyarrow "
            f"Table or the transformed feature matrix; got {type(X).__name__}"
        )

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.feature_names_out, dtype=object)

    @property
    def feature_names_out(self) -> list[str]:
        """The model's input columns, in order."""
        return list(self._parsed()[1].feature_columns)

    def _parsed(self) -> tuple[FeatureSchema, FittedTransforms]:
        cache = self.__dict__.get("_cache")
        if cache is None or cache[0] is not self.schema or cache[1] is not self.transforms:
            if self.schema is None or self.transforms is None:
                raise ValueError(
                    "FeatureStep needs the FeatureSet schema (wire dict) and the fitted "
                    "transforms (FittedTransforms.to_json()); build it with build_pipeline()"
                )
            parsed = (
                FeatureSchema.model_validate(self.schema),
                FittedTransforms.from_json(self.transforms),
            )
            cache = (self.schema, self.transforms, parsed)
            self.__dict__["_cache"] = cache
        return cache[2]

    def __getstate__(self) -> dict[str, Any]:
        # The parsed objects are rebuilt from the JSON after loading; saving them would put
        # pydantic and conveyor.features types into the model file.
        state = super().__getstate__()
        state.pop("_cache", None)
        return state


def _is_records(X: Any) -> bool:
    """A sequence of mappings; the server's list of dicts is recognised first (the ABC checks
    cost a microsecond a request)."""
    if type(X) is list and all(type(row) is dict for row in X):
        return True
    return isinstance(X, Sequence) and all(isinstance(row, Mapping) for row in X)


class _RowFeatures(NamedTuple):
    matrix: np.ndarray


def _row_features(
    rows: Sequence[Mapping[str, Any]], schema: FeatureSchema, fitted: FittedTransforms
) -> _RowFeatures | None:
    """The row path's matrix, equal to the batch path's, errors included; None when this request
    (or this FeatureSet) must take the batch path."""
    path = fitted.row_path(schema)
    if path is None:
        return None
    try:
        return _RowFeatures(path.features(rows))
    except OffRowPath:
        return None
    except RowsRejected as error:
        raise _rejected(error.rejected, error.total, error.reasons) from None
    except NonFiniteResult as error:
        raise _non_finite(error) from error


def _lane_features(
    table: pa.Table, schema: FeatureSchema, fitted: FittedTransforms
) -> np.ndarray | None:
    """The batch path's matrix of a table of finite numbers, from the numeric lane; None when
    this table (or this FeatureSet) must take the batch path."""
    path = fitted.row_path(schema)
    if path is None or path.lane is None:
        return None
    return path.lane.table_features(table)


def _rejected(rejected: int, total: int, reasons: list[str]) -> FeatureError:
    return FeatureError(
        f"{rejected} of {total} row(s) break the FeatureSet schema: {'; '.join(reasons)}"
    )


def _non_finite(error: NonFiniteResult) -> FeatureError:
    # The reasons materialization gives such a row's reject.
    return FeatureError(f"{error}; such rows are rejected at materialization too")


def _features(raw: pa.RecordBatch | pa.Table, schema: FeatureSchema, fitted: FittedTransforms):
    result = conform(raw, schema, serving=True)
    if result.rejected:
        reasons = [sample.reason for sample in result.samples[:5]]
        raise _rejected(result.rejected, raw.num_rows, reasons)
    try:
        table = fitted.apply(result.batch, serving=True)
    except NonFiniteResult as error:
        raise _non_finite(error) from error
    columns = []
    for name in fitted.feature_columns:
        column = table.column(name)
        if not (
            pa.types.is_integer(column.type)
            or pa.types.is_floating(column.type)
            or pa.types.is_boolean(column.type)
            or pa.types.is_null(column.type)
        ):
            raise FeatureError(
                f"feature column {name!r} is of type {column.type} after the transforms; "
                "a model needs numbers: add an oneHot or ordinal transform to the FeatureSet"
            )
        # Unsafe: an int beyond 2**53 becomes the nearest float, as numpy makes it.
        floats = pc.cast(column, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        columns.append(np.asarray(floats, dtype=np.float64))
    if not columns:
        return np.empty((table.num_rows, 0), dtype=np.float64)
    return np.column_stack(columns)


def build_pipeline(estimator: Any, *, schema: dict, transforms: dict) -> Pipeline:
    """The model to train and serve: the FeatureSet's transforms, then the estimator."""
    return Pipeline([("features", FeatureStep(schema, transforms)), ("model", estimator)])


def dump_model(pipeline: Any) -> bytes:
    """The skops file of a fitted pipeline (no pickle anywhere)."""
    return skops.io.dumps(pipeline)


def digest(data: bytes) -> str:
    """The registry's form of a file's digest: "sha256:<64 hex>"."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def model_size(data: bytes) -> int:
    return len(data)


def load_model(data: bytes, *, expected_digest: str, extra_trusted: Sequence[str] = ()) -> Pipeline:
    """The pipeline in `data`, after verifying its digest and that every type is trusted."""
    actual = digest(data)
    if not hmac.compare_digest(actual, expected_digest.strip().lower()):
        raise ArtifactError(
            f"{MODEL_FILE} digest {actual} does not match the registry's {expected_digest}; "
            "refusing to load"
        )
    try:
        named = skops.io.get_untrusted_types(data=data)
    except Exception as error:  # zip, JSON or schema errors: all mean a corrupt file
        raise ArtifactError(f"{MODEL_FILE} is not a readable skops file: {error}") from error
    extra = (*extra_trusted, *plugin_trusted_types())
    refused = sorted(name for name in named if not is_trusted_type(name, extra))
    if refused:
        raise ArtifactError(
            f"{MODEL_FILE} contains type(s) outside the allowlist: {', '.join(refused)}; "
            f"refusing to load (an estimator plugin can declare its types in `trusted_types`)"
        )
    try:
        model = skops.io.loads(data, trusted=list(named))
    except Exception as error:
        raise ArtifactError(f"{MODEL_FILE} could not be loaded: {error}") from error
    if not isinstance(model, Pipeline):
        raise ArtifactError(
            f"{MODEL_FILE} holds a {type(model).__name__}, not a scikit-learn Pipeline"
        )
    return model


def is_trusted_type(name: str, extra: Sequence[str] = ()) -> bool:
    """Whether a fully qualified type name (as skops reports it) may be loaded."""
    if name in TRUSTED_TYPES or name in extra:
        return True
    if name.startswith(DENIED_MODULE_PREFIXES):
        return False
    return name.startswith(TRUSTED_MODULE_PREFIXES)


@functools.cache
def plugin_trusted_types() -> tuple[str, ...]:
    """The estimator classes registered by installed plugins, and the types they declare."""
    names: list[str] = []
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry_point.load()
        except Exception as error:  # a broken plugin must not stop other models from loading
            logger.warning("Estimator plugin %s cannot be loaded: %s", entry_point.name, error)
            continue
        if isinstance(loaded, type):
            names.append(f"{loaded.__module__}.{loaded.__qualname__}")
        names.extend(str(name) for name in getattr(loaded, "trusted_types", ()))
    return tuple(names)
