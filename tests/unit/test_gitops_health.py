"""Argo CD shows each Conveyor object Healthy, Progressing or Degraded as kstatus would.

The health checks of manifests/gitops/argocd run under the real Lua 5.1 interpreter
(`tests.gitops.argo_health`) against status written the way the operator writes it: the
conditions come from `reconcile.common.status_patch` on the outcomes the reconcilers produce
(their reasons and messages), so Ready, Reconciling and Stalled are the operator's own.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.reconcile.common import Outcome, invalid_spec, status_patch
from conveyor.resources.conditions import ConditionUpdate
from tests.conftest import EXAMPLES, load_yaml_documents
from tests.gitops import ARGOCD_CM, HEALTH_LUA, KINDS, argo_health, argocd_cm_text, health_key, lua

pytestmark = pytest.mark.skipif(
    lua() is None,
    reason="lua5.1 is not installed (apt-get install lua5.1): it runs Argo CD's checks",
)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
HEALTHS = {"Healthy", "Progressing", "Degraded"}
EXAMPLE_FILES = {
    "FeatureSet": "featureset.yaml",
    "TrainingPipeline": "trainingpipeline.yaml",
    "RetrainPolicy": "retrainpolicy.yaml",
}


def _object(kind: str, generation: int = 2) -> dict[str, Any]:
    if kind in EXAMPLE_FILES:
        body = load_yaml_documents(EXAMPLES / "iris" / EXAMPLE_FILES[kind])[0]
    else:
        body = {
            "apiVersion": "conveyor.dev/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {"name": "iris-classifier-v3"},
            "spec": {"model": "iris-classifier", "version": 3, "stage": "Candidate"},
        }
    body["metadata"].update(namespace="team-a", uid="u-1", generation=generation)
    return body


def _observed(kind: str, *outcomes: Outcome, generation: int = 2) -> dict[str, Any]:
    """The object after the operator wrote each outcome's status in turn, at `generation`."""
    body = _object(kind, generation)
    status: dict[str, Any] = {}
    for outcome in outcomes:
        patch, _ = status_patch(status, outcome, generation=generation, now=NOW)
        status = {**status, **patch}
    body["status"] = status
    return body


def _ready(reason: str, message: str) -> ConditionUpdate:
    return ConditionUpdate("Ready", "True", reason, message)


# Outcomes as the reconcilers build them (reconcile/materialization.py, runs.py, modelversion.py,
# retrainpolicy.py): their condition types, reasons and messages.
SNAPSHOT = Outcome(
    [
        _ready("SnapshotReady", "Snapshot 0123456789ab has 150 rows"),
        ConditionUpdate("Progressing", "False", "UpToDate", "The latest snapshot matches"),
        ConditionUpdate("Degraded", "False", "UpToDate", ""),
    ]
)
FIRST_MATERIALIZATION = Outcome(
    [
        ConditionUpdate("Progressing", "True", "Materializing", "Job iris-mat-0123 is running"),
        ConditionUpdate("Ready", "False", "Materializing", "Job iris-mat-0123 is running"),
    ]
)
REMATERIALIZATION = Outcome(
    [ConditionUpdate("Progressing", "True", "Materializing", "Job iris-mat-4567 is running")]
)
MATERIALIZATION_FAILED = Outcome(
    [
        ConditionUpdate("Degraded", "True", "SourceUnreadable", "s3://raw/iris.csv: NoSuchKey"),
        ConditionUpdate("Progressing", "False", "SourceUnreadable", "s3://raw/iris.csv: NoSuchKey"),
        _ready("SnapshotReady", "Serving the previous snapshot; the newest attempt failed"),
    ]
)
PIPELINE_IDLE = Outcome(
    [
        _ready("SpecValid", 'Trains LogisticRegression on FeatureSet "iris"'),
        ConditionUpdate("Progressing", "False", "Idle", "No run is active"),
        ConditionUpdate("Degraded", "False", "LastRunHealthy", ""),
    ]
)
PIPELINE_RUNNING = Outcome(
    [
        _ready("SpecValid", 'Trains LogisticRegression on FeatureSet "iris"'),
        ConditionUpdate("Progressing", "True", "RunActive", "Run iris-r4: Training"),
        ConditionUpdate("Degraded", "False", "LastRunHealthy", ""),
    ]
)
PIPELINE_RUN_FAILED = Outcome(
    [
        _ready("SpecValid", 'Trains LogisticRegression on FeatureSet "iris"'),
        ConditionUpdate("Progressing", "False", "Idle", "No run is active"),
        ConditionUpdate("Degraded", "True", "RunFailed", "Run iris-r4: OOMKilled"),
    ]
)
INVALID = invalid_spec("spec.split.testSize: Input should be less than 1")
WAITING_FOR_FEATURESET = invalid_spec(
    'FeatureSet "iris" does not exist yet', reason="FeatureSetMissing", stalled=False
)
REGISTERED = Outcome([_ready("Registered", "iris-classifier-v3 (accuracy 0.9667) is Candidate")])
REJECTED = Outcome(
    [
        ConditionUpdate(
            "Ready",
            "False",
            "RejectedByGates",
            "iris-classifier-v3 failed its gates and is never served (minScore: 0.6 < 0.9)",
        )
    ],
    stalled=True,
)
WATCHING = Outcome([_ready("Watching", 'Retrains "iris" on schedule and manual requests')])
SUSPENDED = Outcome([_ready("Suspended", 'Retrains "iris"; suspended: no run starts')])

