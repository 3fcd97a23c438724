"""FeatureSet: one standardized definition of features over raw data.

The operator materializes it with a Job into immutable, content-addressed snapshots (Parquet plus a
manifest and a data profile) that training and serving both use.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import ConfigDict, Field

from .common import (
    AGE_COLUMN,
    COLUMN_PATTERN,
    READY_COLUMN,
    REASON_COLUMN,
    ApiModel,
    Condition,
    CustomResource,
    PrinterColumn,
    ResourceRequirements,
    Rule,
    validation_rules,
)

__all__ = [
    "Column",
    "ColumnType",
    "FeatureSchema",
    "FeatureSet",
    "FeatureSetSpec",
    "FeatureSetStatus",
    "Materialization",
    "PredictionLogSource",
    "ProfileSummary",
    "SnapshotRef",
    "Source",
    "Transform",
    "TransformOp",
    "Validation",
]

ColumnType = Literal["float", "int", "bool", "category", "string", "timestamp"]
SourceFormat = Literal["csv", "parquet", "jsonl"]
Compression = Literal["auto", "none", "gzip", "bz2", "zstd"]
TransformOp = Literal[
    "derive",  # a new column from an expression
    "filter",  # keep the rows where an expression is true
    "impute",  # fill nulls (mean, median, mostFrequent, constant)
    "clip",  # bound values to [min, max]
    "standardScale",  # (x - mean) / std, fitted on the snapshot
    "minMaxScale",  # (x - min) / (max - min), fitted on the snapshot
    "oneHot",  # one column per category, fitted on the snapshot
    "ordinal",  # category -> integer code, fitted on the snapshot
    "log",  # log1p(x)
]
ImputeStrategy = Literal["mean", "median", "mostFrequent", "constant"]
_COLUMN_OPS = ["impute", "clip", "standardScale", "minMaxScale", "oneHot", "ordinal", "log"]
_REQUIRED_BY_OP = "'required by op ' + self.op"


def _required(rule: str, field: str, message: str) -> Rule:
    return Rule(
        rule,
        message=message,
        message_expression=_REQUIRED_BY_OP,
        reason="FieldValueRequired",
        field_path=f".{field}",
    )


# What each op needs, checked by the API server (the operator checks the same before a Job).
TRANSFORM_RULES = validation_rules(
    _required("self.op != 'derive' || has(self.output)", "output", "required by op derive"),
    _required(
        "!(self.op in ['derive', 'filter']) || has(self.expression)",
        "expression",
        "required by ops derive and filter",
    ),
    _required(
        f"!(self.op in {_COLUMN_OPS!r}) || (has(self.columns) && size(self.columns) > 0)",
        "columns",
        "required by ops " + ", ".join(_COLUMN_OPS),
    ),
    _required("self.op != 'impute' || has(self.strategy)", "strategy", "required by op impute"),
    Rule(
        "self.op != 'impute' || !has(self.strategy) || self.strategy != 'constant' "
        "|| has(self.value)",
        message="required by the constant strategy",
        reason="FieldValueRequired",
        field_path=".value",
    ),
    Rule(
        "self.op != 'clip' || has(self.min) || has(self.max)", message="clip needs min, max or both"
    ),
)


class Source(ApiModel):
    """A raw input in S3-compatible storage."""

    name: str = Field(pattern=COLUMN_PATTERN, max_length=63)
    """A short name for the source, used in status and in the snapshot manifest."""
    uri: str = Field(pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.*$")
    """s3://bucket/key or a glob over keys (s3://raw/events/2026-*/*.csv.gz)."""
    format: SourceFormat | None = None
    """csv, parquet or jsonl; inferred from the key's extension when omitted."""
    compression: Compression = "auto"
    """Compression of the objects; auto infers it from the extension (.gz, .bz2, .zst)."""
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    """Field delimiter of CSV sources."""


class PredictionLogSource(ApiModel):
    """Opt-in feedback loop: labelled production traffic becomes training data."""

    model: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    """The registry model whose prediction and ground-truth feedback logs are read."""
    lookback_days: int = Field(default=30, ge=1, le=3650)
    """Only logs of the last N days are read."""
    labelled_only: bool = True
    """Keep only predictions that received ground-truth feedback (the target comes from it)."""


