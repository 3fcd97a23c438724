"""The dashboard against the sandbox's real Prometheus: a model served, a burst of predictions
(and of requests it refuses), then every expression of manifests/monitoring/dashboard.json,
with the namespace and model filled in, returns series.

Two groups read metrics of other parts of issue 10, tested apart: the prediction logs' counter on
the serving pods, and the live-quality monitor's gauges on the operator, which need feedback."""

from __future__ import annotations

import itertools
import json
import shlex
import shutil
import urllib.parse
import urllib.request
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from kubernetes.client import CoreV1Api

from conveyor.sandbox.stack import Sandbox
from tests.dashboard import MONITOR_METRICS, Query, dashboard_queries
from tests.integration.conftest import Resources, running_sandbox, wait_for
from tests.integration.test_serving import ROWS, _post, _trained, _url

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None
    or not (shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")),
    reason="prometheus / prometheus-alertmanager not on PATH "
    "(apt-get install prometheus prometheus-alertmanager)",
)

MODEL = "iris-classifier"
LOGS = "conveyor_serving_log_records_dropped_total"
BURST = 120
SERIES_TIMEOUT = 60  # file_sd picks a new pod up within ~7 s; a rate needs two 5 s scrapes
MONITOR_TIMEOUT = 180  # the logs' flush, then the monitor's interval
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """conftest's sandbox, with Prometheus."""
    yield from running_sandbox(tmp_path_factory, monitoring=True)


@pytest.fixture(scope="module")
def prometheus(sandbox: Sandbox) -> str:
    """Prometheus' URL, from the environment file the sandbox writes for its user."""
    for line in (Path(sandbox.state_dir) / "env").read_text().splitlines():
        if line.startswith("export PROMETHEUS_URL="):
            return str(shlex.split(line.removeprefix("export PROMETHEUS_URL="))[0])
    raise AssertionError("the sandbox started no Prometheus: see its notices")


@pytest.fixture(scope="module")
def served(sandbox: Sandbox) -> Iterator[tuple[Resources, str]]:
    """The iris example trained and served in a namespace of its own: (resources, its URL)."""
    with kubernetes.config.new_client_from_config(config_file=str(sandbox.kubeconfig)) as client:
        namespace = "dashboard"
        CoreV1Api(client).create_namespace({"metadata": {"name": namespace}})
        resources = Resources(client, namespace)
        _trained(resources)
        yield resources, _url(client, namespace)


def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        payload = json.loads(response.read())
    assert payload["status"] == "success", payload
    return list(payload["data"]["result"])


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def _predict(url: str) -> tuple[str, Any]:
    """One row predicted under a request id of ours: (request id, predicted label)."""
    number = next(_ids)
    request_id = f"dashboard-{number}"
    row = ROWS["instances"][number % len(ROWS["instances"])]
    request = urllib.request.Request(
        f"{url}/predict",
        data=json.dumps({"instances": [row]}).encode(),
        headers={"Content-Type": "application/json", "X-Request-Id": request_id},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    return request_id, answer["predictions"][0]


def _burst(url: str) -> list[tuple[str, Any]]:
    """Predictions, plus requests the server refuses (the errors panel's 4xx)."""
    answered = [_predict(url) for _ in range(BURST)]
    for _ in range(5):
        status, _answer = _post(f"{url}/predict", {"instances": [{"sepal_length_cm": "x"}]})
        assert 400 <= status < 500, status
    return answered


def _values(resources: Resources) -> dict[str, str]:
    return {"namespace": resources.namespace, "model": MODEL, "drift_method": "psi"}


def _assert_series(
    prometheus: str, queries: list[Query], values: dict[str, str], timeout: float
) -> None:
    for query in queries:
        expr = query.promql(values)
        wait_for(
            partial(_query, prometheus, expr),
            timeout=timeout,
            what=f"series from {query.where}: {expr}",
        )


def _serving_queries() -> list[Query]:
    return [q for q in dashboard_queries() if not q.monitor and LOGS not in q.expr]


def test_every_serving_panel_shows_the_burst(
    served: tuple[Resources, str], prometheus: str
) -> None:
    resources, url = served
    _burst(url)
    _assert_series(prometheus, _serving_queries(), _values(resources), SERIES_TIMEOUT)

    # The figures are the burst's, for this model: its version, its requests, its refusals.
    values = _values(resources)
    [versions] = _query(
        prometheus,
        f"count by (namespace, model, version) (conveyor_serving_model_info{{"
        f'namespace="{values["namespace"]}"}})',
    )
    assert versions["metric"]["model"] == MODEL
    assert versions["metric"]["version"] in ("1", f"{MODEL}-v1")
    [errors] = _query(prometheus, _errors_total(values))
    assert float(errors["value"][1]) >= 5


def _errors_total(values: dict[str, str]) -> str:
    return (
        'sum(conveyor_serving_requests_total{endpoint="predict", code!~"2.."} '
        f"* on (namespace, pod) group_left (model) conveyor_serving_model_info{{"
        f'namespace="{values["namespace"]}", model="{MODEL}"}})'
    )


# --- expressions over metrics other parts of issue 10 add ----------------------------------


def test_the_log_panel_shows_the_serving_pods_counter(
    served: tuple[Resources, str], prometheus: str
) -> None:
    resources, url = served
    assert f"# HELP {LOGS} " in _get(f"{url}/metrics")
    queries = [q for q in dashboard_queries() if LOGS in q.expr]
    _assert_series(prometheus, queries, _values(resources), SERIES_TIMEOUT)


def test_every_monitor_panel_shows_the_served_models_quality(
    served: tuple[Resources, str], prometheus: str
) -> None:
    """Predictions with their ground truth (the label each was given back as feedback), then
    the live score, labelled samples and drift of the served version."""
    resources, url = served
    answered = _burst(url)
    feedback = [{"request_id": request_id, "label": label} for request_id, label in answered]
    status, answer = _post(f"{url}/v2/models/{MODEL}/feedback", {"feedback": feedback})
    assert status == 200, answer

    queries = [q for q in dashboard_queries() if q.monitor]
    assert {name for name in MONITOR_METRICS for q in queries if name in q.expr} == set(
        MONITOR_METRICS
    )
    _assert_series(prometheus, queries, _values(resources), MONITOR_TIMEOUT)
    # Every label given back was the prediction itself: the panel reads a perfect score.
    [accuracy] = _query(
        prometheus, f'conveyor_model_live_score{{model="{MODEL}", metric="accuracy"}}'
    )
    assert float(accuracy["value"][1]) == 1.0
