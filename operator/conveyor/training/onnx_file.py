"""The ONNX file of a model version: its interface, and loading it safely.

The file (`ONNX_FILE`, beside the skops file) holds what follows the pipeline's feature step
(training/onnx.py exports it):

    input    "features"       double [N, F]  the FeatureStep's output: every feature column of the
                                             snapshot, in the card's `feature_columns` order
    outputs  "label"          [N]            classifiers: what `predict` gives (int64 or string)
             "probabilities"  float [N, C]   classifiers with `predict_proba`; columns in the
                                             order of the card's `onnx.classes`
             "prediction"     float [N, 1]   regressors: what `predict` gives

`load_onnx()` verifies the sha256 digest, parses the protobuf (which builds no Python objects,
unlike pickle), and refuses operators outside the standard domains (ai.onnx, ai.onnx.ml: no
custom operators, no local functions), tensors stored as external data (a path onnxruntime
would read) and any other interface, all before onnxruntime sees the file.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator

import onnx
import onnxruntime as ort

from .artifacts import ArtifactError, digest

__all__ = [
    "ALLOWED_DOMAINS",
    "INPUT_NAME",
    "LABEL_OUTPUT",
    "ONNX_FILE",
    "PREDICTION_OUTPUT",
    "PROBABILITIES_OUTPUT",
    "describe_error",
    "load_onnx",
    "open_onnx",
    "session_options",
]

ONNX_FILE = "model.onnx"
INPUT_NAME = "features"
LABEL_OUTPUT = "label"
PROBABILITIES_OUTPUT = "probabilities"
PREDICTION_OUTPUT = "prediction"
ALLOWED_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
"""Operator domains a served ONNX file may use: the standard ones, which onnxruntime implements."""
_REASON_CHARACTERS = 400  # skl2onnx's and onnxruntime's messages can print whole trees


def session_options(threads: int = 1) -> ort.SessionOptions:
    """onnxruntime settings for one model: `threads` for its operators, errors-only logging."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads
    options.log_severity_level = 3  # onnxruntime's notices (unused initializers) are noise here
    return options


def load_onnx(
    data: bytes, *, expected_digest: str, options: ort.SessionOptions | None = None
) -> ort.InferenceSession:
    """An onnxruntime session of the ONNX file `data`, after verifying its digest, that it is a
    valid ONNX model of standard operators only, and that it has the interface above."""
    actual = digest(data)
    if not hmac.compare_digest(actual, expected_digest.strip().lower()):
        raise ArtifactError(
            f"{ONNX_FILE} digest {actual} does not match the registry's {expected_digest}; "
            "refusing to load"
        )
    return open_onnx(data, options=options)


def open_onnx(data: bytes, *, options: ort.SessionOptions | None = None) -> ort.InferenceSession:
    """`load_onnx` for bytes whose digest the caller verified already (a server that told a
    wrong digest apart from an unreadable file): every check but the digest."""
    try:
        model = onnx.load_model_from_string(data)
    except Exception as error:  # protobuf's decode error: a corrupt file
        raise ArtifactError(f"{ONNX_FILE} is not an ONNX model: {describe_error(error)}") from error
    unsafe = _unsafe_parts(model)
    if unsafe:
        raise ArtifactError(f"{ONNX_FILE} refused: {'; '.join(unsafe)}")
    try:
        onnx.checker.check_model(model)
    except Exception as error:
        raise ArtifactError(
            f"{ONNX_FILE} is not a valid ONNX model: {describe_error(error)}"
        ) from error
    wrong = _interface_problems(model)
    if wrong:
        raise ArtifactError(f"{ONNX_FILE} refused: {'; '.join(wrong)}")
    try:
        return ort.InferenceSession(
            data, sess_options=options or session_options(), providers=["CPUExecutionProvider"]
        )
    except Exception as error:
        raise ArtifactError(
            f"onnxruntime cannot load {ONNX_FILE}: {describe_error(error)}"
        ) from error


def _unsafe_parts(model: onnx.ModelProto) -> list[str]:
    problems = []
    domains = {entry.domain for entry in model.opset_import} - ALLOWED_DOMAINS
    if domains:
        problems.append(f"it imports operator domain(s) {', '.join(sorted(domains))}")
    if model.functions:
        problems.append(f"it defines {len(model.functions)} local function(s)")
    custom = sorted(
        {node.op_type for node in _nodes(model.graph) if node.domain not in ALLOWED_DOMAINS}
    )
    if custom:
        problems.append(f"it uses custom operator(s) {', '.join(custom)}")
    if any(_is_external(tensor) for tensor in _tensors(model.graph)):
        problems.append("it stores tensors as external data (files onnxruntime would read)")
    return problems


def _interface_problems(model: onnx.ModelProto) -> list[str]:
    inputs = [(item.name, item.type.tensor_type.elem_type) for item in model.graph.input]
    if inputs != [(INPUT_NAME, onnx.TensorProto.DOUBLE)]:
        return [f"its inputs are {inputs}, not one double tensor named {INPUT_NAME!r}"]
    outputs = {item.name for item in model.graph.output}
    if outputs not in ({PREDICTION_OUTPUT}, {LABEL_OUTPUT}, {LABEL_OUTPUT, PROBABILITIES_OUTPUT}):
        return [
            f"its outputs {sorted(outputs)} are not a label (and probabilities) or a prediction"
        ]
    return []


def _nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    for node in graph.node:
        yield node
        for subgraph in _subgraphs(node):
            yield from _nodes(subgraph)


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    yield from (sparse.values for sparse in graph.sparse_initializer)
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
        for subgraph in _subgraphs(node):
            yield from _tensors(subgraph)


def _subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    """The bodies of control-flow operators (If, Loop, Scan)."""
    for attribute in node.attribute:
        if attribute.HasField("g"):
            yield attribute.g
        yield from attribute.graphs


def _is_external(tensor: onnx.TensorProto) -> bool:
    return tensor.data_location == onnx.TensorProto.EXTERNAL or bool(tensor.external_data)


def describe_error(error: BaseException) -> str:
    """One line for a reason in a card or an error: the type and the first line of the message."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    text = f"{type(error).__name__}: {first}" if first else type(error).__name__
    return text if len(text) <= _REASON_CHARACTERS else text[: _REASON_CHARACTERS - 3] + "..."