class Column(ApiModel):
    """One typed column of the standardized features."""

    name: str = Field(pattern=COLUMN_PATTERN, max_length=128)
    """The column's name in the features."""
    type: ColumnType
    """float, int, bool, category, string or timestamp."""
    source_column: str | None = None
    """The raw column it is read from, when the name differs."""
    nullable: bool = True
    """When false, a row with a null here is rejected."""
    min: float | None = None
    """Smallest allowed value (numbers); a smaller value rejects the row."""
    max: float | None = None
    """Largest allowed value (numbers); a larger value rejects the row."""
    categories: list[str] | None = None
    """Allowed values (category and string columns); another value rejects the row."""
    description: str | None = None
    """What the column means, for people."""


class FeatureSchema(ApiModel):
    """The typed columns, keys and target of the features."""

    columns: list[Column] = Field(min_length=1)
    """The columns of the features, in order."""
    entity_key: str | None = Field(default=None, pattern=COLUMN_PATTERN)
    """The column identifying an entity; de-duplication keeps its latest row."""
    event_time: str | None = Field(default=None, pattern=COLUMN_PATTERN)
    """The timestamp column of each row; enables time-based splits and latest-row de-duplication."""
    target: str | None = Field(default=None, pattern=COLUMN_PATTERN)
    """The column a model learns to predict; required by TrainingPipelines that use this set."""


class Transform(ApiModel):
    """One step of row cleaning or feature engineering, applied in order.

    Expressions use a small, safe language (arithmetic, comparisons, and/or/not, a fixed set of
    functions such as log, sqrt, abs, min, max); user text is never evaluated as Python.
    """

    model_config = ConfigDict(json_schema_extra=TRANSFORM_RULES)

    op: TransformOp
    """derive, filter, impute, clip, standardScale, minMaxScale, oneHot, ordinal or log."""
    columns: list[str] | None = None
    """The input columns (impute, clip, scale, oneHot, ordinal, log)."""
    output: str | None = Field(default=None, pattern=COLUMN_PATTERN)
    """The new column's name (derive)."""
    expression: str | None = Field(default=None, max_length=4096)
    """The expression (derive: its value; filter: the condition rows must meet)."""
    output_type: ColumnType | None = None
    """Type of the derived column; float when omitted."""
    strategy: ImputeStrategy | None = None
    """How nulls are filled (impute)."""
    value: str | None = None
    """The fill value of the constant strategy, as text parsed to the column's type."""
    min: float | None = None
    """Lower bound (clip)."""
    max: float | None = None
    """Upper bound (clip)."""
    max_categories: int | None = Field(default=None, ge=1, le=1000)
    """oneHot: keep the most frequent categories, map the rest to an "other" column."""


class Validation(ApiModel):
    """How strictly raw rows are checked against the schema."""

    max_reject_ratio: float = Field(default=0.01, ge=0, le=1)
    """The snapshot fails when more than this share of rows break the schema."""
    reject_sample_size: int = Field(default=100, ge=0, le=10000)
    """How many rejected rows are written to the rejects file, with the reason of each."""


class Materialization(ApiModel):
    """When and how the materialize Job runs."""

    schedule: str | None = None
    """A cron schedule (five fields, UTC) that re-materializes even without changes."""
    source_poll_seconds: int = Field(default=60, ge=10)
    """How often source listings are checked for new or changed objects."""
    parallelism: int = Field(default=1, ge=1, le=64)
    """More than 1 partitions the input across an Indexed Job and combines the parts."""
    batch_rows: int = Field(default=65536, ge=1024)
    """Rows per record batch: memory stays bounded by this, not by the input size."""
    backoff_limit: int = Field(default=2, ge=0, le=10)
    """Retries of a failed materialize Job before the attempt counts as failed."""
    active_deadline_seconds: int = Field(default=3600, ge=60)
    """The materialize Job is stopped after this long."""
    resources: ResourceRequirements | None = None
    """Compute resources of the materialize container."""


class FeatureSetSpec(ApiModel):
    """The desired feature definition."""

    sources: list[Source] = Field(min_length=1)
    """One or more raw inputs; their rows are concatenated."""
    prediction_logs: PredictionLogSource | None = None
    """Also read the prediction and feedback logs of a served model (the feedback loop)."""
    schema_: FeatureSchema = Field(alias="schema")
    """Typed columns, entity key, event time and target."""
    transforms: list[Transform] = Field(default_factory=list)
    """Cleaning and feature engineering steps, applied in order, at materialization and serving."""
    deduplicate: bool = False
    """Keep only the latest row (by event time) of each entity key."""
    validation: Validation = Field(default_factory=Validation)
    """Row validation and the reject threshold."""
    materialization: Materialization = Field(default_factory=Materialization)
    """Schedule, parallelism and resources of the materialize Job."""
    snapshot_history_limit: int = Field(default=10, ge=1, le=100)
    """How many recent snapshots status lists (older ones stay in storage)."""


