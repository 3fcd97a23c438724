"""Requests in, answers out: the Open Inference Protocol V2 and raw records, checked strictly.

V2 inputs are one tensor per raw input column of the FeatureSet schema (the columns the
FeatureStep reads), named as the schema names them, of shape [N] or [N, 1] — the protocol's
batch of N rows — with the datatype of the column's type: FP64 for float (any FP or INT type is
taken), INT64 for int (any INT or UINT type), BOOL for bool, BYTES for category, string and
timestamp (ISO 8601 text). `null` is taken as a missing value (the schema's nullability
decides). The entity key and event time are optional; the target is no input. The columns are
turned into raw records, which the pipeline's FeatureStep then reads as it reads `/predict`'s.

What is wrong and where, in the status a client can act on:
- 400: the request is not a well-formed V2 or records request (invalid JSON, a missing or
  unknown field or input, a shape that does not match its data, a datatype that does not fit
  the column, a value not of its datatype, batch sizes that disagree, an unknown output);
- 415: a body that is not JSON (V2's binary tensor extension is not served);
- 422: a well-formed request whose rows do not fit the model's FeatureSet schema: a missing or
  unknown field in a record, a value of the wrong JSON type, and (raised by the FeatureStep)
  a value out of range, outside the categories, or null where the column is not nullable.
Every message names the field (`inputs[1] ('petal_width_cm').data[0]`, `instances[2].x`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import orjson

from .model import ModelInput, Prediction, ServedModel, tensor_datatype

__all__ = [
    "RequestError",
    "Signature",
    "V2Request",
    "parse_json",
    "predict_response",
    "records_from_instances",
    "records_from_v2",
    "v2_response",
]

_INTS = ("INT8", "INT16", "INT32", "INT64")
_UINTS = ("UINT8", "UINT16", "UINT32", "UINT64")
_FLOATS = ("FP16", "FP32", "FP64")
DATATYPES = ("BOOL", *_UINTS, *_INTS, *_FLOATS, "BYTES")
_ACCEPTED = {
    "float": frozenset((*_FLOATS, *_INTS, *_UINTS)),
    "int": frozenset((*_INTS, *_UINTS)),
    "bool": frozenset(("BOOL",)),
    "category": frozenset(("BYTES",)),
    "string": frozenset(("BYTES",)),
    "timestamp": frozenset(("BYTES",)),
}
_V2_FIELDS = frozenset(("id", "parameters", "inputs", "outputs"))
_INPUT_FIELDS = ("name", "shape", "datatype", "data")


class RequestError(Exception):
    """A request the server refuses: `status` and a message naming the field to fix; `close`:
    the connection closes after the answer."""

    def __init__(self, status: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close


def _is_number(value: Any) -> bool:
    return type(value) is float or type(value) is int  # bool is no number here


def _is_int(value: Any) -> bool:
    return type(value) is int


def _is_bool(value: Any) -> bool:
    return type(value) is bool


def _is_text(value: Any) -> bool:
    return type(value) is str


# What a JSON value of a column type (records) or a V2 datatype (tensors) must be.
_COLUMN_VALUES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "float": (_is_number, "a number"),
    "int": (_is_int, "an integer"),
    "bool": (_is_bool, "true or false"),
    "category": (_is_text, "a string"),
    "string": (_is_text, "a string"),
    "timestamp": (_is_text, "an ISO 8601 timestamp string"),
}


def _datatype_values(datatype: str) -> tuple[Callable[[Any], bool], str]:
    if datatype in _FLOATS:
        return _is_number, "a number"
    if datatype in _INTS:
        return _is_int, "an integer"
    if datatype in _UINTS:
        return (lambda value: type(value) is int and value >= 0), "a non-negative integer"
    if datatype == "BOOL":
        return _is_bool, "true or false"
    return _is_text, "a string"


# The same rules as types, over a whole tensor at once: the happy path's check.
_NONE = type(None)
_TENSOR_TYPES: dict[str, frozenset[type]] = {
    **dict.fromkeys(_FLOATS, frozenset({float, int, _NONE})),  # bool is no number here
    **dict.fromkeys(_INTS, frozenset({int, _NONE})),
    "BOOL": frozenset({bool, _NONE}),
    "BYTES": frozenset({str, _NONE}),
}  # UINTs take the checked path, which also refuses negative values
_ONE_ROW = ([1], [1, 1])  # the shapes of a one-row tensor


class Signature:
    """What a model takes, indexed for checking requests quickly."""

    def __init__(self, model: ServedModel) -> None:
        self.inputs: tuple[ModelInput, ...] = model.inputs
        self.by_name = {item.name: item for item in self.inputs}
        self.record_keys: dict[str, ModelInput] = dict(self.by_name)
        self.record_keys.update({item.source: item for item in self.inputs if item.source})
        self.required = tuple(item for item in self.inputs if item.required)
        self.checks = tuple((item, *_COLUMN_VALUES[item.column_type]) for item in self.inputs)
        self.datatypes = {item.name: _ACCEPTED[item.column_type] for item in self.inputs}
        self.quick_types = {  # (input, datatype) → the types its values may have
            (item.name, datatype): _TENSOR_TYPES[datatype]
            for item in self.inputs
            for datatype in _ACCEPTED[item.column_type]
            if datatype in _TENSOR_TYPES
        }
        self.target = model.schema.target
        self.outputs = tuple(output["name"] for output in model.outputs)
        self.names = ", ".join(item.name for item in self.inputs)


class V2Request(NamedTuple):
    columns: dict[str, list[Any]]
    """Input name → its values, one per row (as the tensors carry them)."""
    rows: int
    outputs: tuple[str, ...] | None
    """The outputs asked for; None: all of them."""
    id: str | None

    def records(self) -> list[dict[str, Any]]:
        """The rows as raw records, as `/predict` takes them."""
        names = list(self.columns)
        rows = zip(*self.columns.values(), strict=True)
        return [dict(zip(names, values, strict=True)) for values in rows]


def parse_json(body: bytes) -> Any:
    if not body:
        raise RequestError(400, "The request body is empty; send a JSON object.")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise RequestError(400, f"The request body is not valid JSON: {error}.") from None


# -- raw records (`POST /predict`) ---------------------------------------------------------------


def records_from_instances(payload: Any, signature: Signature) -> list[dict[str, Any]]:
    """The rows of `{"instances": [{...}, ...]}`, each checked against the model's inputs."""
    if type(payload) is not dict:
        raise RequestError(
            400, f'The body must be a JSON object {{"instances": [...]}}, not {_describe(payload)}.'
        )
    if len(payload) != 1 or "instances" not in payload:
        extra = sorted(set(payload) - {"instances"})
        problems = [f"unknown field(s) {', '.join(map(repr, extra))}"] if extra else []
        problems += [] if "instances" in payload else ["no 'instances'"]
        problem = " and ".join(problems)
        raise RequestError(
            400, f'The body has {problem}; send {{"instances": [{{...}}, ...]}}, one object a row.'
        )
    instances = payload["instances"]
    if type(instances) is not list or not instances:
        raise RequestError(
            400,
            f"'instances' must be a non-empty array of row objects, not {_describe(instances)}.",
        )
    for index, record in enumerate(instances):
        _check_record(index, record, signature)
    return instances


