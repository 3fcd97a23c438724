"""manifests/monitoring/: every PromQL expression parses with the real promtool, the alerts fire
on the series the operator and the serving pods export with the labels a RetrainPolicy matches on,
the Alertmanager receiver is valid for amtool and routes them to the operator's webhook, the plain
scrape config keeps the right pods with the labels the dashboard joins on, and the component
renders into an overlay with kubectl kustomize."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from conveyor.contracts.labels import LABEL_COMPONENT, LABEL_NAME, component_labels
from conveyor.contracts.serving import METRICS_PATH, SERVE_PORT_NAME
from conveyor.serving.metrics import ServingMetrics
from tests.dashboard import (
    DASHBOARD,
    MONITOR_METRICS,
    MONITORING,
    RULES,
    dashboard_queries,
    load_dashboard,
    panels,
    rule_queries,
)
from tests.unit.test_manifests import KustomizeOutputLoader

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool not on PATH (apt-get install prometheus)",
)
needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not on PATH")

DROPPED = "conveyor_serving_log_records_dropped_total"
"""The serving logs' counter (issue 10, part 1): exported once a record is dropped."""


def promtool(*args: str, cwd: Path) -> str:
    completed = subprocess.run(
        ["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, f"promtool {' '.join(args)}:\n{completed.stdout}"
    return completed.stdout + completed.stderr


# --- the dashboard -----------------------------------------------------------------------


def test_the_dashboard_has_the_panels_it_promises() -> None:
    dashboard = load_dashboard()
    exprs = " ".join(query.expr for query in dashboard_queries(dashboard))
    titles = [panel["title"] for panel in panels(dashboard)]
    for title in ("Throughput", "Latency p50 / p99", "Errors", "Live score", "Labelled samples"):
        assert title in titles
    assert any(title.startswith("Feature drift") for title in titles)
    assert "Served versions" in titles
    assert "histogram_quantile(0.5," in exprs and "histogram_quantile(0.99," in exprs
    for name in (*MONITOR_METRICS, DROPPED, "conveyor_serving_model_info"):
        assert name in exprs, name
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    for word in ("namespace", "pod", "model", "version"):
        assert word in dashboard["description"]


def test_the_serving_metrics_it_reads_are_the_ones_the_server_exports() -> None:
    metrics = ServingMetrics()
    metrics.model(model="iris", version="v1", runtime="onnx", digest="0" * 64)
    metrics.request("predict", 200, 0.001)
    metrics.predictions(np.array(["setosa"]), classified=True)
    exported = metrics.exposition().decode()
    exprs = " ".join(query.expr for query in dashboard_queries())
    used = {word for word in _identifiers(exprs) if word.startswith("conveyor_serving_")}
    assert used - {DROPPED}, "the dashboard reads no serving metric"
    for name in used - {DROPPED}:
        assert f"\n{name}{{" in exported or f"\n{name} " in exported, name


@needs_promtool
def test_every_expression_parses_with_promtool(tmp_path: Path) -> None:
    queries = [*dashboard_queries(), *rule_queries()]
    rules = {
        "groups": [
            {
                "name": "conveyor-dashboard-check",
                "rules": [
                    {"record": f"conveyor_check:expr{index}", "expr": query.promql()}
                    for index, query in enumerate(queries)
                ],
            }
        ]
    }
    (tmp_path / "exprs.yaml").write_text(yaml.safe_dump(rules))
    promtool("check", "rules", "exprs.yaml", cwd=tmp_path)


def test_an_unknown_variable_is_named() -> None:
    [query] = [q for q in dashboard_queries() if "$drift_method" in q.expr]
    with pytest.raises(KeyError, match=r"\$drift_method"):
        query.promql({"namespace": ".*", "model": ".*"})


# --- the alerting rules ------------------------------------------------------------------


@needs_promtool
def test_the_rule_files_are_valid_and_the_prometheusrule_holds_the_same_groups() -> None:
    promtool("check", "rules", str(RULES), cwd=MONITORING)
    plain = yaml.safe_load(RULES.read_text())
    operator = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert operator["kind"] == "PrometheusRule"
    assert operator["spec"] == plain


ALERT_TESTS = """\
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'conveyor_model_live_score{{job="conveyor-operator",namespace="ml",model="iris",version="v2",metric="accuracy"}}'
        values: '0.95x5 0.70x15'
      - series: 'conveyor_model_labelled_samples{{job="conveyor-operator",namespace="ml",model="iris",version="v2"}}'
        values: '200x20'
      - series: 'conveyor_model_live_score{{job="conveyor-operator",namespace="ml",model="few",version="v1",metric="accuracy"}}'
        values: '0.50x20'
      - series: 'conveyor_model_labelled_samples{{job="conveyor-operator",namespace="ml",model="few",version="v1"}}'
        values: '5x20'
      - series: 'conveyor_model_live_score{{job="conveyor-operator",namespace="ml",model="reg",version="v1",metric="rmse"}}'
        values: '0.10x20'
      - series: 'conveyor_model_labelled_samples{{job="conveyor-operator",namespace="ml",model="reg",version="v1"}}'
        values: '500x20'
      - series: 'conveyor_model_feature_drift{{job="conveyor-operator",namespace="ml",model="iris",version="v2",feature="petal_width",method="psi"}}'
        values: '0.05x5 0.60x20'
      - series: 'conveyor_model_feature_drift{{job="conveyor-operator",namespace="ml",model="iris",version="v2",feature="petal_width",method="ks"}}'
        values: '0.90x25'
      - series: 'conveyor_model_feature_drift{{job="conveyor-operator",namespace="ml",model="iris",version="v2",feature="sepal_width",method="psi"}}'
        values: '0.02x25'
    alert_rule_test:
      - eval_time: 8m
        alertname: ConveyorLiveScoreLow
      - eval_time: 12m
        alertname: ConveyorLiveScoreLow
        exp_alerts:
          - exp_labels: {{severity: warning, retrain: "true", job: conveyor-operator, namespace: ml, model: iris, version: v2, metric: accuracy}}
            exp_annotations:
              summary: "iris v2: live accuracy is 0.700, under 0.85."
              description: >-
                The live accuracy of model iris (version v2), measured on predictions joined
                with their feedback, has been under 0.85 for 5 minutes.
      - eval_time: 12m
        alertname: ConveyorFeatureDrift
      - eval_time: 17m
        alertname: ConveyorFeatureDrift
        exp_alerts:
          - exp_labels: {{severity: warning, retrain: "true", job: conveyor-operator, namespace: ml, model: iris, version: v2, method: psi}}
            exp_annotations:
              summary: "iris v2: input drift PSI 0.60, over 0.25."
              description: >-
                At least one input feature of model iris (version v2) has drifted from the
                training data's profile (PSI over 0.25 for 10 minutes); see the Conveyor
                dashboard's drift panel for which.

  # The serving pods, as the conveyor-serving job scrapes them: model iris version 3 on two pods
  # (10 requests/s each on the prediction endpoints, plus 5/s answered 422 on iris-b), whose
  # iris-a starts answering 2 requests/s with 500 and slowly (0.5 to 1 s) after 10 minutes;
  # model quiet on one pod: half its answers 500 and slow, but only 4 requests a minute.
  - interval: 1m
    input_series:
      - series: 'conveyor_serving_model_info{{job="conveyor-serving",namespace="ml",pod="iris-a",model="iris",version="3",runtime="onnx",digest="d3"}}'
        values: '1x40'
      - series: 'conveyor_serving_model_info{{job="conveyor-serving",namespace="ml",pod="iris-b",model="iris",version="3",runtime="onnx",digest="d3"}}'
        values: '1x40'
      - series: 'conveyor_serving_model_info{{job="conveyor-serving",namespace="ml",pod="quiet-a",model="quiet",version="1",runtime="sklearn",digest="d1"}}'
        values: '1x40'
      - series: 'conveyor_serving_requests_total{{job="conveyor-serving",namespace="ml",pod="iris-a",endpoint="predict",code="200"}}'
        values: '0+600x40'
      - series: 'conveyor_serving_requests_total{{job="conveyor-serving",namespace="ml",pod="iris-a",endpoint="predict",code="500"}}'
        values: '0x10 120+120x29'
      - series: 'conveyor_serving_requests_total{{job="conveyor-serving",namespace="ml",pod="iris-a",endpoint="model_metadata",code="500"}}'
        values: '0+6000x40'
      - series: 'conveyor_serving_requests_total{{job="conveyor-serving",namespace="ml",pod="iris-b",endpoint="infer",code="200"}}'
        values: '0+600x40'
      - series: 'conveyor_serving_requests_total{{job="conveyor-serving",namespace="ml",pod="iris-b",endpoint="infer",code="422"}}'
        values: '0+300x40'
      - series: 'conveyor_serving_requests_total{{job="conveyor-serving",namespace="ml",pod="quiet-a",endpoint="predict",code="200"}}'
        values: '0+2x40'
      - series: 'conveyor_serving_requests_total{{job="conveyor-serving",namespace="ml",pod="quiet-a",endpoint="predict",code="500"}}'
        values: '0+2x40'
      - series: 'conveyor_serving_request_duration_seconds_bucket{{job="conveyor-serving",namespace="ml",pod="iris-a",endpoint="predict",le="0.01"}}'
        values: '0+600x10 6000x30'
      - series: 'conveyor_serving_request_duration_seconds_bucket{{job="conveyor-serving",namespace="ml",pod="iris-a",endpoint="predict",le="0.5"}}'
        values: '0+600x10 6000x30'
      - series: 'conveyor_serving_request_duration_seconds_bucket{{job="conveyor-serving",namespace="ml",pod="iris-a",endpoint="predict",le="1.0"}}'
        values: '0+600x40'
      - series: 'conveyor_serving_request_duration_seconds_bucket{{job="conveyor-serving",namespace="ml",pod="iris-a",endpoint="predict",le="+Inf"}}'
        values: '0+600x40'
      - series: 'conveyor_serving_request_duration_seconds_count{{job="conveyor-serving",namespace="ml",pod="iris-a",endpoint="predict"}}'
        values: '0+600x40'
      - series: 'conveyor_serving_request_duration_seconds_bucket{{job="conveyor-serving",namespace="ml",pod="iris-b",endpoint="infer",le="0.01"}}'
        values: '0+600x40'
      - series: 'conveyor_serving_request_duration_seconds_bucket{{job="conveyor-serving",namespace="ml",pod="iris-b",endpoint="infer",le="0.5"}}'
        values: '0+600x40'
      - series: 'conveyor_serving_request_duration_seconds_bucket{{job="conveyor-serving",namespace="ml",pod="iris-b",endpoint="infer",le="1.0"}}'
        values: '0+600x40'
      - series: 'conveyor_serving_request_duration_seconds_bucket{{job="conveyor-serving",namespace="ml",pod="iris-b",endpoint="infer",le="+Inf"}}'
        values: '0+600x40'
      - series: 'conveyor_serving_request_duration_seconds_count{{job="conveyor-serving",namespace="ml",pod="iris-b",endpoint="infer"}}'
        values: '0+600x40'
      - series: 'conveyor_serving_request_duration_seconds_bucket{{job="conveyor-serving",namespace="ml",pod="quiet-a",endpoint="predict",le="0.5"}}'
        values: '0x40'
      - series: 'conveyor_serving_request_duration_seconds_bucket{{job="conveyor-serving",namespace="ml",pod="quiet-a",endpoint="predict",le="1.0"}}'
        values: '0+4x40'
      - series: 'conveyor_serving_request_duration_seconds_bucket{{job="conveyor-serving",namespace="ml",pod="quiet-a",endpoint="predict",le="+Inf"}}'
        values: '0+4x40'
      - series: 'conveyor_serving_request_duration_seconds_count{{job="conveyor-serving",namespace="ml",pod="quiet-a",endpoint="predict"}}'
        values: '0+4x40'
    alert_rule_test:
      - eval_time: 10m
        alertname: ConveyorServingErrors
      - eval_time: 15m
        alertname: ConveyorServingErrors
      # 2 of 27 requests/s answered 5xx: the 422s count as requests, model_metadata does not.
      - eval_time: 25m
        alertname: ConveyorServingErrors
        exp_alerts:
          - exp_labels: {{severity: warning, retrain: "true", namespace: ml, model: iris, version: "3"}}
            exp_annotations:
              summary: "iris 3: 7.407% of requests answered with a server error, over 5%."
              description: >-
                Over the last 5 minutes, more than 5% of the prediction and feedback requests
                to model iris (version 3) in namespace ml were answered 5xx; the serving pods'
                logs say why.
      - eval_time: 20m
        alertname: ConveyorServingLatencyHigh
      # Half of iris' 20 requests/s over both pods are slow: the 99th percentile is in (0.5, 1].
      - eval_time: 30m
        alertname: ConveyorServingLatencyHigh
        exp_alerts:
          - exp_labels: {{severity: warning, retrain: "true", namespace: ml, model: iris, version: "3"}}
            exp_annotations:
              summary: "iris 3: p99 latency 990ms, over 500ms."
              description: >-
                The 99th percentile of the prediction latency of model iris (version 3) in
                namespace ml has been over 500ms for 10 minutes.
"""


def _alert_tests() -> str:
    return ALERT_TESTS.format(rules=json.dumps(str(RULES)))


def _alerts() -> list[dict[str, Any]]:
    return [
        rule
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


@needs_promtool
def test_the_alerts_fire_on_their_series_and_only_then(tmp_path: Path) -> None:
    """A drop with enough labelled samples fires; few samples, or an error metric, do not;
    drift fires once per model version, on PSI only. Serving errors and latency fire once per
    model version over all its pods, on the prediction endpoints, and not on an idle model."""
    (tmp_path / "alerts_test.yaml").write_text(_alert_tests())
    promtool("test", "rules", "alerts_test.yaml", cwd=tmp_path)


def test_every_alert_maps_to_a_retrain_policy_by_its_labels() -> None:
    """Each alert carries retrain="true" (the receiver's route) and keeps the namespace and model
    a RetrainPolicy's matchers select on: the promtool test above fires every alert and expects
    exactly these labels, so an expression that aggregated them away would fail it."""
    alerts = _alerts()
    names = {alert["alert"] for alert in alerts}
    assert {
        "ConveyorLiveScoreLow",
        "ConveyorFeatureDrift",
        "ConveyorServingErrors",
        "ConveyorServingLatencyHigh",
    } <= names
    for alert in alerts:
        assert alert["labels"]["retrain"] == "true", alert["alert"]
    expected = [
        (check["alertname"], expected["exp_labels"])
        for group in yaml.safe_load(_alert_tests())["tests"]
        for check in group["alert_rule_test"]
        for expected in check.get("exp_alerts", [])
    ]
    assert {name for name, _ in expected} == names, "an alert is never shown firing"
    for name, labels in expected:
        assert labels["retrain"] == "true", name
        assert labels["namespace"] == "ml" and labels["model"], name


# --- the Alertmanager receiver -----------------------------------------------------------

RECEIVER = MONITORING / "alertmanager-receiver.yaml"
needs_amtool = pytest.mark.skipif(
    shutil.which("amtool") is None,
    reason="amtool not on PATH (apt-get install prometheus-alertmanager)",
)


def amtool(*args: str) -> str:
    completed = subprocess.run(
        ["amtool", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, f"amtool {' '.join(args)}:\n{completed.stderr}"
    return completed.stdout


def _receiver_for(*labels: str) -> str:
    return amtool("config", "routes", "test", f"--config.file={RECEIVER}", *labels).strip()


@needs_amtool
def test_the_alertmanager_receiver_config_is_valid() -> None:
    assert "SUCCESS" in amtool("check-config", str(RECEIVER))


@needs_amtool
def test_retrain_alerts_are_routed_to_the_conveyor_receiver_and_only_they() -> None:
    assert _receiver_for('retrain="true"') == "conveyor-retrain"
    assert _receiver_for("retrain=false", "alertname=Watchdog") == "default"
    assert _receiver_for("alertname=Watchdog") == "default"
    for alert in _alerts():
        labels = {**alert["labels"], "alertname": alert["alert"], "namespace": "ml"}
        route = _receiver_for(*(f"{key}={value}" for key, value in labels.items()), "model=iris")
        assert route == "conveyor-retrain", alert["alert"]


def test_the_receiver_calls_the_operators_webhook_with_the_token_file() -> None:
    config = yaml.safe_load(RECEIVER.read_text())
    [route] = config["route"]["routes"]
    assert route["receiver"] == "conveyor-retrain"
    assert set(route["group_by"]) == {"alertname", "namespace", "model"}
    for timing in ("group_wait", "group_interval", "repeat_interval"):
        assert timing in route, timing
    [receiver] = [r for r in config["receivers"] if r["name"] == "conveyor-retrain"]
    [webhook] = receiver["webhook_configs"]

    service = yaml.safe_load((MONITORING.parent / "manager" / "service.yaml").read_text())
    [port] = [p for p in service["spec"]["ports"] if p["name"] == "http"]
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    assert webhook["url"] == (f"http://{name}.{namespace}.svc:{port['port']}/webhooks/alertmanager")
    assert webhook["send_resolved"] is False
    authorization = webhook["http_config"]["authorization"]
    assert authorization.get("type", "Bearer") == "Bearer"
    assert "credentials" not in authorization, "the token is read from a file, never inlined"
    assert authorization["credentials_file"] == (
        "/etc/alertmanager/secrets/conveyor-webhook-token/token"
    )


# --- the plain scrape config -------------------------------------------------------------


def _meta(label: str) -> str:
    """A pod label as Kubernetes discovery names it: __meta_kubernetes_pod_label_<this>."""
    return re.sub(r"[^A-Za-z0-9]", "_", label)


def _pod(name: str, component: str, port: str = "http", phase: str = "Running") -> dict[str, Any]:
    return {
        "targets": [f"{name}:8080"],
        "labels": {
            "__meta_kubernetes_namespace": "ml",
            "__meta_kubernetes_pod_name": name,
            "__meta_kubernetes_pod_phase": phase,
            "__meta_kubernetes_pod_container_port_name": port,
            f"__meta_kubernetes_pod_label_{_meta(LABEL_NAME)}": "conveyor",
            f"__meta_kubernetes_pod_label_{_meta(LABEL_COMPONENT)}": component,
        },
    }


PODS = [
    _pod("iris-1", "serving"),
    _pod("iris-2", "serving", port="other"),
    _pod("iris-3", "serving", phase="Succeeded"),
    _pod("train-1", "train"),
    _pod("operator-1", "operator"),
]


@needs_promtool
@pytest.mark.parametrize(
    ("job", "kept"), [("conveyor-serving", "iris-1"), ("conveyor-operator", "operator-1")]
)
def test_the_scrape_config_keeps_conveyors_pods_with_namespace_and_pod(
    tmp_path: Path, job: str, kept: str
) -> None:
    """Debian's Prometheus is built without Kubernetes discovery: the pods are given as static
    targets with the labels Kubernetes discovery would attach, and promtool relabels them."""
    config = yaml.safe_load((MONITORING / "prometheus-scrape.yaml").read_text())
    for scrape in config["scrape_configs"]:
        assert scrape.pop("kubernetes_sd_configs") == [{"role": "pod"}]
        scrape["static_configs"] = PODS
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    promtool("check", "config", "prometheus.yml", cwd=tmp_path)

    output = promtool(
        # Static targets are there at once: the timeout only bounds the wait for more.
        "check",
        "service-discovery",
        "--timeout=2s",
        "prometheus.yml",
        job,
        cwd=tmp_path,
    )
    targets = [t["labels"] for t in json.loads(output[output.index("[") :]) if t["labels"]]
    assert [(t["namespace"], t["pod"], t["job"]) for t in targets] == [("ml", kept, job)]
    assert targets[0]["__metrics_path__"] == METRICS_PATH


# --- the kustomize component -------------------------------------------------------------


@needs_kubectl
def test_the_component_renders_into_an_overlay(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    up = os.path.relpath(MONITORING.parent, overlay)
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [f"{up}/default"],
                "components": [f"{up}/monitoring"],
            }
        )
    )
    completed = subprocess.run(
        ["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    objects = {
        (obj["kind"], obj["metadata"]["name"]): obj
        for obj in yaml.load_all(completed.stdout, Loader=KustomizeOutputLoader)
        if obj
    }

    dashboard = objects["ConfigMap", "conveyor-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["namespace"] == "conveyor-system"
    assert json.loads(dashboard["data"]["conveyor.json"]) == json.loads(DASHBOARD.read_text())
    assert objects["PrometheusRule", "conveyor"]["metadata"]["namespace"] == "conveyor-system"

    operator_pod = objects["Deployment", "conveyor-operator"]["spec"]["template"]
    for name, pod_labels, port in [
        ("conveyor-operator", operator_pod["metadata"]["labels"], "http"),
        ("conveyor-serving", component_labels("serving"), None),
    ]:
        monitor = objects["PodMonitor", name]
        assert monitor["metadata"]["namespace"] == "conveyor-system"
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_labels.items(), name
        [endpoint] = monitor["spec"]["podMetricsEndpoints"]
        assert endpoint["port"] == (port or SERVE_PORT_NAME)
        assert endpoint["path"] == METRICS_PATH
    ports = operator_pod["spec"]["containers"][0]["ports"]
    assert "http" in [p["name"] for p in ports]
    assert objects["PodMonitor", "conveyor-serving"]["spec"]["namespaceSelector"] == {"any": True}


def _identifiers(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text))
