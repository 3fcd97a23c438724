"""The continuous-delivery loop, driven and timed in the sandbox: traffic whose inputs shift and
whose ground truth the served model no longer gets right, then every step from the bad metric to
a new version answering — the monitor's gauge, Prometheus's alert, Alertmanager, the policy's
decision, the run, the registration, the rollout.

`make demo` narrates one turn of it, the end-to-end test asserts it, `bench/loop.py` times it.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..clients.kube import Kube

if TYPE_CHECKING:
    from ..sandbox.stack import Sandbox
from ..contracts.labels import LABEL_RUN
from ..errors import ConveyorError
from ..resources.kinds import MODEL_VERSIONS, RETRAIN_POLICIES, TRAINING_PIPELINES
from .models import live_cells
from .serving import feedback, predict

__all__ = [
    "ALERTS",
    "Loop",
    "LoopTimes",
    "follow_retrain",
    "iris_loop",
    "send_labelled",
    "shifted_iris",
    "versions_and_triggers",
]

ALERTS = ("ConveyorFeatureDrift", "ConveyorLiveScoreLow")
"""The rules of manifests/monitoring/rules.yaml the shifted, mislabelled traffic fires."""
PSI_THRESHOLD = 0.25
"""The drift rule's threshold in manifests/monitoring/rules.yaml."""
POLL_SECONDS = 0.1


def shifted_iris(scale: float, first_id: int) -> list[tuple[dict[str, float | int], str]]:
    """The iris flowers measured `scale` times larger, with their true species and new entity
    keys: inputs the served model never saw, labels it now gets wrong."""
    from ..sandbox.datasets import labelled_requests  # scikit-learn's data, when needed

    return [
        ({k: v if k == "flower_id" else round(v * scale, 2) for k, v in row.items()}, str(label))
        for row, label in labelled_requests("iris", first_id)
    ]


def send_labelled(
    client: Kube,
    namespace: str,
    model: str,
    traffic: list[tuple[dict[str, float | int], str]],
    batch: int = 10,
) -> int:
    """Predict each row (`batch` rows a request), then send every label: the feedback joins
    the prediction logs. The number of labels the servers took."""
    items = []
    for start in range(0, len(traffic), batch):
        chunk = traffic[start : start + batch]
        answer = predict(client, namespace, model, [row for row, _ in chunk])
        items.append({"request_id": answer["request_id"], "labels": [label for _, label in chunk]})
    taken = feedback(client, namespace, model, {"feedback": items})
    return int(taken.get("accepted", 0))


@dataclass
class LoopTimes:
    """Seconds from the start of the shifted traffic to each step of the loop; None when the
    step was not observed (Prometheus and Alertmanager absent, or the loop stopped short)."""

    bad_metric: float | None = None
    """The operator's /metrics shows the drift of the served version over the rule's threshold."""
    alert_firing: float | None = None
    """Prometheus reports the alert firing."""
    alert_received: float | None = None
    """Alertmanager holds the alert (it notifies after its group wait)."""
    decision: float | None = None
    """The policy recorded its fired decision."""
    run_started: float | None = None
    """The run is training (features refreshed first)."""
    run_finished: float | None = None
    """The run succeeded."""
    registered: float | None = None
    """Its ModelVersion exists."""
    serving: float | None = None
    """The server answers with the new version."""
    trigger: str = ""
    """What fired: alert, drift, ..."""
    request: str = ""
    """The run request the policy handed the pipeline."""
    new_version: str = ""
    old_version: str = ""
    notes: list[str] = field(default_factory=list)

    def phases(self) -> dict[str, float | None]:
        """Detection, run start, training, registration and rollout, in seconds."""
        return {
            "detection": _span(self.bad_metric, self.decision),
            "run start": _span(self.decision, self.run_started),
            "training": _span(self.run_started, self.run_finished),
            "registration": _span(self.run_finished, self.registered),
            "rollout": _span(self.registered, self.serving),
        }