def _check_record(index: int, record: Any, signature: Signature) -> None:
    if type(record) is not dict:
        raise RequestError(
            400,
            f"instances[{index}] must be an object of column values, not {_describe(record)}.",
        )
    keys = signature.record_keys
    for key in record:
        if key not in keys:
            raise RequestError(422, _unknown_field(f"instances[{index}].{key}", key, signature))
    for item, valid, what in signature.checks:
        if item.source is not None and item.source in record:
            value, key = record[item.source], item.source
        elif item.name in record:
            value, key = record[item.name], item.name
        elif item.required:
            raise RequestError(
                422,
                f"instances[{index}].{item.name} is missing: every row gives each of the "
                f"model's inputs ({signature.names}); send null for an unknown value.",
            )
        else:
            continue
        if value is not None and not valid(value):
            raise RequestError(
                422,
                f"instances[{index}].{key}: {_describe(value)} is not {what}; the column "
                f"{item.name!r} is of type {item.column_type}.",
            )


def _unknown_field(where: str, key: str, signature: Signature) -> str:
    if key == signature.target:
        return f"{where}: {key!r} is the model's target, not an input; leave it out."
    return f"{where}: the model has no input {key!r}; its inputs are {signature.names}."


# -- Open Inference Protocol V2 (`POST /v2/models/<name>[/versions/<v>]/infer`) -----------------


