"""Many training runs requested one after another, and the count that proves none was lost or
repeated: every requested run in the pipeline's status, each ended with a ModelVersion or a
recorded failure, and exactly one ModelVersion per run."""

from __future__ import annotations

import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes.client import ApiClient, ApiException, CoordinationV1Api

from tests.integration.conftest import Resources, example, wait_for
from tests.integration.test_training import _pipeline

RUN_TIMEOUT = 180
ACTIVE = ("Pending", "Running")


def many_runs_pipelines(resources: Resources, count: int) -> list[str]:
    """`count` iris pipelines (each its own model) on one FeatureSet: quick runs, a history
    long enough to hold them all, nothing served (a Production version is promoted, no pods
    start: the runs are what is counted). Their names."""
    resources.create("featuresets", example("iris", "featureset.yaml"))
    names = [f"iris-{n}" for n in range(count)]
    for name in names:
        body = _pipeline("iris")
        body["metadata"]["name"] = name
        body["spec"]["model"]["name"] = f"{name}-classifier"
        body["spec"]["runs"] = {"historyLimit": 50, "backoffLimit": 1}
        body["spec"]["serving"] = {"replicas": 0}
        resources.create("trainingpipelines", body)
    resources.wait_ready("featuresets", "iris", "True", timeout=RUN_TIMEOUT)
    return names


def runs(resources: Resources, name: str) -> list[dict[str, Any]]:
    return list((resources.get("trainingpipelines", name).get("status") or {}).get("runs", []))


def request_runs(
    resources: Resources,
    names: list[str],
    rounds: int,
    between: Callable[[int], None] = lambda _: None,
) -> None:
    """`rounds` runs of each pipeline, the pipelines side by side, each pipeline's next run
    requested once its last has ended; `between(k)` after the k-th round's requests (where a
    test kills what it kills)."""
    for k in range(1, rounds + 1):
        patch = {"metadata": {"annotations": {"conveyor.dev/run-requested": f"fault-{k}"}}}
        for name in names:
            resources.patch("trainingpipelines", name, patch)
        between(k)
        wait_for(
            lambda k=k: all(_ended(resources, name, k) for name in names),  # type: ignore[misc]
            timeout=RUN_TIMEOUT,
            what=f"round {k} of runs to end (runs: {[_phases(resources, n) for n in names]})",
        )


def _ended(resources: Resources, name: str, k: int) -> bool:
    recorded = [r for r in runs(resources, name) if r["trigger"]["type"] == "manual"]
    return len(recorded) >= k and recorded[0]["phase"] not in ACTIVE


def _phases(resources: Resources, name: str) -> list[str]:
    return [f"{r['id']}:{r['phase']}" for r in runs(resources, name)]


@dataclass
class RunCount:
    requested: int
    runs: int
    succeeded: int
    failed: int
    versions: int
    lost: int
    duplicate_runs: int
    duplicate_versions: int
    unaccounted: list[str]

    def describe(self) -> str:
        return (
            f"{self.requested} runs requested: {self.runs} runs ({self.succeeded} succeeded, "
            f"{self.failed} failed with a recorded reason), {self.versions} ModelVersions; "
            f"{self.lost} lost, {self.duplicate_runs} duplicate runs, "
            f"{self.duplicate_versions} duplicate ModelVersions"
        )


def count_runs(resources: Resources, names: list[str], requested: int) -> RunCount:
    """The requested (manual) runs of the pipelines and their versions."""
    manual = [
        (name, r)
        for name in names
        for r in runs(resources, name)
        if r["trigger"]["type"] == "manual"
    ]
    ids = Counter(r["id"] for _, r in manual)
    requests = Counter((name, r["trigger"].get("reason", "")) for name, r in manual)
    versions = [
        v
        for v in resources.list("modelversions")
        if v["spec"]["lineage"]["pipeline"] in names and v["spec"]["lineage"]["run"] in ids
    ]
    per_run = Counter(v["spec"]["lineage"]["run"] for v in versions)
    unaccounted = [
        f"{r['id']}: {r['phase']}"
        for _, r in manual
        if not (r["phase"] in ("Succeeded", "Rejected") and per_run[r["id"]] == 1)
        and not (r["phase"] == "Failed" and r.get("message"))
    ]
    return RunCount(
        requested=requested,
        runs=len(ids),
        succeeded=sum(r["phase"] in ("Succeeded", "Rejected") for _, r in manual),
        failed=sum(r["phase"] == "Failed" for _, r in manual),
        versions=len(versions),
        lost=max(0, requested - len(ids)),
        duplicate_runs=sum(n - 1 for n in ids.values()) + sum(n - 1 for n in requests.values()),
        duplicate_versions=sum(n - 1 for n in per_run.values()),
        unaccounted=unaccounted,
    )


def leader_gauge(url: str) -> float | None:
    """conveyor_operator_leader on one replica's /metrics; None when it does not answer."""
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("conveyor_operator_leader "):
            return float(line.split()[1])
    return None


def lease_holder(client: ApiClient, namespace: str = "conveyor-system") -> str:
    """The holderIdentity of the operator's Lease ("" before it exists or when none holds it)."""
    try:
        lease = CoordinationV1Api(client).read_namespaced_lease("conveyor-operator", namespace)
    except ApiException as error:
        if error.status != 404:
            raise
        return ""
    return str(lease.spec.holder_identity or "")
