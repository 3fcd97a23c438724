"""TrainingPipeline: automated training runs whose models go to the registry.

A run pins the FeatureSet's current snapshot, trains a scikit-learn pipeline (the FeatureSet's
transforms, then an allowlisted estimator) in a Job, evaluates it, applies the validation gates
and registers a ModelVersion; the promotion policy decides whether it goes to Production.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

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
    ResourceRequirements,
    Rule,
    validation_rules,
)
from .rollout import Rollout, RolloutState, ShadowState

__all__ = [
    "Gates",
    "MetricName",
    "MetricThreshold",
    "ModelSpec",
    "Promotion",
    "RolloutFailure",
    "RunPhase",
    "RunStatus",
    "RunTrigger",
    "Runs",
    "Search",
    "Serving",
    "ServingState",
    "Split",
    "TrainingPipeline",
    "TrainingPipelineSpec",
    "TrainingPipelineStatus",
]

Task = Literal["classification", "regression"]
MetricName = Literal[
    "accuracy",
    "balanced_accuracy",
    "f1",
    "f1_macro",
    "f1_weighted",
    "precision",
    "recall",
    "roc_auc",
    "log_loss",
    "rmse",
    "mae",
    "r2",
    "mape",
]
SplitStrategy = Literal["holdout", "kfold", "time"]
SearchStrategy = Literal["none", "grid", "random", "halving", "bayesian"]
PromotionPolicy = Literal["auto", "manual", "live"]
ConcurrencyPolicy = Literal["Forbid", "Replace"]
RunPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Rejected", "Cancelled"]
TriggerType = Literal["manual", "specChange", "schedule", "performance", "drift", "alert"]


class ModelSpec(ApiModel):
    """The model: its registry name, the estimator and its parameters."""

    name: str = Field(pattern=NAME_PATTERN, max_length=50)
    """Registry name; versions are named <name>-v<N>."""
    estimator: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]*$", max_length=200)
    """An allowlisted estimator: a scikit-learn class name (RandomForestClassifier, Ridge, ...)
    or a plugin registered in the entry-point group conveyor.estimators."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Constructor parameters of the estimator, checked against its signature before a run."""


class Split(ApiModel):
    """How rows are divided for training and evaluation."""

    strategy: SplitStrategy = "holdout"
    """holdout (random, seeded), kfold (cross-validated scores, holdout for the final model),
    or time (the newest rows by the FeatureSet's event time form the holdout)."""
    test_size: float = Field(default=0.2, gt=0, lt=1)
    """Share of rows held out for evaluation and gates."""
    folds: int = Field(default=5, ge=2, le=50)
    """Folds of kfold and of cross-validated search."""
    seed: int = Field(default=42, ge=0)
    """Random seed: the same snapshot and seed give the same split."""
    stratify: bool = True
    """Keep class proportions in the holdout (classification)."""


class Search(ApiModel):
    """Hyper-parameter search over the estimator's parameters."""

    strategy: SearchStrategy = "none"
    """none, grid, random, halving (successive halving) or bayesian (Optuna TPE)."""
    space: dict[str, Any] = Field(default_factory=dict)
    """Per parameter either a list of values, or a range {low, high, log, type: int|float}."""
    trials: int = Field(default=20, ge=1, le=10000)
    """Candidates tried by random and bayesian search."""
    timeout_seconds: int | None = Field(default=None, ge=1)
    """Time budget of the search; the best so far wins when it runs out."""
    parallelism: int = Field(default=1, ge=1, le=64)
    """More than 1 spreads trials across the pods of an Indexed Job."""


class MetricThreshold(ApiModel):
    """A bound a holdout metric must meet."""

    metric: MetricName
    """The metric, computed on the holdout."""
    min: float | None = None
    """The metric must be at least this."""
    max: float | None = None
    """The metric must be at most this."""


