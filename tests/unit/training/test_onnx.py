"""The ONNX export: every allowlisted estimator either answers as scikit-learn does through its
ONNX file, or gets no file and a card that says why."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from sklearn.base import is_classifier
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, make_classification, make_regression
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from conveyor.api.v1alpha1.featureset import FeatureSetSpec
from conveyor.features.conform import conform
from conveyor.features.transforms import fit_transforms
from conveyor.training.artifacts import build_pipeline, digest
from conveyor.training.estimators import build_estimator, list_estimators, resolve_estimator
from conveyor.training.onnx import (
    PROBABILITY_TOLERANCE,
    REGRESSION_TOLERANCE,
    OnnxExport,
    export_onnx,
)
from conveyor.training.onnx_file import INPUT_NAME, load_onnx
from tests.unit.training.test_artifacts import Iris

# Fitting, not exporting, warns here (an MLP's iterations, SVC's deprecated `probability`).
pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.filterwarnings("ignore:.*probability.*:FutureWarning"),
]


@dataclass(frozen=True)
class Dataset:
    """A snapshot's feature matrix split as the trainer splits it, with the FeatureSet that
    made it (the served pipeline's feature step)."""

    name: str
    schema: dict[str, Any]
    transforms: dict[str, Any]
    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray


@functools.cache
def dataset(name: str) -> Dataset:
    """iris: the iris FeatureSet's own transforms, string labels. diabetes: 10 features,
    regression. classes20 / values20: 20 synthetic features, binary classes / regression."""
    if name == "iris":
        iris = Iris()
        return _split(name, iris.schema, iris.transforms, iris.X, iris.y, stratify=True)
    if name == "diabetes":
        x, y = load_diabetes(return_X_y=True)
    elif name == "classes20":
        x, y = make_classification(400, 20, n_informative=8, n_redundant=0, random_state=0)
    else:
        x, y = make_regression(400, 20, n_informative=10, noise=5.0, random_state=0)
    schema, transforms = _numeric_featureset(x, y, classes=name == "classes20")
    return _split(name, schema, transforms, x, y, stratify=name == "classes20")


def _split(name: str, schema: Any, transforms: Any, x: Any, y: Any, *, stratify: bool) -> Dataset:
    parts = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y if stratify else None)
    return Dataset(name, schema, transforms, *parts)


def _numeric_featureset(x: np.ndarray, y: np.ndarray, *, classes: bool) -> tuple[dict, dict]:
    """A FeatureSet of float columns x00.. and a target, materialized without transforms."""
    names = [f"x{i:02d}" for i in range(x.shape[1])]
    spec = FeatureSetSpec.model_validate(
        {
            "sources": [{"name": "rows", "uri": "s3://conveyor-raw/rows/*.csv"}],
            "schema": {
                "target": "y",
                "columns": [
                    *({"name": name, "type": "float"} for name in names),
                    {"name": "y", "type": "int" if classes else "float"},
                ],
            },
        }
    )
    table = pa.table({**dict(zip(names, x.T, strict=True)), "y": y})
    batch = conform(table, spec.schema_).batch
    return spec.schema_.to_wire(), fit_transforms(spec, lambda: [batch]).to_json()


CLASSIFICATION = ("iris", "classes20")
REGRESSION = ("diabetes", "values20")

PARAMS: dict[str, dict[str, Any]] = {
    "CCA": {"n_components": 1},
    "PLSCanonical": {"n_components": 1},
    "MLPClassifier": {"max_iter": 500},
    "MLPRegressor": {"max_iter": 500},
    "LogisticRegressionCV": {
        "l1_ratios": [0.0],
        "scoring": "accuracy",
        "use_legacy_attributes": False,
    },
    "QuadraticDiscriminantAnalysis": {"reg_param": 0.01},
}
"""Parameters some estimators need to fit these datasets at all."""

ADAPT: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    # Counts, as a oneHot or a bucketing transform would give them.
    "MultinomialNB": lambda x: np.abs(np.round(x)),
    "ComplementNB": lambda x: np.abs(np.round(x)),
    "CategoricalNB": lambda x: np.abs(np.round(x)),
}
POSITIVE_TARGET = {"GammaRegressor", "PoissonRegressor", "TweedieRegressor"}
ONE_FEATURE = {"IsotonicRegression"}  # spec.features picks one column: the `select` step

