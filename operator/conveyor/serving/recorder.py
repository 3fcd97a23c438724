"""What the server writes to the prediction and feedback logs, and what it costs a request.

A request pays for a sampling draw, one entry in the recent-ids table and one append: its
inputs, answers and time go to the `LogWriter`'s buffer as they are, and the writer's thread
makes them into records (`features.predictionlog`) when it writes. A request of several rows
logs one record per row under "<request id>/<row>"; a request the server refused logs one record
with its error and what could be read of its body.

Feedback names request ids; an id this pod has not answered recently (another pod did, or the
prediction is older than the recent-ids table) is still written, and counted as unknown.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from random import random
from time import time
from typing import Any, NamedTuple

import numpy as np

from ..features.logwriter import LogWriter
from ..features.predictionlog import (
    FeedbackRecord,
    LogLines,
    PredictionRecord,
    encode_line,
    record_lines,
)
from .model import Prediction
from .protocol import RequestError

__all__ = ["Feedback", "Recorder", "parse_feedback"]

_MAX_REFUSED_BODY = 4096
"""Characters of a refused request's body kept in its log record."""
_MAX_ID = 200


class Feedback(NamedTuple):
    request_id: str
    label: Any


class Recorder:
    """Logs a served model's predictions (the `sample_ratio` share), refusals and feedback."""

    def __init__(
        self,
        writer: LogWriter,
        model: str,
        version: int,
        *,
        sample_ratio: float = 1.0,
        recent_ids: int = 100_000,
    ) -> None:
        self.writer = writer
        self.model = model
        self.version = version
        self.sample_ratio = sample_ratio
        self.recent_ids = recent_ids
        self.feedback_known = 0
        self.feedback_unknown = 0
        self._names: tuple[str, ...] | None = None
        self._recent: OrderedDict[str, int] = OrderedDict()  # request id → rows, oldest first

    def prediction(
        self,
        request_id: str,
        inputs: Mapping[str, list[Any]] | Sequence[Mapping[str, Any]],
        prediction: Prediction,
        classes: Sequence[Any] | None,
    ) -> bool:
        """Log a request's rows (input columns by name, or raw records) and their answers;
        False when sampled out (then a shadow leaves the request alone too)."""
        if self.sample_ratio < 1.0 and random() >= self.sample_ratio:
            return False
        rows = len(prediction.labels)
        self._remember(request_id, rows)
        self.writer.add_many(
            rows,
            partial(
                _prediction_lines,
                self.model,
                self.version,
                request_id,
                time(),
                inputs,
                prediction,
                self._score_names(classes),
            ),
        )
        return True

    def refused(self, request_id: str, body: bytes, error: str) -> None:
        """Log a request the server refused, with its error (never sampled out)."""
        text = body[:_MAX_REFUSED_BODY].decode("utf-8", "replace")
        record = PredictionRecord(
            request_id=request_id,
            time=datetime.now(UTC),
            model=self.model,
            version=self.version,
            inputs={"body": text},
            prediction=None,
            error=error,
        )
        self.writer.add(record)

    def feedback(self, items: Sequence[Feedback]) -> tuple[int, int]:
        """Log ground truth for request ids; (accepted, unknown to this pod)."""
        now = datetime.now(UTC)
        unknown = sum(not self._known(item.request_id) for item in items)
        records = [FeedbackRecord(item.request_id, now, self.model, item.label) for item in items]
        [lines] = record_lines(records)  # one model, one moment: one partition
        if not self.writer.add_many(len(records), lambda: lines):
            raise RequestError(
                503,
                "The feedback log's buffer is full (storage is slow or down); nothing of this "
                "request was recorded — send it again later.",
            )
        self.feedback_known += len(items) - unknown
        self.feedback_unknown += unknown
        return len(items), unknown

    def _score_names(self, classes: Sequence[Any] | None) -> tuple[str, ...] | None:
        """The keys of a record's scores: the classes as text, made once."""
        if classes is None:
            return None
        if self._names is None or len(self._names) != len(classes):
            self._names = tuple(str(c) for c in classes)
        return self._names

    def _remember(self, request_id: str, rows: int) -> None:
        recent = self._recent
        recent[request_id] = rows
        if len(recent) > self.recent_ids:  # O(1); a dict's first key is not after deletions
            recent.popitem(last=False)

    def _known(self, request_id: str) -> bool:
        if request_id in self._recent:
            return True
        base, _, row = request_id.rpartition("/")
        return row.isdigit() and int(row) < self._recent.get(base, 0)


