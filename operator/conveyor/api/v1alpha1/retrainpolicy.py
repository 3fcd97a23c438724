"""RetrainPolicy: when a TrainingPipeline retrains.

Triggers: a cron schedule, a live-performance drop, data drift, and Prometheus alerts arriving
through Alertmanager's webhook; guarded by a cooldown, a concurrency policy and a minimum of new
data. Every decision, fired or suppressed, is recorded in status and as an Event.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

from .common import (
    AGE_COLUMN,
    COLUMN_PATTERN,
    NAME_PATTERN,
    READY_COLUMN,
    ApiModel,
    Condition,
    CustomResource,
    PrinterColumn,
)
from .trainingpipeline import MetricName

__all__ = [
    "AlertMatcher",
    "AlertTrigger",
    "Decision",
    "DriftTrigger",
    "PerformanceTrigger",
    "RetrainPolicy",
    "RetrainPolicySpec",
    "RetrainPolicyStatus",
    "ScheduleTrigger",
    "Triggers",
]

DriftMethod = Literal["psi", "ks"]
MatchOperator = Literal["=", "!=", "=~", "!~"]
DecisionTrigger = Literal["manual", "schedule", "performance", "drift", "alert"]


class ScheduleTrigger(ApiModel):
    """Retrain on a cron schedule."""

    cron: str = Field(min_length=9, max_length=200)
    """Five-field cron expression, e.g. "0 3 * * 1" (Mondays 03:00)."""
    time_zone: str = "UTC"
    """IANA time zone of the schedule."""


class PerformanceTrigger(ApiModel):
    """Retrain when live accuracy, measured from ground-truth feedback, drops."""

    metric: MetricName
    """The live metric computed from predictions joined with feedback."""
    threshold: float
    """Fire when the metric is worse than this (below for scores, above for errors)."""
    window_seconds: int = Field(default=3600, ge=60)
    """The window of feedback the metric is computed over."""
    min_samples: int = Field(default=50, ge=1)
    """Do not judge on fewer labelled predictions than this."""


class DriftTrigger(ApiModel):
    """Retrain when the served inputs drift from the training data."""

    method: DriftMethod = "psi"
    """psi (population stability index) or ks (Kolmogorov-Smirnov statistic)."""
    threshold: float = Field(default=0.2, gt=0)
    """Fire when a column's drift score exceeds this."""
    columns: list[str] | None = None
    """Columns checked; all features when omitted."""
    window_seconds: int = Field(default=3600, ge=60)
    """The window of logged inputs compared with the model's reference profile."""
    min_samples: int = Field(default=200, ge=1)
    """Do not judge on fewer logged predictions than this."""


class AlertMatcher(ApiModel):
    """One label matcher, as in Alertmanager routes."""

    label: str = Field(pattern=COLUMN_PATTERN)
    """The alert label, e.g. alertname."""
    operator: MatchOperator = "="
    """=, !=, =~ (regular expression) or !~."""
    value: str
    """The value or regular expression (anchored)."""


class AlertTrigger(ApiModel):
    """Retrain when a firing Prometheus alert reaches the operator's webhook and matches."""

    matchers: list[AlertMatcher] = Field(min_length=1)
    """All must match an alert's labels."""


class Triggers(ApiModel):
    """The triggers; any that is set can fire."""

    schedule: ScheduleTrigger | None = None
    """A cron schedule."""
    performance: PerformanceTrigger | None = None
    """A live-performance threshold."""
    drift: DriftTrigger | None = None
    """A data-drift threshold."""
    alert: AlertTrigger | None = None
    """Prometheus alerts through Alertmanager's webhook."""


class RetrainPolicySpec(ApiModel):
    """The desired retraining policy."""

    pipeline: str = Field(pattern=NAME_PATTERN, max_length=253)
    """The TrainingPipeline (same namespace) to retrain."""
    triggers: Triggers
    """When to retrain."""
    cooldown_seconds: int = Field(default=3600, ge=0)
    """After a run starts, further triggers are suppressed for this long."""
    concurrency_policy: Literal["Forbid", "Replace"] = "Forbid"
    """A trigger while a run is active: Forbid suppresses it, Replace restarts the run."""
    min_new_rows: int = Field(default=0, ge=0)
    """Suppress a trigger unless the FeatureSet gained this many rows since the last run."""
    check_interval_seconds: int = Field(default=60, ge=10)
    """How often performance and drift are evaluated."""
    suspend: bool = False
    """Record decisions but start no run."""
    decision_history_limit: int = Field(default=20, ge=1, le=200)
    """Decisions kept in status."""


class Decision(ApiModel):
    """One trigger evaluation that fired or was suppressed."""

    time: datetime
    """When."""
    trigger: DecisionTrigger
    """Which trigger."""
    fired: bool
    """Whether a run started."""
    reason: str
    """CamelCase reason: Fired, Cooldown, RunActive, NotEnoughNewData, Suspended, ..."""
    message: str = ""
    """Details, e.g. the metric value against the threshold."""
    run: str | None = None
    """The run started, when fired."""


class RetrainPolicyStatus(ApiModel):
    """What the operator observed and decided."""

    observed_generation: int | None = None
    """The metadata.generation this status describes."""
    conditions: list[Condition] = Field(default_factory=list)
    """Ready, Degraded."""
    last_triggered_time: datetime | None = None
    """When a trigger last started a run (the cooldown counts from here)."""
    last_scheduled_time: datetime | None = None
    """The schedule's last fire time."""
    next_scheduled_time: datetime | None = None
    """The schedule's next fire time."""
    last_performance: float | None = None
    """The live metric at the last check."""
    last_drift_score: float | None = None
    """The largest drift score at the last check."""
    last_check_time: datetime | None = None
    """When performance and drift were last evaluated."""
    decisions: list[Decision] = Field(default_factory=list)
    """Recent decisions, newest first."""


class RetrainPolicy(CustomResource):
    kind_name: ClassVar[str] = "RetrainPolicy"
    plural: ClassVar[str] = "retrainpolicies"
    singular: ClassVar[str] = "retrainpolicy"
    short_names: ClassVar[tuple[str, ...]] = ("rp",)
    description: ClassVar[str] = (
        "When a TrainingPipeline retrains: schedule, performance, drift and alert triggers, "
        "with cooldown, concurrency and minimum new data."
    )
    printer_columns: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn(name="Pipeline", type="string", json_path=".spec.pipeline"),
        PrinterColumn(name="Last Decision", type="string", json_path=".status.decisions[0].reason"),
        PrinterColumn(name="Last Triggered", type="date", json_path=".status.lastTriggeredTime"),
        READY_COLUMN,
        PrinterColumn(  # a string: kubectl renders future dates as <invalid>
            name="Next Schedule",
            type="string",
            json_path=".status.nextScheduledTime",
            priority=1,
        ),
        AGE_COLUMN,
    )

    kind: str = "RetrainPolicy"
    spec: RetrainPolicySpec
    status: RetrainPolicyStatus = Field(default_factory=RetrainPolicyStatus)
