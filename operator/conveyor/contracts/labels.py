"""The labels and annotations Conveyor puts on objects, spelled once for every side.

Labels select: the Jobs of a FeatureSet or a pipeline, the ModelVersions of a model, a run's
version. Annotations carry a person's request (`...-requested`, any new value is a new request)
or a reason; the operator's own bookkeeping lives under `kopf.conveyor.dev`.
"""

from __future__ import annotations

__all__ = [
    "ALERT_ANNOTATION_PREFIX",
    "FINALIZER",
    "LABEL_COMPONENT",
    "LABEL_FEATURESET",
    "LABEL_MANAGED_BY",
    "LABEL_MODEL",
    "LABEL_NAME",
    "LABEL_PHASE",
    "LABEL_PIPELINE",
    "LABEL_RUN",
    "LABEL_SNAPSHOT",
    "LABEL_TRACK",
    "LABEL_VERSION",
    "MANAGED_BY",
    "MATERIALIZE_REQUEST",
    "POLICY_RUN_REQUEST",
    "PREFIX",
    "RETRAIN_REQUEST",
    "RUN_REQUEST",
    "SANDBOX_URL",
    "SPEC_HASH",
    "STAGE_REASON",
    "component_labels",
]

PREFIX = "conveyor.dev"

LABEL_FEATURESET = f"{PREFIX}/featureset"
"""On materialize Jobs: the FeatureSet they materialize."""
LABEL_SNAPSHOT = f"{PREFIX}/snapshot"
"""On materialize Jobs: the snapshot id they write."""
LABEL_PIPELINE = f"{PREFIX}/pipeline"
"""On training Jobs and ModelVersions: the TrainingPipeline."""
LABEL_RUN = f"{PREFIX}/run"
"""On training Jobs and ModelVersions: the run id (how a restart finds a run's version)."""
LABEL_VERSION = f"{PREFIX}/version"
"""On serving pods (and their Deployment): the ModelVersion they serve."""
LABEL_TRACK = f"{PREFIX}/track"
"""On a canary's serving pods and in its Deployment's selector: `canary`."""
LABEL_MODEL = f"{PREFIX}/model"
"""On training Jobs and ModelVersions: the registry model name."""
LABEL_PHASE = f"{PREFIX}/phase"
"""On Jobs: the program's phase (all, partition, combine, trials, final)."""

MATERIALIZE_REQUEST = f"{PREFIX}/materialize-requested"
"""On a FeatureSet: a new value asks for a materialization now."""
RUN_REQUEST = f"{PREFIX}/run-requested"
"""On a TrainingPipeline: a new value starts a run now."""
RETRAIN_REQUEST = f"{PREFIX}/retrain-requested"
"""On a RetrainPolicy: a new value ("<time> by <who>: <reason>") is a manual trigger."""
POLICY_RUN_REQUEST = f"{PREFIX}/policy-run-requested"
"""On a TrainingPipeline: a RetrainPolicy's run request, JSON {"id", "trigger", "reason",
"policy"}; a new id starts a run recorded with that trigger."""
ALERT_ANNOTATION_PREFIX = f"{PREFIX}/alert-"
"""On a RetrainPolicy: `<prefix><fingerprint>` is a firing alert the webhook matched to it,
JSON {"alertname", "startsAt", "receivedAt", "summary"}; the policy's reconcile consumes it."""
STAGE_REASON = f"{PREFIX}/stage-reason"
"""On a ModelVersion: "<stage>: <why>", set with a change of spec.stage."""

LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "conveyor"

FINALIZER = f"{PREFIX}/finalizer"
"""The operator's finalizer on ModelVersions: they are created with it (see
`resources.modelversion`), and their reconcile removes it once a deletion may complete."""

SPEC_HASH = f"{PREFIX}/spec-hash"
"""On objects the operator keeps (serving Deployments, Services, autoscalers): the hash of the
spec it last wrote, so it patches only when what it wants changed."""

SANDBOX_URL = "sandbox.conveyor.dev/url"
"""On a Service in the sandbox: the local URL its proxy listens on."""


def component_labels(component: str) -> dict[str, str]:
    """The recommended labels of a workload Conveyor runs (materialize, train)."""
    return {LABEL_NAME: "conveyor", LABEL_COMPONENT: component}