class Gates(ApiModel):
    """Validation gates: a model that fails one is registered Rejected and never served."""

    thresholds: list[MetricThreshold] = Field(default_factory=list)
    """Metric bounds on the holdout."""
    beat_production_by: float | None = None
    """When set, the candidate must beat the current Production version on this run's holdout
    by at least this margin of the pipeline's metric (champion/challenger)."""
    max_training_seconds: int | None = Field(default=None, ge=1)
    """A deadline on the run's training (search and refit): a run still training at this
    point is stopped and fails with TrainingTimeExceeded; the Job's default
    activeDeadlineSeconds follows from it."""
    max_model_bytes: int | None = Field(default=None, ge=1)
    """The model artifact must be at most this large."""


class Promotion(ApiModel):
    """When a registered version goes to Production."""

    policy: PromotionPolicy = "manual"
    """auto promotes a version that passed its gates; manual waits for `conveyor promote`;
    live promotes the shadowed candidate (spec.serving.rollout.strategy Shadow) once its live
    score beats Production's by beatProductionBy, both on minLabelledSamples labelled
    requests or more."""
    beat_production_by: float = Field(default=0.0, ge=0)
    """live: the margin of the live metric by which the candidate must beat Production
    (higher for scores, lower for errors such as rmse and log_loss)."""
    min_labelled_samples: int = Field(default=100, ge=1)
    """live: the labelled live requests both versions must have answered (the shadow
    predicts a copy of Production's) before they are compared on them."""
    version: int | None = Field(default=None, ge=1)
    """A pin kept in Git: while set, the operator serves exactly this version of the model,
    whatever the policy says (a version promoted by hand goes back to the pin), and
    status.betterCandidate names a Candidate whose metric beats it. Changing the pin is a
    rollout (with spec.serving.rollout); reverting the commit is the rollback."""


class Serving(
    ApiModel,
    json_schema_extra=validation_rules(
        Rule(
            "has(self.minReplicas) == has(self.maxReplicas)",
            message="set minReplicas and maxReplicas together (autoscaling), or neither",
        ),
        Rule(
            "!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",
            message="minReplicas must not exceed maxReplicas",
            field_path=".minReplicas",
        ),
    ),
):
    """The serving Deployment of the model's Production version."""

    replicas: int = Field(default=1, ge=0, le=100)
    """Serving pods without autoscaling; 0 serves nothing (the objects stay)."""
    min_replicas: int | None = Field(default=None, ge=1, le=100)
    """With maxReplicas: a HorizontalPodAutoscaler (autoscaling/v2) keeps between minReplicas
    and maxReplicas pods, by CPU use; replicas is then ignored."""
    max_replicas: int | None = Field(default=None, ge=1, le=100)
    """The most pods the autoscaler may run."""
    target_cpu_utilization: int = Field(default=80, ge=1, le=100)
    """The average CPU use, in percent of each pod's CPU request, the autoscaler aims at."""
    progress_deadline_seconds: int = Field(default=600, ge=1, le=86400)
    """A version not ready on every pod by then is rolled back to the version serving before
    (the Deployment's progressDeadlineSeconds); so is one whose pods fail to start (wrong
    digest, unreadable artifact, failed warm-up, crash loop) before then."""
    resources: ResourceRequirements | None = None
    """Compute resources of each serving container."""
    log_predictions: bool = True
    """Write inputs and predictions to the prediction log (drift and performance checks read it)."""
    log_sample_ratio: float = Field(default=1.0, ge=0, le=1)
    """Share of predictions logged (feedback and refused requests are logged whatever it is)."""
    log_flush_seconds: float = Field(default=5.0, ge=0.1, le=3600)
    """Each pod writes a log object when its oldest buffered record is this old..."""
    log_batch_records: int = Field(default=1000, ge=1, le=100_000)
    """...or when this many records are buffered."""
    log_buffer_records: int = Field(default=100_000, ge=1000, le=10_000_000)
    """At most this many log records wait in a pod's memory while storage is slow or down;
    more are dropped and counted (conveyor_serving_log_records_dropped_total)."""
    rollout: Rollout = Field(default_factory=Rollout)
    """How a newly promoted version replaces the one serving: RollingUpdate or Canary."""