NO_CONVERTER = {
    "CCA",
    "DummyClassifier",
    "DummyRegressor",
    "IsotonicRegression",
    "KernelRidge",
    "LabelPropagation",
    "LabelSpreading",
    "NearestCentroid",
    "PLSCanonical",
    "TransformedTargetRegressor",
}
"""Estimators of the allowlist skl2onnx 1.20 has no converter for."""

FALLBACKS: dict[tuple[str, str], str] = {
    # skl2onnx implements only the binary case, and that with a custom (com.microsoft) operator.
    ("GaussianProcessClassifier", "iris"): "Only binary classification",
    ("GaussianProcessClassifier", "classes20"): "custom operator(s) Solve",
    # No neighbour within the radius: onnxruntime fails where scikit-learn has an answer.
    # A row without neighbours within the radius: scikit-learn raises (classifier) or answers
    # NaN (regressor), onnxruntime indexes out of range.
    ("RadiusNeighborsClassifier", "iris"): "could not be checked: ValueError: No neighbors",
    ("RadiusNeighborsClassifier", "classes20"): "could not be checked: ValueError: No neighbors",
    ("RadiusNeighborsRegressor", "values20"): "could not be checked: InvalidArgument",
    # A category the training rows never had: scikit-learn itself fails on such a row.
    ("CategoricalNB", "classes20"): "could not be checked: IndexError",
    # The label comes out as [1, N], which a server would misread.
    ("QuadraticDiscriminantAnalysis", "iris"): "'label' output has shape (1, 45), not (45,)",
    ("QuadraticDiscriminantAnalysis", "classes20"): "'label' output has shape (1, 120)",
    # Thresholds rounded to float32 send 2 of 133 rows down other branches.
    ("HistGradientBoostingRegressor", "diabetes"): "predictions differ by up to 0.0073",
    # The binary case's probabilities are off.
    ("LinearDiscriminantAnalysis", "classes20"): "probabilities differ by up to 0.15",
}
"""Where a converter exists but its ONNX file fails the check, and the reason the card gives."""


def _cases() -> list[tuple[str, str]]:
    return [
        (info.name, name)
        for info in list_estimators()
        for name in (CLASSIFICATION if info.task == "classification" else REGRESSION)
    ]


def train(estimator_name: str, data: Dataset, **params: Any) -> tuple[Pipeline, np.ndarray]:
    """The served pipeline fitted as the trainer fits it, and the holdout rows it is checked on."""
    adapt = ADAPT.get(estimator_name, lambda x: x)
    x_train, x_test, y_train = adapt(data.x_train), adapt(data.x_test), data.y_train
    if estimator_name in POSITIVE_TARGET:
        y_train = y_train - min(y_train.min(), 0) + 1
    info = resolve_estimator(estimator_name)
    estimator = build_estimator(info, {**PARAMS.get(estimator_name, {}), **params}, random_state=0)
    pipeline = build_pipeline(estimator, schema=data.schema, transforms=data.transforms)
    if estimator_name in ONE_FEATURE:
        select = ColumnTransformer([("features", "passthrough", [0])], remainder="drop")
        pipeline.steps.insert(1, ("select", select))
    return pipeline.fit(x_train, y_train), x_test


def assert_answers_as_scikit_learn(exported: OnnxExport, pipeline: Pipeline, rows: Any) -> None:
    """The file, loaded as a server loads it, answers `rows` (the feature matrix) as the skops
    pipeline does: the check in the card, made again here from scratch."""
    assert exported.data is not None, exported.card["reason"]
    session = load_onnx(exported.data, expected_digest=digest(exported.data))
    answers = dict(
        zip(
            [output.name for output in session.get_outputs()],
            session.run(None, {INPUT_NAME: rows}),
            strict=True,
        )
    )
    if not is_classifier(pipeline):
        expected = pipeline.predict(rows)
        scale = np.abs(expected).max()
        assert (
            np.abs(answers["prediction"].ravel() - expected).max() <= REGRESSION_TOLERANCE * scale
        )
        return
    assert answers["label"].tolist() == pipeline.predict(rows).tolist()
    if hasattr(pipeline, "predict_proba"):
        probabilities = pipeline.predict_proba(rows)
        assert np.abs(answers["probabilities"] - probabilities).max() <= PROBABILITY_TOLERANCE
    else:
        assert set(answers) == {"label"}  # decision scores are no probabilities: not served