def records_from_v2(payload: Any, signature: Signature) -> V2Request:
    """The rows of a V2 inference request (see the module docstring for its layout)."""
    if type(payload) is not dict:
        raise RequestError(
            400, f"A V2 inference request is a JSON object, not {_describe(payload)}."
        )
    if not _V2_FIELDS.issuperset(payload):
        extra = sorted(set(payload) - _V2_FIELDS)
        raise RequestError(
            400,
            f"Unknown field(s) {', '.join(map(repr, extra))} in the request; a V2 inference "
            "request has id, parameters, inputs and outputs.",
        )
    request_id = payload.get("id")
    if request_id is not None and type(request_id) is not str:
        raise RequestError(400, f"'id' must be a string, not {_describe(request_id)}.")
    inputs = payload.get("inputs")
    if type(inputs) is not list or not inputs:
        raise RequestError(
            400,
            f"'inputs' must be a non-empty array of tensors, one per input ({signature.names}); "
            f"got {_describe(inputs)}.",
        )
    columns, rows = _columns(inputs, signature)
    missing = [item.name for item in signature.required if item.name not in columns]
    if missing:
        raise RequestError(
            400,
            f"Missing input(s) {', '.join(map(repr, missing))}: send one tensor per input "
            f"({signature.names}).",
        )
    outputs = _requested_outputs(payload.get("outputs"), signature)
    return V2Request(columns, rows, outputs, request_id)


def _columns(inputs: list[Any], signature: Signature) -> tuple[dict[str, list[Any]], int]:
    """Input name → its values, and the number of rows, of the request's tensors."""
    columns: dict[str, list[Any]] = {}
    rows = -1
    quick_types = signature.quick_types
    for position, tensor in enumerate(inputs):
        # The happy path inline (a call a tensor costs ~5% of a single-row request): a flat
        # tensor of a known input, of its datatype's values; `_tensor` takes apart anything else.
        try:
            name, values, shape = tensor["name"], tensor["data"], tensor["shape"]
            types = quick_types[name, tensor["datatype"]]
        except (TypeError, KeyError):
            types = None
        quick = False
        if types is not None and type(values) is list:
            count = len(values)
            if count == 1:
                quick = shape in _ONE_ROW and type(values[0]) in types
            else:
                quick = count > 1 and shape in ([count], [count, 1])
                quick = quick and types.issuperset(map(type, values))
            quick = quick and type(shape[0]) is int and type(shape[-1]) is int  # not [1.0]
        if not quick:
            name, values = _tensor(position, tensor, signature)
            count = len(values)
        if name in columns:
            where = f"inputs[{position}] ({name!r})"
            raise RequestError(400, f"{where}: the input {name!r} is given twice.")
        if count != rows and rows >= 0:
            where, first = f"inputs[{position}] ({name!r})", f"inputs[0] ({inputs[0]['name']!r})"
            raise RequestError(400, f"{where}: a batch of {count} row(s), but {first} has {rows}.")
        columns[name] = values
        rows = count
    return columns, rows


def _tensor(position: int, tensor: Any, signature: Signature) -> tuple[str, list[Any]]:
    """One input tensor's name and its values (one per row), checked."""
    where = f"inputs[{position}]"
    if type(tensor) is not dict:
        raise RequestError(400, f"{where} must be a tensor object, not {_describe(tensor)}.")
    for field in _INPUT_FIELDS:
        if field not in tensor:
            raise RequestError(
                400, f"{where}.{field} is missing: a tensor has name, shape, datatype and data."
            )
    name = tensor["name"]
    if type(name) is not str:
        raise RequestError(400, f"{where}.name must be a string, not {_describe(name)}.")
    item = signature.by_name.get(name)
    if item is None:
        raise RequestError(
            400, f"{where}.name: the model has no input {name!r}; its inputs are {signature.names}."
        )
    where = f"{where} ({name!r})"
    datatype = tensor["datatype"]
    if datatype not in DATATYPES:
        raise RequestError(
            400,
            f"{where}.datatype: {_describe(datatype)} is not a V2 datatype "
            f"({', '.join(DATATYPES)}).",
        )
    if datatype not in _ACCEPTED[item.column_type]:
        raise RequestError(
            400,
            f"{where}.datatype: {datatype} does not fit the {item.column_type} column "
            f"{name!r}; send {item.datatype}.",
        )
    rows = _rows(where, tensor["shape"])
    values = _flat(where, tensor["data"], rows)
    valid, what = _datatype_values(datatype)
    for index, value in enumerate(values):
        if value is not None and not valid(value):
            raise RequestError(
                400, f"{where}.data[{index}]: {_describe(value)} is not {what} ({datatype})."
            )
    return name, values