class ProfileSummary(ApiModel):
    """A short summary of a snapshot's data profile; the full profile is in the report."""

    columns: int = 0
    """Number of feature columns."""
    rejected_rows: int = 0
    """Rows that broke the schema."""
    null_cells: int = 0
    """Null values across all columns after imputation."""
    max_drift_score: float | None = None
    """The largest per-column drift score against the previous snapshot."""
    drifted_columns: list[str] = Field(default_factory=list)
    """Columns whose drift score exceeds the alert level."""


class SnapshotRef(ApiModel):
    """An immutable, content-addressed snapshot of the features."""

    id: str
    """Content hash of the inputs and the definition: the same inputs give the same id."""
    uri: str
    """Where the snapshot's manifest lives (s3://...)."""
    rows: int = 0
    """Rows in the snapshot."""
    created_at: datetime | None = None
    """When the snapshot was written."""
    report_url: str | None = None
    """The HTML data report beside the snapshot."""


class Leader(ApiModel):
    """The model that leads on this data: the best pipeline metric among the versions judged on
    one holdout (see reconcile/leader.py for which versions compete)."""

    version: str
    """The leading ModelVersion."""
    pipeline: str
    """The TrainingPipeline that trained it."""
    metric: str
    """The metric they were ranked by."""
    score: float
    """The leader's holdout value of `metric`."""
    snapshot: str
    """The snapshot the ranked versions were trained and judged on."""
    holdout: str
    """The fingerprint of the holdout rows every ranked version was judged on."""
    compared: int = 1
    """How many versions were ranked (one per pipeline, its newest on that holdout)."""
    message: str = ""
    """What was ranked, and what was left out and why (another holdout, another metric)."""


class FeatureSetStatus(ApiModel):
    """What the operator observed and did."""

    observed_generation: int | None = None
    """The metadata.generation this status describes."""
    conditions: list[Condition] = Field(default_factory=list)
    """Ready, Progressing, Degraded;
    Reconciling and Stalled as kstatus defines them (`kubectl wait`, Flux, Argo CD)."""
    latest_snapshot: SnapshotRef | None = None
    """The newest complete snapshot."""
    snapshots: list[SnapshotRef] = Field(default_factory=list)
    """Recent snapshots, newest first."""
    profile: ProfileSummary | None = None
    """Profile summary of the latest snapshot."""
    source_fingerprint: str | None = None
    """Hash of the source listing (keys, sizes, ETags) at the last check."""
    spec_hash: str | None = None
    """Hash of the definition the latest snapshot was made from."""
    active_job: str | None = None
    """The materialize Job running now."""
    last_materialize_request: str | None = None
    """The value of the conveyor.dev/materialize-requested annotation already honoured."""
    last_scheduled_time: datetime | None = None
    """When the cron schedule last triggered a materialization."""
    logs_read_until: datetime | None = None
    """spec.predictionLogs: snapshots read the log objects written by this time. It moves to
    the present when a materialization is asked for (annotation, schedule, a RetrainPolicy's
    refreshFeatures), not at each log object that arrives every few seconds."""
    failures: int = 0
    """Consecutive failed materializations (drives back-off)."""
    leader: Leader | None = None
    """The model that is best on this data by its pipelines' metric (`conveyor compare`)."""


class FeatureSet(CustomResource):
    kind_name: ClassVar[str] = "FeatureSet"
    plural: ClassVar[str] = "featuresets"
    singular: ClassVar[str] = "featureset"
    short_names: ClassVar[tuple[str, ...]] = ("fs",)
    description: ClassVar[str] = (
        "A standardized feature definition over raw data, materialized into immutable, "
        "versioned snapshots with a data profile."
    )
    printer_columns: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn(name="Rows", type="integer", json_path=".status.latestSnapshot.rows"),
        PrinterColumn(name="Snapshot", type="string", json_path=".status.latestSnapshot.id"),
        PrinterColumn(name="Leader", type="string", json_path=".status.leader.version"),
        PrinterColumn(name="Metric", type="string", json_path=".status.leader.metric", priority=1),
        PrinterColumn(name="Score", type="number", json_path=".status.leader.score", priority=1),
        READY_COLUMN,
        REASON_COLUMN,
        AGE_COLUMN,
    )

    kind: str = "FeatureSet"
    spec: FeatureSetSpec
    status: FeatureSetStatus = Field(default_factory=FeatureSetStatus)