@pytest.mark.parametrize(("estimator", "data"), _cases())
def test_every_allowlisted_estimator_answers_through_onnx_as_scikit_learn_or_says_why_not(
    estimator: str, data: str
) -> None:
    pipeline, holdout = train(estimator, dataset(data))
    exported = export_onnx(pipeline, holdout)
    card = exported.card
    if estimator in NO_CONVERTER:
        assert exported.data is None and card["exported"] is False
        assert card["reason"] == f"skl2onnx 1.20.0 has no converter for {estimator}"
        assert card["file"] is None and card["parity"] is None
    elif (estimator, data) in FALLBACKS:
        assert exported.data is None and card["exported"] is False and card["file"] is None
        assert FALLBACKS[estimator, data] in card["reason"]
    else:
        assert card["exported"] is True and card["reason"] is None, card["reason"]
        parity = card["parity"]
        assert parity["passed"] is True and parity["rows"] == len(holdout)
        if is_classifier(pipeline):
            assert parity["label_agreement"] == 1.0
        assert_answers_as_scikit_learn(exported, pipeline, holdout)


def test_the_table_above_names_only_allowlisted_estimators() -> None:
    names = {info.name for info in list_estimators()}
    assert names >= NO_CONVERTER
    assert {estimator for estimator, _ in FALLBACKS} <= names - NO_CONVERTER


@pytest.mark.parametrize(
    ("estimator", "params", "data"),
    [
        ("SVC", {"probability": True}, "iris"),
        ("SVC", {"probability": True}, "classes20"),
        ("NuSVC", {"probability": True}, "classes20"),
        ("SGDClassifier", {"loss": "log_loss"}, "iris"),
        ("RandomForestClassifier", {"n_estimators": 100, "max_depth": 10}, "classes20"),
        ("HistGradientBoostingRegressor", {"max_iter": 50}, "values20"),
    ],
)
def test_settings_that_change_the_outputs_convert_too(
    estimator: str, params: dict[str, Any], data: str
) -> None:
    pipeline, holdout = train(estimator, dataset(data), **params)
    exported = export_onnx(pipeline, holdout)
    assert_answers_as_scikit_learn(exported, pipeline, holdout)
    if hasattr(pipeline, "predict_proba"):
        assert exported.card["outputs"] == {"label": "label", "probabilities": "probabilities"}


def test_the_card_names_the_interface_and_the_parity_figures() -> None:
    data = dataset("iris")
    pipeline, holdout = train("LogisticRegression", data, max_iter=500)
    card = export_onnx(pipeline, holdout).card
    assert list(card) == [
        "exported",
        "reason",
        "file",
        "input",
        "outputs",
        "classes",
        "opset",
        "parity",
        "missing_values",
        "answers_missing_values",
    ]
    assert card["file"] == "model.onnx"
    assert card["input"] == {"name": "features", "type": "double", "shape": [None, 5]}
    assert card["outputs"] == {"label": "label", "probabilities": "probabilities"}
    assert card["classes"] == ["setosa", "versicolor", "virginica"]
    assert set(card["opset"]) == {"ai.onnx", "ai.onnx.ml"}
    parity = card["parity"]
    assert parity["rows"] == len(holdout) == 45
    assert parity["label_agreement"] == 1.0
    assert 0 <= parity["max_abs_diff"] <= parity["tolerance"] == PROBABILITY_TOLERANCE

    pipeline, holdout = train("Ridge", dataset("diabetes"))
    card = export_onnx(pipeline, holdout).card
    assert card["outputs"] == {"prediction": "prediction"} and card["classes"] is None
    parity = card["parity"]
    assert parity["label_agreement"] is None
    assert 0 < parity["max_rel_diff"] <= parity["tolerance"] == REGRESSION_TOLERANCE