def _rows(where: str, shape: Any) -> int:
    if (
        type(shape) is not list
        or not 1 <= len(shape) <= 2
        or not all(type(size) is int for size in shape)
        or (len(shape) == 2 and shape[1] != 1)
    ):
        raise RequestError(
            400,
            f"{where}.shape: {_describe(shape)} is not a batch of single values; send [N] or "
            "[N, 1] for N rows.",
        )
    if shape[0] < 1:
        raise RequestError(400, f"{where}.shape: {shape} has no rows; send at least one.")
    return int(shape[0])


def _flat(where: str, data: Any, rows: int) -> list[Any]:
    if type(data) is not list:
        raise RequestError(400, f"{where}.data must be an array, not {_describe(data)}.")
    if any(type(value) is list for value in data):  # the natural [[v], [v], ...] layout
        if not all(type(value) is list and len(value) == 1 for value in data):
            raise RequestError(
                400, f"{where}.data: nested arrays must hold one value each (shape [N, 1])."
            )
        data = [value[0] for value in data]
    if len(data) != rows:
        raise RequestError(
            400, f"{where}: the shape says {rows} value(s), but data holds {len(data)}."
        )
    return data


def _requested_outputs(outputs: Any, signature: Signature) -> tuple[str, ...] | None:
    if outputs is None:
        return None
    if type(outputs) is not list:
        raise RequestError(400, f"'outputs' must be an array, not {_describe(outputs)}.")
    names: list[str] = []
    for position, output in enumerate(outputs):
        name = output.get("name") if type(output) is dict else None
        if name not in signature.outputs:
            raise RequestError(
                400,
                f"outputs[{position}].name: {_describe(name)} is not an output of the model; "
                f"its outputs are {', '.join(signature.outputs)}.",
            )
        names.append(str(name))
    return tuple(names)


# -- answers -------------------------------------------------------------------------------------


def v2_response(
    model: ServedModel, prediction: Prediction, request_id: str, outputs: Sequence[str] | None
) -> bytes:
    labels = prediction.labels
    tensors: list[Mapping[str, Any]] = []
    if outputs is None or "predict" in outputs:
        tensors.append(
            {
                "name": "predict",
                "datatype": tensor_datatype(labels),
                "shape": [len(labels)],
                "data": labels.tolist(),
            }
        )
    probabilities = prediction.probabilities
    if probabilities is not None and (outputs is None or "predict_proba" in outputs):
        tensors.append(
            {
                "name": "predict_proba",
                "datatype": tensor_datatype(probabilities),
                "shape": list(probabilities.shape),
                "data": np.ascontiguousarray(probabilities).ravel(),
            }
        )
    answer = {
        "model_name": model.name,
        "model_version": model.version,
        "id": request_id,
        "outputs": tensors,
    }
    return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)


def predict_response(model: ServedModel, prediction: Prediction, request_id: str) -> bytes:
    answer: dict[str, Any] = {
        "model_name": model.name,
        "model_version": model.version,
        "request_id": request_id,
        "predictions": prediction.labels.tolist(),
    }
    if prediction.probabilities is not None:
        answer["probabilities"] = np.ascontiguousarray(prediction.probabilities)
        answer["classes"] = model.classes
    return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)


def _describe(value: Any) -> str:
    """A value as a message quotes it: its JSON text, cut short."""
    if value is None:
        return "null"
    if type(value) is dict:
        return "an object"
    if type(value) is list and not value:
        return "an empty array"
    if type(value) is list and all(type(item) in (str, int, float, bool) for item in value[:8]):
        text = orjson.dumps(value[:8]).decode()
        return text if len(text) <= 60 and len(value) <= 8 else f"an array of {len(value)} items"
    if type(value) is list:
        return f"an array of {len(value)} items"
    text = orjson.dumps(value).decode() if type(value) in (str, int, float, bool) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
