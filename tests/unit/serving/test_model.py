"""The served model: what it refuses to load, the two runtimes agreeing, and the warm-up."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from conveyor.serving.errors import ArtifactUnreadable, WarmupFailed
from conveyor.serving.loading import warm_up
from conveyor.serving.model import ServedModel
from tests.models import TrainedModel, export_onnx, request_row
from tests.unit.serving.conftest import served


@pytest.mark.parametrize("name", ["forest", "logistic"])
def test_onnx_and_scikit_learn_answer_alike_on_every_row(
    name: str, request: pytest.FixtureRequest
) -> None:
    trained: TrainedModel = request.getfixturevalue(name)
    rows = [request_row(row) for row in trained.rows]
    onnx = served(trained, onnx=True).predict(rows)
    sklearn = served(trained, onnx=False).predict(rows)
    assert onnx.labels.tolist() == sklearn.labels.tolist()
    assert onnx.probabilities is not None and sklearn.probabilities is not None
    assert np.allclose(onnx.probabilities, sklearn.probabilities, atol=1e-5)


def test_a_pipeline_without_the_feature_step_is_refused(forest: TrainedModel) -> None:
    scaled = Pipeline([("scale", StandardScaler()), ("model", DummyClassifier())])
    scaled.fit(forest.features, ["a"] * len(forest.features))
    with pytest.raises(
        ArtifactUnreadable, match=r"features \(FeatureStep\).*scale \(StandardScaler\)"
    ):
        ServedModel("flowers", 3, scaled)


def test_an_onnx_file_that_is_not_one_or_does_not_fit_is_refused(
    forest: TrainedModel, ridge: TrainedModel
) -> None:
    with pytest.raises(ArtifactUnreadable, match="the ONNX file cannot be loaded"):
        ServedModel("flowers", 3, forest.pipeline, b"not an onnx file")
    # Not the trainer's interface (float inputs, zipmap): refused by the trainer's own checks.
    estimator = forest.pipeline.named_steps["model"]
    zipped = export_onnx(estimator, forest.features.shape[1], zipmap=True)
    with pytest.raises(ArtifactUnreadable, match=r"not one double tensor named 'features'"):
        ServedModel("flowers", 3, forest.pipeline, zipped)
    # Another model's file: the trainer's interface, but not this pipeline's width.
    assert ridge.onnx is not None and ridge.features.shape[1] != forest.features.shape[1]
    with pytest.raises(ArtifactUnreadable, match=r"but the pipeline's feature step makes 8"):
        ServedModel("flowers", 3, forest.pipeline, ridge.onnx)


def test_the_warm_up_answers_the_sample_row_or_says_why_not(
    forest: TrainedModel, caplog: pytest.LogCaptureFixture
) -> None:
    model = served(forest, onnx=True)
    warm_up(model, forest.card["sample_row"])
    with caplog.at_level(logging.INFO, logger="conveyor.serving.loading"):
        warm_up(model, None)
    assert "No sample_row" in caplog.text and "without a warm-up" in caplog.text

    out_of_range = {**forest.card["sample_row"], "sepal_width_cm": 99.0}
    with pytest.raises(WarmupFailed, match=r"sepal_width_cm: 99\.0 is above max 20"):
        warm_up(model, out_of_range)
    with pytest.raises(WarmupFailed, match=r"instances\[0\]\.garden is missing"):
        warm_up(model, {k: v for k, v in forest.card["sample_row"].items() if k != "garden"})
    with pytest.raises(WarmupFailed, match="must be an object"):
        warm_up(model, [1, 2, 3])
