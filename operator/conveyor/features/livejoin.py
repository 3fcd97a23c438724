"""Predictions joined with their feedback by request id, in bounded memory.

Feedback may come before its prediction is written (a server flushes its log in batches) or
long after it, so both sides wait in a pending table until the other side arrives, the window
leaves them behind, or the table is full (the oldest go first). Joined pairs move to the
labelled pairs of the window, a few numbers each. A request has one prediction per version (a
shadow predicts the champion's requests under the same ids), so one label joins each version's
prediction: a label stays after its join, for a version whose log is read later. A prediction
logged twice counts once (the first, when both wait together); of two labels for one request
the later wins, if both arrive before the join; a label after the join changes nothing.

Classification labels and predictions are category codes (`Labels`), and request ids 64-bit
hashes (`request_keys`), so what waits and what is joined are numbers only: a quarter of the
memory of the ids, and integer joins.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .livelog import Feedback, Predictions

__all__ = ["LabelledPairs", "Labels", "PendingJoin", "request_keys"]

MAX_LABELS = 10_000
"""Distinct classes coded per model; labels beyond share the last code."""


class Labels:
    """Category codes of class labels (as text), stable for the monitor's life."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}

    def encode(self, values: pa.Array) -> np.ndarray:
        """Codes of the values (any Arrow type, compared as text); -1 for null."""
        if not pa.types.is_string(values.type):
            values = pc.cast(values, pa.string())
        encoded = pc.dictionary_encode(values)
        lookup = np.array([self.code(str(v)) for v in encoded.dictionary.to_pylist()] or [0])
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        codes = lookup[np.nan_to_num(indices, nan=0).astype(np.int64)]
        return np.where(pc.is_null(encoded.indices).to_numpy(zero_copy_only=False), -1, codes)

    def code(self, label: str) -> int:
        if label not in self.codes:
            self.codes[label] = min(len(self.codes), MAX_LABELS - 1)
        return self.codes[label]


@dataclass
class LabelledPairs:
    """Joined pairs: version, prediction time, truth, prediction, probability of the truth, and
    the request (a hash of its id, for the figures of two versions on the same requests)."""

    version: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    request: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    time_us: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    truth: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    predicted: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    probability: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))

    def extend(self, other: LabelledPairs) -> None:
        for name in vars(self):
            setattr(self, name, np.concatenate([getattr(self, name), getattr(other, name)]))

    def keep(self, since_us: int, most: int) -> None:
        """Only pairs predicted since `since_us`, the latest `most` of them."""
        kept = np.flatnonzero(self.time_us >= since_us)[-most:]
        for name in vars(self):
            setattr(self, name, getattr(self, name)[kept])

    def of(self, version: int) -> LabelledPairs:
        return self._where(self.version == version)

    def shared(self, other: LabelledPairs) -> LabelledPairs:
        """These pairs whose request `other` has too."""
        return self._where(np.isin(self.request, other.request))

    def _where(self, mask: np.ndarray) -> LabelledPairs:
        return LabelledPairs(**{name: value[mask] for name, value in vars(self).items()})

    def __len__(self) -> int:
        return len(self.version)