def test_raw_request_rows_through_the_feature_step_then_onnx_answer_as_the_skops_pipeline() -> None:
    iris = Iris()
    pipeline = iris.pipeline(RandomForestClassifier(n_estimators=20, random_state=0))
    exported = export_onnx(pipeline, iris.X)
    assert exported.data is not None
    session = load_onnx(exported.data, expected_digest=digest(exported.data))
    requests = [{k: v for k, v in row.items() if k != "species"} for row in iris.rows]
    features = pipeline.named_steps["features"].transform(requests)
    labels, probabilities = session.run(None, {"features": features})
    assert labels.tolist() == pipeline.predict(requests).tolist()
    assert np.abs(probabilities - pipeline.predict_proba(requests)).max() <= 1e-6


def test_a_feature_subset_exports_its_select_step_and_takes_every_snapshot_feature() -> None:
    data = dataset("values20")
    pipeline = build_pipeline(
        resolve_and_build("GradientBoostingRegressor"),
        schema=data.schema,
        transforms=data.transforms,
    )
    select = ColumnTransformer([("features", "passthrough", [3, 7, 11])], remainder="drop")
    pipeline.steps.insert(1, ("select", select))
    pipeline.fit(data.x_train, data.y_train)
    exported = export_onnx(pipeline, data.x_test)
    assert exported.card["input"]["shape"] == [None, 20]
    assert_answers_as_scikit_learn(exported, pipeline, data.x_test)


def resolve_and_build(name: str, **params: Any) -> Any:
    return build_estimator(resolve_estimator(name), params, random_state=0)


def test_rows_with_a_missing_value_go_through_onnx_only_where_it_answers_them_alike() -> None:
    data = dataset("classes20")

    def fitted(estimator: Any) -> Pipeline:
        pipeline = build_pipeline(estimator, schema=data.schema, transforms=data.transforms)
        return pipeline.fit(data.x_train, data.y_train)

    # Histogram boosting keeps its learned routing of missing values in ONNX.
    card = export_onnx(fitted(HistGradientBoostingClassifier(random_state=0)), data.x_test).card
    assert card["exported"] is True and card["answers_missing_values"] is True
    assert card["missing_values"]["passed"] is True
    assert card["missing_values"]["rows"] == 16 * 20  # 16 complete rows, one feature blanked each

    # skl2onnx 1.20 sends every missing value of a forest down one branch: exported for
    # complete rows, and the card sends the others to the skops pipeline.
    card = export_onnx(fitted(RandomForestClassifier(random_state=0)), data.x_test).card
    assert card["exported"] is True and card["answers_missing_values"] is False
    assert card["missing_values"]["label_agreement"] < 1.0
    assert "labels differ" in card["missing_values"]["failure"]

    # A linear model takes no missing value at all: the skops pipeline refuses such rows.
    card = export_onnx(fitted(LogisticRegression()), data.x_test).card
    assert card["exported"] is True and card["answers_missing_values"] is False
    assert "scikit-learn refuses missing values" in card["missing_values"]["failure"]


def test_holdout_rows_with_missing_values_are_checked_apart_from_complete_ones() -> None:
    data = dataset("classes20")
    rng = np.random.default_rng(0)
    x_train, x_test = data.x_train.copy(), data.x_test.copy()
    x_train[rng.random(x_train.shape) < 0.02] = np.nan
    x_test[rng.random(x_test.shape) < 0.02] = np.nan
    estimator = RandomForestClassifier(n_estimators=30, random_state=0)
    pipeline = build_pipeline(estimator, schema=data.schema, transforms=data.transforms)
    pipeline.fit(x_train, data.y_train)
    card = export_onnx(pipeline, x_test).card
    complete = int((~np.isnan(x_test).any(axis=1)).sum())
    assert card["exported"] is True and card["parity"]["rows"] == complete < len(x_test)
    assert card["answers_missing_values"] is False
    assert card["missing_values"]["rows"] == len(x_test) - complete + 16 * 20
