"""ModelVersion: one entry of the model registry.

The operator creates ModelVersions, as a CronJob creates Jobs. `spec.stage` is the desired stage —
set by a person (`conveyor promote`, `kubectl patch`, a pin in Git) or by the pipeline's promotion
policy — and `status` reports what is actually served.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from .common import (
    AGE_COLUMN,
    NAME_PATTERN,
    ApiModel,
    Condition,
    CustomResource,
    PrinterColumn,
    Rule,
    validation_rules,
)

__all__ = [
    "Artifact",
    "FeatureDrift",
    "GateResult",
    "Lineage",
    "LiveMetrics",
    "ModelVersion",
    "ModelVersionSpec",
    "ModelVersionStatus",
    "OnnxArtifact",
    "SameRequestsMetrics",
    "ServingStatus",
    "Stage",
    "StageChange",
]

Stage = Literal["Candidate", "Production", "Archived", "Rejected"]
SHA256_PATTERN = r"^sha256:[a-f0-9]{64}$"
_NEVER_CHANGES = "a registry entry never changes; train a new version"
# The registry record of a run: what the operator wrote when it registered the version.
IMMUTABLE = validation_rules(Rule("self == oldSelf", message=f"is immutable: {_NEVER_CHANGES}"))


class OnnxArtifact(ApiModel):
    """The estimator exported to ONNX at training, checked on the holdout rows to answer as
    scikit-learn does; the server predicts with it (the feature step stays the skops file's)."""

    uri: str = Field(pattern=r"^s3://")
    """The ONNX file, beside the model file; never overwritten."""
    digest: str = Field(pattern=SHA256_PATTERN)
    """sha256 of the ONNX file; servers verify it before loading."""
    size_bytes: int | None = Field(default=None, ge=0)
    """Size of the ONNX file."""


class Artifact(ApiModel):
    """The fitted pipeline in a safe format, and the files beside it."""

    uri: str = Field(pattern=r"^s3://")
    """The model file (s3://bucket/models/<model>/<version>/model.skops); never overwritten."""
    digest: str = Field(pattern=SHA256_PATTERN)
    """sha256 of the model file; servers verify it before loading."""
    format: Literal["skops"] = "skops"
    """The file format; skops with an explicit trusted-type list, never pickle."""
    size_bytes: int | None = Field(default=None, ge=0)
    """Size of the model file."""
    card_uri: str | None = Field(default=None, pattern=r"^s3://")
    """The model card (JSON): params, metrics, gates, schema, reference profile, versions."""
    report_uri: str | None = Field(default=None, pattern=r"^s3://")
    """The HTML training report."""
    onnx: OnnxArtifact | None = None
    """The estimator as ONNX, when a converter exists and it answered as scikit-learn does."""


class Lineage(ApiModel):
    """Where the model came from."""

    pipeline: str
    """The TrainingPipeline."""
    run: str
    """The run id."""
    feature_set: str
    """The FeatureSet."""
    snapshot: str
    """The feature snapshot id trained on."""
    image: str
    """The image that trained it."""
    trained_at: datetime | None = None
    """When training finished."""
    holdout: str | None = None
    """The fingerprint of the holdout rows it was judged on: versions with the same one have
    comparable metrics (the same rows of the same snapshot)."""


class GateResult(ApiModel):
    """The outcome of one validation gate."""

    name: str
    """The gate, e.g. threshold:accuracy, beatProduction, maxTrainingSeconds, maxModelBytes."""
    passed: bool
    """Whether the model met it."""
    message: str = ""
    """The measured value against the bound."""


class ModelVersionSpec(ApiModel):
    """The registry record (written by the operator) and the desired stage (yours to change).

    The record is immutable once created (the CRD's rules); only the operator writes it (the
    admission policies in manifests/admission)."""

    model_config = ConfigDict(
        json_schema_extra=validation_rules(
            Rule(
                "has(self.metrics) == has(oldSelf.metrics) && has(self.params) == "
                "has(oldSelf.params) && has(self.gates) == has(oldSelf.gates)",
                message=f"metrics, params and gates cannot be removed: {_NEVER_CHANGES}",
            )
        )
    )

    model: str = Field(pattern=NAME_PATTERN, max_length=50, json_schema_extra=IMMUTABLE)
    """The registry model name."""
    version: int = Field(ge=1, json_schema_extra=IMMUTABLE)
    """Version number, monotonic per model."""
    stage: Stage = "Candidate"
    """Desired stage: Candidate, Production (serve it), Archived or Rejected."""
    artifact: Artifact = Field(json_schema_extra=IMMUTABLE)
    """The model file and its digest."""
    task: Literal["classification", "regression"] = Field(json_schema_extra=IMMUTABLE)
    """What the model predicts."""
    metric: str = Field(json_schema_extra=IMMUTABLE)
    """The pipeline's primary metric."""
    metrics: dict[str, float] = Field(default_factory=dict, json_schema_extra=IMMUTABLE)
    """Holdout metrics (and baseline_* for the dummy-estimator baseline)."""
    params: dict[str, Any] = Field(default_factory=dict, json_schema_extra=IMMUTABLE)
    """The estimator parameters of the fitted model."""
    lineage: Lineage = Field(json_schema_extra=IMMUTABLE)
    """Pipeline, run, snapshot and image."""
    gates: list[GateResult] = Field(default_factory=list, json_schema_extra=IMMUTABLE)
    """Validation gate outcomes."""
    delete_artifacts: bool = False
    """Delete the artifact files from storage when this version is deleted."""


class StageChange(ApiModel):
    """One entry of the stage history."""

    stage: Stage
    """The stage entered."""
    time: datetime
    """When."""
    reason: str = ""
    """Why: promoted by policy, by a person, archived by a newer promotion, rolled back."""


class ServingStatus(ApiModel):
    """The serving Deployment while this version is Production."""

    deployment: str | None = None
    """The serving Deployment."""
    service: str | None = None
    """The serving Service."""
    url: str | None = None
    """Where predictions are answered."""
    replicas: int = 0
    """Desired serving pods."""
    ready_replicas: int = 0
    """Serving pods ready with this version."""


class FeatureDrift(ApiModel):
    """Drift of one raw input column over the window, against the model card's reference."""

    psi: float | None = None
    """Population stability index on the reference's decile bins (or categories): below 0.1
    stable, 0.1-0.2 moderate, above 0.2 a real shift."""
    ks: float | None = None
    """Kolmogorov-Smirnov statistic (numeric columns): the largest gap between the live and
    the reference distribution functions, 0 to 1."""
    chi2: float | None = None
    """Chi-square statistic of the live categories against the reference shares."""
    p_value: float | None = None
    """The chi-square p-value; with many samples tiny for any difference: read cramersV."""
    cramers_v: float | None = None
    """Cramér's V, the chi-square's effect size, 0 (same shares) to 1."""


class SameRequestsMetrics(ApiModel):
    """This version and another on the labelled requests both answered: a shadow answers a
    copy of its champion's requests, so the two are judged on the same inputs."""

    version: int
    """The other version."""
    labelled_samples: int
    """Labelled requests both answered."""
    metrics: dict[str, float] = Field(default_factory=dict)
    """This version's live metrics on them."""
    other_metrics: dict[str, float] = Field(default_factory=dict)
    """The other version's live metrics on them."""


class LiveMetrics(ApiModel):
    """Live quality of this version: its served predictions joined with feedback labels, and
    the drift of its logged inputs, over a sliding window (written by the operator's monitor)."""

    window_seconds: float
    """How far back the figures look."""
    predictions: int = 0
    """Predictions logged in the window."""
    labelled_samples: int = 0
    """Predictions in the window with a feedback label: what the metrics are computed on."""
    metrics: dict[str, float] = Field(default_factory=dict)
    """accuracy, f1 (macro) and log_loss for classifiers; rmse and mae for regressors."""
    drift: dict[str, FeatureDrift] = Field(default_factory=dict)
    """Per raw input column with a reference in the model card."""
    same_requests: list[SameRequestsMetrics] = Field(default_factory=list)
    """Side by side with each other served version on the requests both answered."""
    observed_objects: int = 0
    """Log objects of the model the monitor has read since it started."""
    unreadable_objects: int = 0
    """Of those, the ones it skipped as unreadable."""
    last_updated: datetime | None = None
    """When the monitor computed these figures."""


class ModelVersionStatus(ApiModel):
    """What the operator observed and did."""

    observed_generation: int | None = None
    """The metadata.generation this status describes."""
    conditions: list[Condition] = Field(default_factory=list)
    """Ready, Serving (Production rolled out), Degraded;
    Reconciling and Stalled as kstatus defines them (`kubectl wait`, Flux, Argo CD)."""
    stage: Stage | None = None
    """The stage actually in effect."""
    stage_history: list[StageChange] = Field(default_factory=list)
    """Stage changes, oldest first."""
    serving: ServingStatus | None = None
    """The serving Deployment, while Production."""
    live_metrics: LiveMetrics | None = None
    """Live quality from prediction and feedback logs, while it has logs in the window."""


class ModelVersion(CustomResource):
    kind_name: ClassVar[str] = "ModelVersion"
    plural: ClassVar[str] = "modelversions"
    singular: ClassVar[str] = "modelversion"
    short_names: ClassVar[tuple[str, ...]] = ("mv",)
    description: ClassVar[str] = (
        "A trained model in the registry: artifact and digest, metrics, lineage and stage."
    )
    printer_columns: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn(name="Model", type="string", json_path=".spec.model"),
        PrinterColumn(name="Version", type="integer", json_path=".spec.version"),
        PrinterColumn(name="Stage", type="string", json_path=".spec.stage"),
        PrinterColumn(name="Served", type="string", json_path=".status.stage"),
        PrinterColumn(name="Metric", type="string", json_path=".spec.metric", priority=1),
        PrinterColumn(name="Run", type="string", json_path=".spec.lineage.run", priority=1),
        AGE_COLUMN,
    )

    kind: str = "ModelVersion"
    spec: ModelVersionSpec
    status: ModelVersionStatus = Field(default_factory=ModelVersionStatus)
