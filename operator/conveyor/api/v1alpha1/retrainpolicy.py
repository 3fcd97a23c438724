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
    "PendingRun",
    "PerformanceTrigger",
    "RetrainPolicy",
    "RetrainPolicySpec",
    "RetrainPolicyStatus",
    "ScheduleTrigger",
    "SeenAlert",
    "TriggerStatus",
    "Triggers",
]

DriftMethod = Literal["psi", "ks", "chi2"]
MatchOperator = Literal["=", "!=", "=~", "!~"]
DecisionTrigger = Literal["manual", "schedule", "performance", "drift", "alert"]
TriggerState = Literal["Fired", "Suppressed", "Quiet", "Waiting"]
PendingPhase = Literal["Materializing", "Requested"]


class ScheduleTrigger(ApiModel):
    """Retrain on a cron schedule, with CronJob's semantics."""

    cron: str = Field(min_length=9, max_length=200)
    """Five-field cron expression, e.g. "0 3 * * 1" (Mondays 03:00)."""
    time_zone: str = "UTC"
    """IANA time zone of the schedule; fire times follow its daylight-saving changes."""
    starting_deadline_seconds: int | None = Field(default=None, ge=1)
    """A fire time missed by more than this (the operator was down) is skipped, not run late.
    Many missed fire times start one run, never one each."""


class PerformanceTrigger(ApiModel):
    """Retrain when the Production version's live metric, from ground-truth feedback, drops."""

    metric: MetricName | None = None
    """The live metric judged; the pipeline's metric (else accuracy, else rmse) when omitted."""
    threshold: float
    """Fire when the metric is worse than this (below for scores, above for errors)."""
    min_samples: int = Field(default=50, ge=1)
    """Do not judge on fewer labelled predictions in the monitor's window than this."""


class DriftTrigger(ApiModel):
    """Retrain when the served inputs drift from the Production version's training data."""

    method: DriftMethod = "psi"
    """psi (population stability index, every feature), ks (Kolmogorov-Smirnov statistic,
    numeric features) or chi2 (Cramer's V, the chi-square's effect size, categorical features).
    A feature the method does not apply to is judged by the other effect size: Cramer's V for
    a categorical feature under ks, KS for a numeric one under chi2."""
    threshold: float = Field(default=0.2, gt=0)
    """A feature drifts when its score exceeds this."""
    features: list[str] | None = Field(default=None, min_length=1)
    """The raw input features watched; every feature with a reference when omitted."""
    min_samples: int = Field(default=200, ge=1)
    """Do not judge on fewer logged predictions in the monitor's window than this."""
    min_drifted_share: float = Field(default=0.0, ge=0, le=1)
    """Fire when at least this share of the watched features drift (and at least one does);
    0 fires on any one."""


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

    matchers: list[AlertMatcher] = Field(default_factory=list)
    """All must match an alert's labels. Empty: only alerts labelled
    conveyor_policy="<namespace>/<name>" of this policy match."""
    repeat_interval_seconds: int = Field(default=14_400, ge=0)
    """The same alert (fingerprint) again within this long is a repeat, not a new trigger:
    Alertmanager re-sends a firing alert every repeat_interval (4h by default)."""


class Triggers(ApiModel):
    """The triggers; any that is set can fire. A manual request
    (`conveyor retrain <policy>`) always can."""

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
    """A trigger while the pipeline has an active run: Forbid suppresses it (RunActive);
    Replace passes it on, and the pipeline's spec.runs.concurrencyPolicy decides."""
    max_runs_per_day: int | None = Field(default=None, ge=1)
    """At most this many runs started by this policy in any 24 hours."""
    min_new_rows: int = Field(default=0, ge=0)
    """No run unless the FeatureSet's newest snapshot is another than the Production
    version's and has at least this many more rows; 0 means no data requirement."""
    refresh_features: bool = False
    """Materialize the FeatureSet before the run (and before judging minNewRows), so the
    production data collected through predictionLogs is in it."""
    check_interval_seconds: int = Field(default=60, ge=1)
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
    """Whether a run was requested."""
    reason: str
    """CamelCase reason: Fired, Cooldown, RunActive, NotEnoughNewData, MaxRunsPerDay,
    Suspended, RunPending, DuplicateAlert, NotProduction (an alert about a replaced version),
    MissedDeadline."""
    message: str = ""
    """The figures: the metric against the threshold, the drifted features, the alert name
    and fingerprint, who asked."""
    request: str | None = None
    """The run request handed to the pipeline, when fired."""
    run: str | None = None
    """The run it started, once the pipeline started it."""


class TriggerStatus(ApiModel):
    """The latest verdict of one trigger."""

    trigger: DecisionTrigger
    """Which trigger."""
    state: TriggerState
    """Fired, Suppressed, Quiet (its condition does not hold) or Waiting (too few samples)."""
    reason: str
    """Why, in one CamelCase word."""
    message: str = ""
    """The figures."""
    last_transition_time: datetime
    """When state or reason last changed."""


class SeenAlert(ApiModel):
    """An alert that reached this policy: its repeats are recognised by the fingerprint."""

    fingerprint: str
    """Alertmanager's fingerprint of the alert's labels."""
    alertname: str = ""
    """The alert's name."""
    last_fired_time: datetime
    """When it last started a run (repeats within repeatIntervalSeconds do not)."""


class PendingRun(ApiModel):
    """A fired trigger on its way to a run: features being refreshed, or the request handed
    to the pipeline and not yet acknowledged. Recorded before anything is asked, so a
    restart carries it on instead of losing or repeating it."""

    request: str
    """The run request's id."""
    trigger: DecisionTrigger
    """The trigger that fired."""
    reason: str
    """What the run records as its reason."""
    phase: PendingPhase
    """Materializing (waiting for the FeatureSet) or Requested (waiting for the pipeline)."""
    since: datetime
    """When the trigger fired."""


class RetrainPolicyStatus(ApiModel):
    """What the operator observed and decided."""

    observed_generation: int | None = None
    """The metadata.generation this status describes."""
    conditions: list[Condition] = Field(default_factory=list)
    """Ready, Degraded;
    Reconciling and Stalled as kstatus defines them (`kubectl wait`, Flux, Argo CD)."""
    last_triggered_time: datetime | None = None
    """When a trigger last started a run (the cooldown counts from here)."""
    last_scheduled_time: datetime | None = None
    """The schedule's last fire time handled (run or skipped)."""
    next_scheduled_time: datetime | None = None
    """The schedule's next fire time."""
    last_manual_request: str | None = None
    """The conveyor.dev/retrain-requested annotation already handled."""
    last_performance: float | None = None
    """The live metric at the last check."""
    last_drift_score: float | None = None
    """The largest drift score of a watched feature at the last check."""
    last_check_time: datetime | None = None
    """When performance and drift were last evaluated."""
    recent_runs: list[datetime] = Field(default_factory=list)
    """When this policy requested runs in the last 24 hours (maxRunsPerDay)."""
    pending: PendingRun | None = None
    """A fired trigger whose run has not started yet."""
    triggers: list[TriggerStatus] = Field(default_factory=list)
    """Each trigger's latest verdict, on its own."""
    alerts: list[SeenAlert] = Field(default_factory=list)
    """Alerts that started runs, within their repeat interval."""
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