CASES = [
    # kind, outcomes in the order written, health, message
    ("FeatureSet", [SNAPSHOT], "Healthy", "Snapshot 0123456789ab has 150 rows"),
    ("FeatureSet", [FIRST_MATERIALIZATION], "Progressing", "Job iris-mat-0123 is running"),
    ("FeatureSet", [SNAPSHOT, REMATERIALIZATION], "Progressing", "Job iris-mat-4567 is running"),
    ("FeatureSet", [SNAPSHOT, MATERIALIZATION_FAILED], "Degraded", "s3://raw/iris.csv: NoSuchKey"),
    ("FeatureSet", [INVALID], "Degraded", "spec.split.testSize: Input should be less than 1"),
    (
        "TrainingPipeline",
        [PIPELINE_IDLE],
        "Healthy",
        'Trains LogisticRegression on FeatureSet "iris"',
    ),
    ("TrainingPipeline", [PIPELINE_RUNNING], "Progressing", "Run iris-r4: Training"),
    (
        "TrainingPipeline",
        [PIPELINE_RUNNING, PIPELINE_RUN_FAILED],
        "Degraded",
        "Run iris-r4: OOMKilled",
    ),
    ("TrainingPipeline", [INVALID], "Degraded", "spec.split.testSize: Input should be less than 1"),
    (
        "TrainingPipeline",
        [WAITING_FOR_FEATURESET],
        "Progressing",
        'FeatureSet "iris" does not exist yet',
    ),
    (
        "TrainingPipeline",
        [PIPELINE_IDLE, INVALID],
        "Degraded",
        "spec.split.testSize: Input should be less than 1",
    ),
    ("ModelVersion", [REGISTERED], "Healthy", "iris-classifier-v3 (accuracy 0.9667) is Candidate"),
    (
        "ModelVersion",
        [REJECTED],
        "Degraded",
        "iris-classifier-v3 failed its gates and is never served (minScore: 0.6 < 0.9)",
    ),
    ("RetrainPolicy", [WATCHING], "Healthy", 'Retrains "iris" on schedule and manual requests'),
    ("RetrainPolicy", [SUSPENDED], "Healthy", 'Retrains "iris"; suspended: no run starts'),
    ("RetrainPolicy", [INVALID], "Degraded", "spec.split.testSize: Input should be less than 1"),
]


@pytest.mark.parametrize(
    ("kind", "outcomes", "health", "message"),
    CASES,
    ids=[f"{c[0]}-{c[2]}-{i}" for i, c in enumerate(CASES)],
)
def test_argo_cd_reads_the_status_the_operator_writes(
    kind: str, outcomes: list[Outcome], health: str, message: str
) -> None:
    assert argo_health(kind, _observed(kind, *outcomes)) == {"status": health, "message": message}


@pytest.mark.parametrize("kind", KINDS)
def test_an_object_the_operator_has_not_seen_yet_is_progressing(kind: str) -> None:
    waiting = {
        "status": "Progressing",
        "message": "Waiting for the operator to observe generation 2",
    }
    assert argo_health(kind, _object(kind)) == waiting
    body = _object(kind)
    body["status"] = {}
    assert argo_health(kind, body) == waiting


@pytest.mark.parametrize("kind", KINDS)
def test_a_spec_changed_in_git_is_progressing_until_observed_whatever_the_old_status(
    kind: str,
) -> None:
    """A commit raises metadata.generation; the conditions still describe the old spec."""
    healthy = {"FeatureSet": SNAPSHOT, "TrainingPipeline": PIPELINE_IDLE}.get(kind, REGISTERED)
    body = _observed(kind, healthy, generation=4)
    body["metadata"]["generation"] = 5
    assert argo_health(kind, body) == {
        "status": "Progressing",
        "message": "Waiting for the operator to observe generation 5",
    }
    failed = _observed(kind, INVALID, generation=4)
    failed["metadata"]["generation"] = 5
    assert argo_health(kind, failed)["status"] == "Progressing", "an old failure is not news"