class Runs(ApiModel):
    """How runs start and how many are kept."""

    concurrency_policy: ConcurrencyPolicy = "Forbid"
    """Forbid keeps the active run and skips the new trigger; Replace cancels it and starts anew."""
    run_on_spec_change: bool = False
    """Start a run when the pipeline's spec changes."""
    history_limit: int = Field(default=10, ge=1, le=100)
    """Runs kept in status."""
    backoff_limit: int = Field(default=1, ge=0, le=10)
    """Pod retries of a training Job."""
    active_deadline_seconds: int | None = Field(default=None, ge=60)
    """A training Job is stopped after this long. Default: spec.gates.maxTrainingSeconds
    plus 600 s (reading the snapshot, evaluating, writing) when that is set, else 7200."""
    resources: ResourceRequirements | None = None
    """Compute resources of each training container."""


class TrainingPipelineSpec(ApiModel):
    """The desired training pipeline."""

    feature_set: str = Field(pattern=NAME_PATTERN, max_length=253)
    """The FeatureSet (same namespace) whose snapshots are trained on."""
    model: ModelSpec
    """Registry name, estimator and parameters."""
    task: Task | None = None
    """classification or regression; inferred from the estimator when omitted."""
    features: list[str] | None = None
    """Feature columns used; all columns but the target, entity key and event time when omitted."""
    metric: MetricName | None = None
    """The metric search optimizes and gates compare; accuracy or rmse by task when omitted."""
    split: Split = Field(default_factory=Split)
    """Training / holdout split."""
    search: Search = Field(default_factory=Search)
    """Hyper-parameter search."""
    gates: Gates = Field(default_factory=Gates)
    """Validation gates."""
    promotion: Promotion = Field(default_factory=Promotion)
    """Promotion policy."""
    serving: Serving = Field(default_factory=Serving)
    """Serving settings of the Production version."""
    runs: Runs = Field(default_factory=Runs)
    """Run triggering, concurrency and history."""


class RunTrigger(ApiModel):
    """Why a run started."""

    type: TriggerType
    """manual, specChange, schedule, performance, drift or alert."""
    reason: str = ""
    """Details: who asked, which alert, which metric crossed which threshold."""
    source: str | None = None
    """The object that fired it (RetrainPolicy name), when any."""


class RunStatus(ApiModel):
    """One training run."""

    id: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    """Unique, readable run id (<pipeline>-<yyyymmdd-hhmmss>-<n>)."""
    trigger: RunTrigger
    """Why it started."""
    phase: RunPhase = "Pending"
    """Pending (waiting for a snapshot), Running, Succeeded, Failed, Rejected (gates), Cancelled."""
    snapshot: str | None = None
    """The feature snapshot id the run is pinned to."""
    job: str | None = None
    """The training Job."""
    start_time: datetime | None = None
    """When the run started."""
    completion_time: datetime | None = None
    """When it ended."""
    best_score: float | None = None
    """The pipeline metric of the trained model on the holdout."""
    model_version: str | None = None
    """The ModelVersion registered by this run."""
    message: str | None = None
    """What happened, or the failure reason taken from the pod."""
    retries: int = Field(default=0, ge=0)
    """Times the run's Job was run again after it failed for a reason that passes (storage
    unavailable): with back-off, up to three times, beyond the Job's own pod retries."""


class RolloutFailure(ApiModel):
    """A version that could not serve: it takes no traffic until it changes."""

    version: str
    """The ModelVersion."""
    generation: int = Field(ge=0)
    """Its metadata.generation when it failed: a change of its spec (stage set anew) retries."""
    reason: str
    """DigestMismatch, ArtifactUnreadable, WarmupFailed, CrashLoop, ProgressDeadlineExceeded,
    or a canary's abort: CanaryErrorRate, CanaryLatency, CanaryLiveScore."""
    message: str = ""
    """What the server or Kubernetes said."""
    time: datetime
    """When the rollout was given up."""


class ServingState(ApiModel):
    """The model's serving Deployment, as the operator last saw it."""

    deployment: str | None = None
    """The serving Deployment (and Service, and HorizontalPodAutoscaler when autoscaling)."""
    version: str | None = None
    """The ModelVersion the pods serve: the last version rolled out to every pod."""
    rolling_out: str | None = None
    """The ModelVersion being rolled out now, while the previous one keeps answering."""
    url: str | None = Field(default=None, pattern=r"^https?://")
    """Where the model answers inside the cluster (its Service)."""
    replicas: int = 0
    """Desired serving pods."""
    ready_replicas: int = 0
    """Serving pods ready."""
    failures: list[RolloutFailure] = Field(default_factory=list)
    """Versions whose rollout failed, newest first."""
    rollout: RolloutState | None = None
    """The last canary rollout: its step, share, versions, phase and last judgement."""
    shadow: ShadowState | None = None
    """The candidate shadowing Production (strategy Shadow), and the live comparison."""


