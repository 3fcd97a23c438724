"""Where each program's outputs live in the Conveyor bucket: one class per layout, for every side.

    features/<namespace>/<featureset>/
        snapshots/<id>/data/part-00000.parquet   the features (Parquet, one or more parts)
        snapshots/<id>/raw/part-00000.parquet    the conformed raw rows, row for row
        snapshots/<id>/transforms.json           fitted transform parameters (serving loads them)
        snapshots/<id>/profile.json              the data profile (drift reference of the next one)
        snapshots/<id>/report.html               the data report for people
        snapshots/<id>/rejects.jsonl             a sample of rejected rows with reasons
        snapshots/<id>/manifest.json             written LAST: a snapshot without one does not exist
        staging/<id>/part-<i>/...                partitions of an Indexed Job, removed by combine
    models/<namespace>/<model>/runs/<run>/
        trials/part-<i:05d>.json                 the SearchResult of pod i of an Indexed Job
        model.skops                              the fitted pipeline (skops, no pickle)
        model.onnx                               its estimator as ONNX, when it converts and agrees
        card.json                                the model card
        report.html                              the training report
        result.json                              written LAST: a run with one is complete
    logs/<namespace>/predictions/model=<model>/version=<version>/date=<YYYY-MM-DD>/<writer>-<HHMMSSffffff>-<seq:06d>.jsonl.gz
    logs/<namespace>/feedback/model=<model>/date=<YYYY-MM-DD>/<writer>-<HHMMSSffffff>-<seq:06d>.jsonl.gz

Snapshot and run paths are written once and never again; logs are append-only. Like snapshots
and runs, logs are per namespace: two teams' models of the same name never share them. A prediction
log object is dated by its earliest record (UTC); `writer` names the process (a pod name) and
`seq` counts the objects it wrote, so keys never collide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

__all__ = [
    "LOGS_PREFIX",
    "PredictionLogLayout",
    "RunLayout",
    "SnapshotLayout",
    "check_writer",
    "feedback_key",
    "log_object_date",
    "log_object_time",
    "prediction_key",
    "written_by",
]

LOGS_PREFIX = "logs"
_WRITER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_LOG_DATE = re.compile(r"/date=(\d{4}-\d{2}-\d{2})/")
_LOG_TIME = re.compile(r"-(\d{12})-\d{6}\.jsonl\.gz$")


def _uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


@dataclass(frozen=True)
class SnapshotLayout:
    """Keys of one snapshot (and its staging area)."""

    bucket: str
    namespace: str
    featureset: str
    id: str

    @property
    def root(self) -> str:
        return f"features/{self.namespace}/{self.featureset}/"

    @property
    def prefix(self) -> str:
        return f"{self.root}snapshots/{self.id}/"

    @property
    def manifest(self) -> str:
        return self.prefix + "manifest.json"

    @property
    def transforms(self) -> str:
        return self.prefix + "transforms.json"

    @property
    def profile(self) -> str:
        return self.prefix + "profile.json"

    @property
    def report(self) -> str:
        return self.prefix + "report.html"

    @property
    def rejects(self) -> str:
        return self.prefix + "rejects.jsonl"

    @property
    def data(self) -> str:
        return self.prefix + "data/"

    @property
    def raw(self) -> str:
        return self.prefix + "raw/"

    @property
    def staging(self) -> str:
        return f"{self.root}staging/{self.id}/"

    def staging_part(self, index: int) -> str:
        return f"{self.staging}part-{index:05d}/"

    def uri(self, key: str) -> str:
        return _uri(self.bucket, key)

    def sibling(self, snapshot: str) -> SnapshotLayout:
        """The layout of another snapshot of the same FeatureSet (the previous one)."""
        return SnapshotLayout(self.bucket, self.namespace, self.featureset, snapshot)


@dataclass(frozen=True)
class RunLayout:
    """Keys of one training run."""

    bucket: str
    namespace: str
    model: str
    run: str

    @property
    def prefix(self) -> str:
        return f"models/{self.namespace}/{self.model}/runs/{self.run}/"

    @property
    def trials(self) -> str:
        return self.prefix + "trials/"

    def trial_part(self, index: int) -> str:
        return f"{self.trials}part-{index:05d}.json"

    @property
    def model_file(self) -> str:
        return self.prefix + "model.skops"

    @property
    def onnx_file(self) -> str:
        return self.prefix + "model.onnx"

    @property
    def card(self) -> str:
        return self.prefix + "card.json"

    @property
    def report(self) -> str:
        return self.prefix + "report.html"

    @property
    def result(self) -> str:
        return self.prefix + "result.json"

    def uri(self, key: str) -> str:
        return _uri(self.bucket, key)

    def holds(self, uri: str) -> bool:
        """Whether `uri` names an object of this run (an artifact a version may point at)."""
        return uri.startswith(self.uri(self.prefix))


@dataclass(frozen=True)
class PredictionLogLayout:
    """Keys of the prediction and feedback logs of one model in one namespace."""

    namespace: str
    model: str

    @property
    def predictions(self) -> str:
        return f"{LOGS_PREFIX}/{self.namespace}/predictions/model={self.model}/"

    @property
    def feedback(self) -> str:
        return f"{LOGS_PREFIX}/{self.namespace}/feedback/model={self.model}/"

    def prediction_key(self, version: int, when: datetime, writer: str, seq: int) -> str:
        when = _utc(when)
        return (
            f"{self.predictions}version={version}/date={when:%Y-%m-%d}/"
            f"{_object_name(writer, when, seq)}"
        )

    def feedback_key(self, when: datetime, writer: str, seq: int) -> str:
        when = _utc(when)
        return f"{self.feedback}date={when:%Y-%m-%d}/{_object_name(writer, when, seq)}"


def prediction_key(
    namespace: str, model: str, version: int, when: datetime, writer: str, seq: int
) -> str:
    """The key of a prediction log object (see the module docstring)."""
    return PredictionLogLayout(namespace, model).prediction_key(version, when, writer, seq)


def feedback_key(namespace: str, model: str, when: datetime, writer: str, seq: int) -> str:
    """The key of a feedback log object (see the module docstring)."""
    return PredictionLogLayout(namespace, model).feedback_key(when, writer, seq)


def log_object_date(key: str) -> date | None:
    """The date partition of a log object's key; None when it has none."""
    match = _LOG_DATE.search(key)
    if match is None:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


def log_object_time(key: str) -> datetime | None:
    """When a log object was written, from its key (date partition and name); None when the
    key has neither."""
    day = log_object_date(key)
    match = _LOG_TIME.search(key)
    if day is None or match is None:
        return None
    clock = datetime.strptime(match.group(1), "%H%M%S%f").time()
    return datetime.combine(day, clock, tzinfo=UTC)


def written_by(key: str, until: datetime | None) -> bool:
    """Whether the log object `key` was written by `until` (always, without a bound or a time
    in its key)."""
    written = log_object_time(key)
    return until is None or written is None or written <= until


def check_writer(writer: str) -> None:
    """A writer name is a pod name: letters, digits, '.', '_' or '-'."""
    if not _WRITER.match(writer):
        raise ValueError(f"writer {writer!r} must be letters, digits, '.', '_' or '-' (a pod name)")


def _object_name(writer: str, when: datetime, seq: int) -> str:
    check_writer(writer)
    return f"{writer}-{when:%H%M%S%f}-{seq:06d}.jsonl.gz"


def _utc(when: datetime) -> datetime:
    """Aware datetimes in UTC; a naive datetime is taken to be UTC."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