def test_stalled_outranks_a_ready_condition_and_degraded_outranks_reconciling() -> None:
    body = _observed("FeatureSet", SNAPSHOT)
    conditions = body["status"]["conditions"]
    for c in conditions:
        if c["type"] == "Stalled":
            c.update(status="True", reason="SourceUnreadable", message="")
    assert argo_health("FeatureSet", body) == {"status": "Degraded", "message": "SourceUnreadable"}
    body = _observed("FeatureSet", SNAPSHOT, REMATERIALIZATION)
    for c in body["status"]["conditions"]:
        if c["type"] == "Degraded":
            c.update(status="True", reason="Failed", message="Job failed")
    assert argo_health("FeatureSet", body) == {"status": "Degraded", "message": "Job failed"}


def test_a_status_without_observed_generation_is_read_from_its_conditions() -> None:
    """As kstatus does: the generation check needs both numbers."""
    body = _observed("ModelVersion", REGISTERED)
    del body["status"]["observedGeneration"]
    assert argo_health("ModelVersion", body)["status"] == "Healthy"


# --- the scripts never fail -----------------------------------------------------------------

ODD = [
    None,
    {},
    {"metadata": None, "status": None},
    {"metadata": {"generation": "two"}, "status": {"observedGeneration": "one"}},
    {"metadata": {"generation": 3.0}, "status": {"observedGeneration": 2.5, "conditions": []}},
    {"metadata": {"generation": float("nan")}, "status": {"observedGeneration": float("inf")}},
    {"metadata": {"generation": 2**60}, "status": {"observedGeneration": 1}},
    {"status": "Ready"},
    {"status": ["Ready"]},
    {"status": {"conditions": "Ready=True"}},
    {"status": {"conditions": {"type": "Ready", "status": "True"}}},
    {"status": {"conditions": [None, 1, "x", [], {"type": None}, {"status": "True"}]}},
    {"status": {"conditions": [{"type": "Ready", "status": True, "message": 7}]}},
    {"status": {"conditions": [{"type": "Stalled", "status": "True", "message": {"a": 1}}]}},
    {"status": {"conditions": [{"type": "Ready", "status": "True", "message": '"]]\\\n\x00é'}]}},
    {"status": {"phase": "Succeeded"}},
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("obj", ODD, ids=[str(i) for i in range(len(ODD))])
def test_the_checks_give_a_health_for_any_shape_of_object(kind: str, obj: Any) -> None:
    result = argo_health(kind, copy.deepcopy(obj))
    assert result["status"] in HEALTHS and isinstance(result["message"], str)


def test_odd_text_comes_back_unchanged() -> None:
    text = '"]]\\\n\x00é 日本 [[x]] \\u0000 %d'
    body = _observed("ModelVersion", Outcome([_ready("Registered", text)]))
    assert argo_health("ModelVersion", body) == {"status": "Healthy", "message": text}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["type", "status", "message", "reason", "conditions", "x"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    generation=JSON,
    status=JSON,
    conditions=st.lists(
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(["Ready", "Reconciling", "Stalled", "Degraded", "x"]),
                "status": st.sampled_from(["True", "False", "Unknown"]) | JSON,
            },
            optional={"message": JSON, "reason": JSON},
        )
        | JSON,
        max_size=5,
    ),
)
def test_random_objects_always_get_a_health(generation: Any, status: Any, conditions: Any) -> None:
    body = {"metadata": {"generation": generation}, "status": status}
    if isinstance(status, dict):
        status["conditions"] = conditions
    result = argo_health("TrainingPipeline", body)
    assert result["status"] in HEALTHS and isinstance(result["message"], str)


# --- what Argo CD is given --------------------------------------------------------------------


def test_argocd_cm_holds_health_lua_for_each_kind() -> None:
    """argocd-cm.yaml is generated (`python -m tests.gitops`): regenerate it after editing."""
    assert ARGOCD_CM.read_text() == argocd_cm_text()
    data = yaml.safe_load(ARGOCD_CM.read_text())["data"]
    assert set(data) == {health_key(kind) for kind in KINDS}
    assert all(script == HEALTH_LUA.read_text() for script in data.values())


def test_the_flux_example_waits_on_the_four_kinds_from_its_git_repository() -> None:
    flux = ARGOCD_CM.parents[1] / "flux"
    (source,) = yaml.safe_load_all((flux / "gitrepository.yaml").read_text())
    operator, models = yaml.safe_load_all((flux / "kustomizations.yaml").read_text())
    for kustomization in (operator, models):
        assert kustomization["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
        assert kustomization["spec"]["sourceRef"] == {
            "kind": source["kind"],
            "name": source["metadata"]["name"],
        }
        assert kustomization["spec"]["timeout"]
    assert operator["spec"]["wait"] is True
    assert models["spec"]["dependsOn"] == [{"name": operator["metadata"]["name"]}]
    checks = models["spec"]["healthChecks"]
    assert {c["kind"] for c in checks} == set(KINDS)
    assert {c["apiVersion"] for c in checks} == {"conveyor.dev/v1alpha1"}