class BetterCandidate(ApiModel):
    """A registered Candidate the pin keeps from serving, and by how much it is better."""

    name: str
    """The ModelVersion."""
    metric: str
    """The pipeline's metric (spec.metric) they were compared on."""
    score: float
    """The candidate's holdout value of the metric."""
    pinned_score: float
    """The pinned version's holdout value of the metric."""
    message: str = ""
    """What to change in Git to roll it out."""


class TrainingPipelineStatus(ApiModel):
    """What the operator observed and did."""

    observed_generation: int | None = None
    """The metadata.generation this status describes."""
    conditions: list[Condition] = Field(default_factory=list)
    """Ready, Progressing (a run is active), Degraded (the last run failed);
    Reconciling and Stalled as kstatus defines them (`kubectl wait`, Flux, Argo CD)."""
    runs: list[RunStatus] = Field(default_factory=list)
    """Recent runs, newest first."""
    active_run: str | None = None
    """The id of the run in progress."""
    production_version: str | None = None
    """The ModelVersion serving as Production."""
    latest_version: str | None = None
    """The newest registered ModelVersion."""
    pinned_version: str | None = None
    """The ModelVersion spec.promotion.version pins (what serves while the pin is set)."""
    better_candidate: BetterCandidate | None = None
    """While pinned: the Candidate that beats the pinned version on the pipeline's metric."""
    last_run_request: str | None = None
    """The value of the conveyor.dev/run-requested annotation already honoured."""
    last_policy_request: str | None = None
    """The id of the RetrainPolicy run request (conveyor.dev/policy-run-requested) already
    honoured."""
    spec_hash: str | None = None
    """Hash of the spec the last run was started for (runOnSpecChange)."""
    serving_url: str | None = Field(default=None, pattern=r"^https?://")
    """Where predictions are answered (the serving Service, inside the cluster)."""
    serving: ServingState | None = None
    """The serving Deployment: which version it serves, a rollout in progress, failed ones."""
    resolved_task: Literal["classification", "regression"] | None = None
    """The task, as given or inferred from the estimator."""
    feature_columns: list[str] | None = Field(default=None)
    """The feature columns a run trains on."""
    target: str | None = Field(default=None, pattern=COLUMN_PATTERN)
    """The target column, from the FeatureSet."""


class TrainingPipeline(CustomResource):
    kind_name: ClassVar[str] = "TrainingPipeline"
    plural: ClassVar[str] = "trainingpipelines"
    singular: ClassVar[str] = "trainingpipeline"
    short_names: ClassVar[tuple[str, ...]] = ("tp",)
    description: ClassVar[str] = (
        "Automated training of a scikit-learn model on a FeatureSet: search, evaluation, "
        "validation gates, registration and promotion."
    )
    printer_columns: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn(name="FeatureSet", type="string", json_path=".spec.featureSet"),
        PrinterColumn(name="Model", type="string", json_path=".spec.model.name"),
        PrinterColumn(name="Last Run", type="string", json_path=".status.runs[0].phase"),
        PrinterColumn(name="Production", type="string", json_path=".status.productionVersion"),
        PrinterColumn(name="Serving", type="string", json_path=".status.serving.version"),
        READY_COLUMN,
        PrinterColumn(
            name="Estimator", type="string", json_path=".spec.model.estimator", priority=1
        ),
        PrinterColumn(name="Pinned", type="string", json_path=".status.pinnedVersion", priority=1),
        PrinterColumn(
            name="Better", type="string", json_path=".status.betterCandidate.name", priority=1
        ),
        AGE_COLUMN,
    )

    kind: str = "TrainingPipeline"
    spec: TrainingPipelineSpec
    status: TrainingPipelineStatus = Field(default_factory=TrainingPipelineStatus)