def _span(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else max(0.0, end - start)


@dataclass
class Loop:
    """Where to look: the sandbox's URLs, the objects of one namespace."""

    client: Kube
    namespace: str
    policy: str
    pipeline: str
    model: str
    operator_url: str
    prometheus_url: str | None = None
    alertmanager_url: str | None = None
    numbers: dict[str, str] = field(default_factory=dict)
    """ModelVersion name → version number, as read."""


def iris_loop(client: Kube, namespace: str, sandbox: Sandbox) -> Loop:
    """The iris example's loop in `namespace` of the running sandbox."""
    monitoring = sandbox.monitoring
    return Loop(
        client=client,
        namespace=namespace,
        policy="iris",
        pipeline="iris",
        model="iris-classifier",
        operator_url=sandbox.operator_url,
        prometheus_url=monitoring.prometheus_url if monitoring else None,
        alertmanager_url=monitoring.alertmanager_url if monitoring else None,
    )


def follow_retrain(
    loop: Loop,
    old_version: str,
    started: float,
    *,
    timeout: float,
    say: Callable[[str], None] = lambda _: None,
) -> LoopTimes:
    """Watch one turn of the loop after shifted traffic started at `started` (monotonic) until
    a version other than `old_version` answers; each step's time, and `say` once per step."""
    times = LoopTimes(old_version=old_version)
    deadline = time.monotonic() + timeout
    fired_before = {d.get("request") for d in _decisions(loop)}
    while time.monotonic() < deadline:
        now = time.monotonic() - started
        _observe_step(loop, times, now, fired_before, say)
        if times.serving is not None:
            return times
        time.sleep(POLL_SECONDS)
    times.notes.append(f"stopped after {timeout:.0f} s")
    return times


def _observe_step(
    loop: Loop, times: LoopTimes, now: float, fired_before: set[Any], say: Callable[[str], None]
) -> None:
    old = _number(loop, times.old_version)
    if times.bad_metric is None and _drift_over(loop, old):
        times.bad_metric = now
        say(f"{now:6.1f} s  the monitor exports input drift of {times.old_version} over PSI 0.25")
    if times.decision is None:
        firing = _prometheus_fires(loop, old) if times.alert_firing is None else []
        if firing:
            times.alert_firing = now
            say(f"{now:6.1f} s  Prometheus: {', '.join(firing)} firing")
        if times.alert_received is None and _alertmanager_holds(loop, old):
            times.alert_received = now
            say(f"{now:6.1f} s  Alertmanager has it; it calls the operator's webhook")
        decision = next(
            (
                d
                for d in _decisions(loop)
                if d.get("fired") and d.get("request") not in fired_before
            ),
            None,
        )
        if decision is not None:
            times.decision, times.trigger = now, str(decision["trigger"])
            times.request = str(decision.get("request", ""))
            say(
                f"{now:6.1f} s  RetrainPolicy {loop.policy}: {decision['trigger']} fired: "
                f"{decision['message'][:150]}"
            )
        return
    run = _policy_run(loop, times.request)
    if run is None:
        return
    if times.run_started is None and run.get("phase") in ("Running", "Succeeded"):
        times.run_started = now
        say(f"{now:6.1f} s  run {run['id']} training on snapshot {run.get('snapshot')}")
    if times.run_finished is None and run.get("phase") == "Succeeded":
        times.run_finished = now
        say(f"{now:6.1f} s  run {run['id']} succeeded")
    if run.get("phase") in ("Failed", "Rejected", "Cancelled"):
        raise ConveyorError(f"run {run['id']} ended {run['phase']}: {run.get('message', '')}")
    if times.registered is None:
        versions = loop.client.list(
            MODEL_VERSIONS, loop.namespace, selector=f"{LABEL_RUN}={run['id']}"
        )
        if versions:
            times.registered = now
            times.new_version = versions[0]["metadata"]["name"]
            say(f"{now:6.1f} s  registered {times.new_version}")
    if times.new_version and _answers_with(loop, _number(loop, times.new_version)):
        times.serving = now
        say(f"{now:6.1f} s  the server answers with {times.new_version}")


def _number(loop: Loop, version: str) -> str:
    """The version number a ModelVersion's server answers with and its gauges carry: read
    once per version, not at every poll (it never changes)."""
    if version not in loop.numbers:
        body = loop.client.get(MODEL_VERSIONS, loop.namespace, version) or {}
        loop.numbers[version] = str((body.get("spec") or {}).get("version", ""))
    return loop.numbers[version]


def _decisions(loop: Loop) -> list[dict[str, Any]]:
    policy = loop.client.get(RETRAIN_POLICIES, loop.namespace, loop.policy) or {}
    return list((policy.get("status") or {}).get("decisions") or [])


def _policy_run(loop: Loop, request: str) -> dict[str, Any] | None:
    """The run the policy's request started."""
    pipeline = loop.client.get(TRAINING_PIPELINES, loop.namespace, loop.pipeline) or {}
    for run in (pipeline.get("status") or {}).get("runs") or []:
        if f"[request {request}]" in ((run.get("trigger") or {}).get("reason") or ""):
            return dict(run)
    return None


def _answers_with(loop: Loop, number: str) -> bool:
    row = {
        "sepal_length_cm": 5.1,
        "sepal_width_cm": 3.5,
        "petal_length_cm": 1.4,
        "petal_width_cm": 0.2,
    }
    try:
        answer = predict(loop.client, loop.namespace, loop.model, [row])
    except ConveyorError:
        return False
    return answer.get("model_version") == number


_DRIFT_LINE = re.compile(r"^conveyor_model_feature_drift\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def _drift_over(loop: Loop, number: str) -> bool:
    try:
        with urllib.request.urlopen(f"{loop.operator_url}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return False
    wanted = (f'namespace="{loop.namespace}"', f'version="{number}"', 'method="psi"')
    matches = (_DRIFT_LINE.match(line) for line in text.splitlines())
    return any(
        match
        and all(label in match["labels"] for label in wanted)
        and float(match["value"]) > PSI_THRESHOLD
        for match in matches
    )


def _get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)
    except (OSError, ValueError):
        return None


def _prometheus_fires(loop: Loop, number: str) -> list[str]:
    """The names of the loop's alerts Prometheus reports firing about version `number`."""
    if loop.prometheus_url is None:
        return []
    answer = _get_json(f"{loop.prometheus_url}/api/v1/alerts") or {}
    names = {
        alert["labels"]["alertname"]
        for alert in (answer.get("data") or {}).get("alerts") or []
        if alert.get("state") == "firing"
        and alert.get("labels", {}).get("alertname") in ALERTS
        and alert.get("labels", {}).get("namespace") == loop.namespace
        and alert.get("labels", {}).get("version") == number
    }
    return sorted(names)


def _alertmanager_holds(loop: Loop, number: str) -> bool:
    if loop.alertmanager_url is None:
        return False
    matcher = f'alertname=~"{"|".join(ALERTS)}"'
    query = urllib.parse.urlencode(
        {"filter": [matcher, f'namespace="{loop.namespace}"', f'version="{number}"']}, doseq=True
    )
    answer = _get_json(f"{loop.alertmanager_url}/api/v2/alerts?{query}")
    return bool(answer)


def versions_and_triggers(client: Kube, namespace: str, pipeline: str, model: str) -> str:
    """The model's versions: stage, holdout metric, live metric and labelled samples, and what
    started the run that trained each."""
    body = client.get(TRAINING_PIPELINES, namespace, pipeline) or {}
    runs = {run["id"]: run for run in (body.get("status") or {}).get("runs") or []}
    versions = sorted(
        (v for v in client.list(MODEL_VERSIONS, namespace) if v["spec"]["model"] == model),
        key=lambda v: int(v["spec"]["version"]),
    )
    rows = [["VERSION", "STAGE", "HOLDOUT", "LIVE", "LABELLED", "TRIGGERED BY"]]
    for version in versions:
        spec, status = version["spec"], version.get("status") or {}
        metric = spec.get("metric", "")
        holdout = spec.get("metrics", {}).get(metric)
        trigger = (runs.get(spec["lineage"]["run"]) or {}).get("trigger") or {}
        cause = trigger.get("type", "?")
        if trigger.get("source"):
            cause += f" (RetrainPolicy {trigger['source']}): " + _cause(trigger.get("reason", ""))
        rows.append(
            [
                version["metadata"]["name"],
                spec["stage"],
                f"{metric} {holdout:.4f}" if holdout is not None else "-",
                *live_cells(spec, status),
                cause,
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _cause(reason: str) -> str:
    """ "alert ConveyorFeatureDrift" out of the run's reason."""
    match = re.search(r"(alert \w+|live \w+ [\d.]+|\w+ over [\d.]+ on \d+ of \d+)", reason)
    return match.group(1) if match else reason[:60]
