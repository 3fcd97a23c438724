"""Prediction and feedback log objects (`predictionlog.py`'s format) decoded as columns.

The monitor reads every line of every new log object, so it decodes whole objects at once:
pyarrow's JSON reader (C++, no Python object per line) and, when the lines disagree on a type
pyarrow cannot unify (a column that is a number in one line and text in another), orjson over
the lines with the odd values kept as text. Records a server refused (`error` set, or no
prediction) are left out and counted. An object neither can read raises `UnreadableLog`.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

__all__ = ["Feedback", "Predictions", "UnreadableLog", "decode_feedback", "decode_predictions"]

_TIME = pa.timestamp("us", tz="UTC")
_PARSE = pj.ParseOptions(
    explicit_schema=pa.schema([("request_id", pa.string()), ("time", _TIME)]),
    unexpected_field_behavior="infer",
)
_READ = pj.ReadOptions(block_size=8 << 20)


class UnreadableLog(ValueError):
    """A log object that is not gzip JSON Lines of the expected records."""


@dataclass
class Predictions:
    """The served rows of one prediction log object."""

    request_id: pa.Array
    time_us: np.ndarray
    prediction: pa.Array
    scores: dict[str, np.ndarray]
    """Score of each class (a column per class; NaN where a row has none)."""
    inputs: dict[str, pa.Array]
    """The raw columns asked for; a column no row has is all null."""
    refused: int = 0
    """Records of refused requests, left out."""

    def __len__(self) -> int:
        return len(self.request_id)


@dataclass
class Feedback:
    """The labels of one feedback log object."""

    request_id: pa.Array
    time_us: np.ndarray
    label: pa.Array

    def __len__(self) -> int:
        return len(self.request_id)


def decode_predictions(data: bytes, columns: Collection[str]) -> Predictions:
    """The served rows of a prediction log object, with the raw input `columns`."""
    table = _read(data)
    refused = 0
    served = pc.is_valid(table["prediction"]) if "prediction" in table.column_names else None
    if served is None:
        raise UnreadableLog("the records have no prediction field")
    if "error" in table.column_names:
        served = pc.and_(served, pc.is_null(table["error"]))
    if not pc.all(served).as_py():
        kept = table.filter(served)
        refused, table = len(table) - len(kept), kept
    return Predictions(
        request_id=_flat(table["request_id"]),
        time_us=_micros(table["time"]),
        prediction=_flat(table["prediction"]),
        scores=_scores(table),
        inputs=_inputs(table, columns),
        refused=refused,
    )


def decode_feedback(data: bytes) -> Feedback:
    table = _read(data)
    if "label" not in table.column_names:
        raise UnreadableLog("the records have no label field")
    table = table.filter(pc.is_valid(table["label"]))
    return Feedback(
        request_id=_flat(table["request_id"]),
        time_us=_micros(table["time"]),
        label=_flat(table["label"]),
    )


def _read(data: bytes) -> pa.Table:
    try:
        text = zlib.decompress(data, wbits=31)  # gzip, one C call without the file wrapper
    except zlib.error:
        try:
            text = gzip.decompress(data)  # several gzip members, as `cat` of two objects
        except (OSError, EOFError, zlib.error) as error:
            raise UnreadableLog(f"not gzip: {error}") from error
    if not text.strip():
        return pa.table({"request_id": pa.array([], pa.string()), "time": pa.array([], _TIME)})
    try:
        table = pj.read_json(pa.BufferReader(text), read_options=_READ, parse_options=_PARSE)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        table = _read_lines(text)  # types pyarrow cannot unify, or not JSON at all
    for name in ("request_id", "time"):
        if name not in table.column_names or table[name].null_count:
            raise UnreadableLog(f"a record has no {name}")
    return table


def _read_lines(text: bytes) -> pa.Table:
    """The slow path: orjson per line; a field whose values disagree on a type becomes text."""
    try:
        records = [orjson.loads(line) for line in text.splitlines() if line.strip()]
    except orjson.JSONDecodeError as error:
        raise UnreadableLog(f"not JSON Lines: {error}") from error
    if not all(isinstance(record, dict) for record in records):
        raise UnreadableLog("a line is not a JSON object")
    names = dict.fromkeys(name for record in records for name in record)
    columns = {name: _column([record.get(name) for record in records]) for name in names}
    try:
        columns["request_id"] = pc.cast(columns["request_id"], pa.string())
        columns["time"] = pc.cast(pc.cast(columns["time"], pa.string()), _TIME)
    except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise UnreadableLog(f"a record has no valid request_id or time: {error}") from error
    return pa.table(columns)


def _column(values: list[Any]) -> pa.Array:
    if all(isinstance(value, dict) or value is None for value in values):
        names = dict.fromkeys(name for value in values if value for name in value)
        if names:
            fields = {n: _column([(v or {}).get(n) for v in values]) for n in names}
            mask = pa.array([value is None for value in values])
            return pa.StructArray.from_arrays(list(fields.values()), list(fields), mask=mask)
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if v is None else _text(v) for v in values], pa.string())


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def _flat(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _micros(column: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.cast(_flat(column), pa.int64()).to_numpy(zero_copy_only=False))


def _children(table: pa.Table, name: str) -> Mapping[str, pa.Array]:
    if name not in table.column_names or not pa.types.is_struct(table[name].type):
        return {}
    struct = _flat(table[name])
    # flatten(), not field(): a null struct (scores: null) makes its children null too.
    return dict(zip(struct.type.names, struct.flatten(), strict=True))


def _scores(table: pa.Table) -> dict[str, np.ndarray]:
    scores = {}
    for name, values in _children(table, "scores").items():
        if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
            floats = pc.fill_null(pc.cast(values, pa.float64()), np.nan)
            scores[name] = np.asarray(floats.to_numpy(zero_copy_only=False))
    return scores


def _inputs(table: pa.Table, columns: Collection[str]) -> dict[str, pa.Array]:
    found = _children(table, "inputs")
    rows = len(table)
    return {name: found.get(name, pa.nulls(rows)) for name in columns}