def parse_feedback(document: Any, classes: Sequence[Any] | None) -> list[Feedback]:
    """The feedback items of a request body, or a 400/422 naming what to fix. A body is one
    item, a list of items, or {"feedback": [items]}; an item is {"request_id", "label"}, or
    {"request_id", "labels": [...]} for the rows of a request of several rows."""
    items = document.get("feedback", [document]) if isinstance(document, dict) else document
    if not isinstance(items, list) or not items:
        raise RequestError(
            400,
            'Send feedback as {"request_id": "...", "label": ...}, a list of those, or '
            '{"feedback": [...]}.',
        )
    labels = _Labels(classes)
    parsed: list[Feedback] = []
    for index, item in enumerate(items):
        where = f"feedback[{index}]" if len(items) > 1 else "The feedback"
        parsed += _items(item, where, labels)
    return parsed


def _items(item: Any, where: str, labels: _Labels) -> list[Feedback]:
    if not isinstance(item, dict):
        raise RequestError(400, f'{where} must be an object with "request_id" and "label".')
    request_id = item.get("request_id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= _MAX_ID:
        raise RequestError(
            400,
            f'{where} needs a "request_id": the X-Request-Id (or V2 id) of the prediction, '
            f"1-{_MAX_ID} characters.",
        )
    if "labels" in item:
        values = item["labels"]
        if not isinstance(values, list) or not values or "label" in item:
            raise RequestError(
                400,
                f'{where}: "labels" must be a non-empty list, one label per row of the request '
                '(send "label" instead for a request of one row).',
            )
        return [
            Feedback(f"{request_id}/{row}", labels.check(value, f"{where} row {row}"))
            for row, value in enumerate(values)
        ]
    if "label" not in item:
        raise RequestError(400, f'{where} has no "label": the ground truth of the prediction.')
    return [Feedback(request_id, labels.check(item["label"], where))]


class _Labels:
    """A classifier's labels are its classes; a regressor's are finite numbers."""

    def __init__(self, classes: Sequence[Any] | None) -> None:
        self.classes = None if classes is None else {str(c): c for c in classes}

    def check(self, value: Any, where: str) -> Any:
        if self.classes is None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise RequestError(422, f"{where}: the label must be a number, not {value!r}.")
            if not math.isfinite(value):
                raise RequestError(422, f"{where}: the label must be a finite number.")
            return value
        if isinstance(value, dict | list) or value is None or str(value) not in self.classes:
            known = ", ".join(sorted(self.classes))
            raise RequestError(
                422, f"{where}: the label {value!r} is not one of the model's classes ({known})."
            )
        return self.classes[str(value)]


def _prediction_lines(
    model: str,
    version: int,
    request_id: str,
    when: float,
    inputs: Mapping[str, list[Any]] | Sequence[Mapping[str, Any]],
    prediction: Prediction,
    names: Sequence[str] | None,
) -> LogLines:
    """The encoded records of one request, made by the writer's thread: dicts with the
    record's keys in its order, straight to JSON (a PredictionRecord each cost twice as much)."""
    at = datetime.fromtimestamp(when, UTC)
    rows = _rows(inputs)
    labels = _plain(prediction.labels)
    scores: list[dict[str, float] | None] = [None] * len(labels)
    if prediction.probabilities is not None and names is not None:
        scores = [dict(zip(names, row, strict=True)) for row in _plain(prediction.probabilities)]
    single = len(labels) == 1
    # One buffer grown line by line: each line's bytes are freed at once and their memory
    # reused, where keeping a thousand of them for a join cost four times as much (measured).
    lines = bytearray()
    for row in range(len(labels)):
        lines += encode_line(
            {
                "request_id": request_id if single else f"{request_id}/{row}",
                "time": at,
                "model": model,
                "version": version,
                "inputs": rows[row],
                "prediction": labels[row],
                "scores": scores[row],
                "error": None,
            }
        )
    return LogLines(model, version, at, bytes(lines), len(labels))


def _rows(inputs: Mapping[str, list[Any]] | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(inputs, Mapping):
        if len(next(iter(inputs.values()), ())) == 1:  # the common request: one row
            return [{name: values[0] for name, values in inputs.items()}]
        names = list(inputs)
        columns = zip(*inputs.values(), strict=True)
        return [dict(zip(names, values, strict=True)) for values in columns]
    return [dict(row) for row in inputs]


def _plain(values: np.ndarray) -> list[Any]:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)
