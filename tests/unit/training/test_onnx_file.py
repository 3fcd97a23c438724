"""Loading an ONNX file: nothing reaches onnxruntime before its digest, its operators and its
interface are checked."""

from __future__ import annotations

import functools

import numpy as np
import onnx
import onnx.external_data_helper
import onnx.numpy_helper
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from conveyor.training.artifacts import ArtifactError, FeatureStep, digest
from conveyor.training.onnx import export_onnx
from conveyor.training.onnx_file import load_onnx


@functools.cache
def exported() -> bytes:
    """A real export: a logistic regression on iris, as the trainer writes it."""
    x, y = load_iris(return_X_y=True)
    pipeline = Pipeline([("features", FeatureStep()), ("model", LogisticRegression(max_iter=500))])
    pipeline.steps[1][1].fit(x, y)
    data = export_onnx(pipeline, x).data
    assert data is not None
    return data


def model() -> onnx.ModelProto:
    return onnx.load_model_from_string(exported())


def load(changed: onnx.ModelProto) -> None:
    data = changed.SerializeToString()
    load_onnx(data, expected_digest=digest(data))


def test_a_verified_file_loads_and_answers_the_feature_matrix() -> None:
    data = exported()
    session = load_onnx(data, expected_digest=digest(data).upper())  # the digest's case is free
    x, y = load_iris(return_X_y=True)
    labels, probabilities = session.run(None, {"features": x})
    assert (labels == y).mean() > 0.95
    assert probabilities.shape == (150, 3) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-6)
    assert [item.name for item in session.get_inputs()] == ["features"]
    assert session.get_inputs()[0].type == "tensor(double)"


def test_a_wrong_digest_is_refused_before_the_file_is_read() -> None:
    with pytest.raises(ArtifactError, match=r"digest sha256:[0-9a-f]{64} does not match"):
        load_onnx(exported(), expected_digest="sha256:" + "0" * 64)


def test_a_corrupt_file_is_refused() -> None:
    data = exported()[:-100]
    with pytest.raises(ArtifactError, match=r"model\.onnx is not"):
        load_onnx(data, expected_digest=digest(data))


def test_a_custom_operator_is_refused() -> None:
    # What skl2onnx writes for a binary Gaussian process: com.microsoft's Solve, which only
    # onnxruntime's contrib build runs and no standard validates.
    changed = model()
    changed.opset_import.append(onnx.helper.make_opsetid("com.example", 1))
    node = onnx.helper.make_node("Exfiltrate", ["features"], ["sent"], domain="com.example")
    changed.graph.node.append(node)
    with pytest.raises(ArtifactError) as refused:
        load(changed)
    message = str(refused.value)
    assert "operator domain(s) com.example" in message
    assert "custom operator(s) Exfiltrate" in message


def test_local_functions_are_refused() -> None:
    changed = model()
    body = onnx.helper.make_node("Identity", ["x"], ["y"])
    changed.functions.append(
        onnx.helper.make_function("ai.onnx", "Passthrough", ["x"], ["y"], [body], [])
    )
    with pytest.raises(ArtifactError, match="1 local function"):
        load(changed)


def test_tensors_stored_as_external_files_are_refused() -> None:
    changed = model()
    tensor = onnx.numpy_helper.from_array(np.zeros(3, dtype=np.float32), "weights")
    onnx.external_data_helper.set_external_data(tensor, location="weights.bin")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    changed.graph.initializer.append(tensor)
    with pytest.raises(ArtifactError, match="external data"):
        load(changed)


def test_another_interface_is_refused() -> None:
    changed = model()
    changed.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    changed.graph.node[0].input[0] = "features"
    with pytest.raises(ArtifactError, match="not one double tensor named 'features'"):
        load(changed)

    changed = model()
    changed.graph.output[0].name = "classes"
    for node in changed.graph.node:
        node.output[:] = ["classes" if name == "label" else name for name in node.output]
    with pytest.raises(ArtifactError, match=r"outputs \['classes', 'probabilities'\]"):
        load(changed)