class PendingJoin:
    """Predictions and labels waiting for each other; `join()` yields the pairs."""

    def __init__(self, classification: bool, labels: Labels) -> None:
        self.classification = classification
        self.labels = labels
        self.predictions: list[pa.Table] = []
        self.feedback: list[pa.Table] = []

    def add_predictions(self, version: int, batch: Predictions) -> None:
        columns = {
            "request": request_keys(batch.request_id),
            "time": pa.array(batch.time_us, pa.int64()),
            "version": pa.array(np.full(len(batch), version, np.int64)),
            "predicted": pa.array(self._values(batch.prediction)),
        }
        if self.classification and batch.scores:
            total = np.nansum(np.vstack(list(batch.scores.values())), axis=0)
            for label, scores in batch.scores.items():
                share = np.divide(scores, total, out=np.full_like(scores, np.nan), where=total > 0)
                columns[f"p{self.labels.code(label)}"] = pa.array(share)
        self.predictions.append(pa.table(columns))

    def add_feedback(self, batch: Feedback) -> None:
        self.feedback.append(
            pa.table(
                {
                    "request": request_keys(batch.request_id),
                    "label_time": pa.array(batch.time_us, pa.int64()),
                    "truth": pa.array(self._values(batch.label)),
                }
            )
        )

    def join(self, since_us: int, most_predictions: int, most_feedback: int) -> LabelledPairs:
        """Pairs of every prediction and label now present; the rest stay, within bounds."""
        predictions = _first_per_id(_concat(self.predictions), since_us)
        feedback = _latest_per_id(_concat(self.feedback), since_us)
        if predictions is None or feedback is None:
            self._keep(predictions, feedback, most_predictions, most_feedback)
            return LabelledPairs()
        joined = predictions.join(feedback, "request", join_type="inner")
        if len(joined):
            matched = pc.is_in(predictions["request"], feedback["request"])
            predictions = predictions.filter(pc.invert(matched))
        self._keep(predictions, feedback, most_predictions, most_feedback)
        return self._pairs(joined)

    def _pairs(self, joined: pa.Table) -> LabelledPairs:
        truth = _numbers(joined["truth"])
        probability = np.full(len(joined), np.nan)
        if self.classification:
            for name in joined.column_names:
                if name.startswith("p") and name[1:].isdigit():
                    rows = truth == int(name[1:])
                    probability[rows] = _numbers(joined[name])[rows]
            probability[np.isnan(probability) & _has_scores(joined)] = 0.0
        return LabelledPairs(
            version=_numbers(joined["version"]).astype(np.int64),
            request=joined["request"].to_numpy(),
            time_us=_numbers(joined["time"]).astype(np.int64),
            truth=truth,
            predicted=_numbers(joined["predicted"]),
            probability=probability,
        )

    def _values(self, values: pa.Array) -> np.ndarray:
        if self.classification:
            return self.labels.encode(values).astype(np.float64)
        if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
            values = pc.cast(values, pa.float64(), safe=False)  # text numbers
        return _numbers(values)

    def _keep(
        self, predictions: pa.Table | None, feedback: pa.Table | None, most_p: int, most_f: int
    ) -> None:
        self.predictions = [] if predictions is None else [_tail(predictions, most_p)]
        self.feedback = [] if feedback is None else [_tail(feedback, most_f)]

    @property
    def waiting(self) -> int:
        """Predictions held, joined or not yet."""
        return sum(len(t) for t in self.predictions)

    def __len__(self) -> int:
        return self.waiting + sum(len(t) for t in self.feedback)


def _concat(tables: list[pa.Table]) -> pa.Table | None:
    if not tables:
        return None
    table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
    return table.combine_chunks()


def request_keys(ids: pa.Array) -> pa.Array:
    """64-bit keys of request ids. hash() is salted per process: the keys never leave the
    monitor's memory, and two ids of a million share one with odds of about 1 in 10^7."""
    return pa.array(np.fromiter(map(hash, ids.to_pylist()), np.int64, len(ids)))


def _first_per_id(table: pa.Table | None, since_us: int) -> pa.Table | None:
    """The first prediction of each (request, version) since `since_us`."""
    if table is None:
        return None
    table = table.filter(pc.greater_equal(table["time"], since_us))
    request = table["request"].to_numpy()
    version = table["version"].to_numpy()
    with np.errstate(over="ignore"):
        key = request * np.int64(1_000_003) + version  # wraps: a hash of the pair
    return _unique(table, key, last=False)


def _latest_per_id(table: pa.Table | None, since_us: int) -> pa.Table | None:
    if table is None:
        return None
    table = table.filter(pc.greater_equal(table["label_time"], since_us))
    order = pc.sort_indices(table, [("label_time", "ascending")])
    table = table.take(order)
    return _unique(table, table["request"].to_numpy(), last=True)


def _unique(table: pa.Table, key: np.ndarray, *, last: bool) -> pa.Table:
    """One row per `key`: the first (or last) in table order, order kept."""
    if last:
        _, index = np.unique(key[::-1], return_index=True)
        index = len(key) - 1 - index
    else:
        _, index = np.unique(key, return_index=True)
    return table if len(index) == len(table) else table.take(np.sort(index))


def _tail(table: pa.Table, most: int) -> pa.Table:
    return table.slice(max(len(table) - most, 0))


def _numbers(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    filled = pc.fill_null(pc.cast(column, pa.float64()), np.nan)
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.float64)


def _has_scores(joined: pa.Table) -> np.ndarray:
    """Rows with any class score: a true label the scores lack had probability 0."""
    present = np.zeros(len(joined), dtype=bool)
    for name in joined.column_names:
        if name.startswith("p") and name[1:].isdigit():
            present |= ~np.isnan(_numbers(joined[name]))
    return present
