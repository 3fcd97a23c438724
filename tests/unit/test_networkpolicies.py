"""Only the serving Service's clients reach serving pods; only Prometheus and Alertmanager reach
the operator.

The NetworkPolicies of manifests/networkpolicy are read as rendered (`kubectl kustomize`) and
evaluated by `admits`, a small implementation of the NetworkPolicy ingress semantics (isolation
by podSelector, peers by pod, namespace and ipBlock, ports by number or name), against the pods
they protect as the operator builds and the manifests declare them.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.api.v1alpha1 import TrainingPipeline
from conveyor.resources.jobs import build_training_job
from conveyor.resources.serving import build_serving_deployment, build_serving_service
from conveyor.resources.workloads import JobSettings
from tests.conftest import EXAMPLES, load_yaml_documents
from tests.unit.test_manifests import KustomizeOutputLoader

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
SETTINGS = JobSettings("conveyor:0.1.0", "http://s3:9000", "us-east-1", "conveyor")
CLIENT_LABEL = "conveyor.dev/serving-client"
USER_NAMESPACE = "team-a"
APISERVER_IP = "172.18.0.2"

# --- the evaluator ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pod:
    """A pod as NetworkPolicies see it: where it runs, its labels, its named ports."""

    namespace: str
    labels: Mapping[str, str]
    ports: Mapping[str, int] = field(default_factory=dict)
    ip: str = "10.244.1.10"


@dataclass(frozen=True)
class Source:
    """Who connects: a pod, or (pod None) something outside the pod network, by address."""

    ip: str
    pod: Pod | None = None


def _selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector; an empty one selects everything."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        present = key in labels
        if not {
            "In": present and labels.get(key) in (values or []),
            "NotIn": not present or labels.get(key) not in (values or []),
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]:
            return False
    return True


def _namespace_labels(namespace: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": namespace}


def _peer_matches(peer: Mapping[str, Any], policy_namespace: str, source: Source) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        address = ipaddress.ip_address(source.ip)
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(cidr) for cidr in block.get("except") or []
        )
    pod = source.pod
    if pod is None:  # the API server, a node, the Internet: no pod or namespace to select
        return False
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], _namespace_labels(pod.namespace)):
            return False
    elif pod.namespace != policy_namespace:
        return False
    return _selects(peer.get("podSelector"), pod.labels) if "podSelector" in peer else True


def _port_matches(rule_port: Mapping[str, Any], target: Pod, port: int) -> bool:
    if rule_port.get("protocol", "TCP") != "TCP":
        return False
    wanted = rule_port.get("port")
    if wanted is None:
        return True
    if isinstance(wanted, str):
        return target.ports.get(wanted) == port
    return int(wanted) <= port <= int(rule_port.get("endPort", wanted))


def admits(policies: list[dict[str, Any]], target: Pod, source: Source, port: int) -> bool:
    """Whether a TCP connection from `source` to `target`'s `port` is allowed: yes when no
    policy isolates the target for ingress, else when a rule of one that does allows it."""
    isolating = [
        p
        for p in policies
        if p["metadata"]["namespace"] == target.namespace
        and _selects(p["spec"]["podSelector"], target.labels)
        and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
    ]
    if not isolating:
        return True
    for policy in isolating:
        for rule in policy["spec"].get("ingress") or []:
            peers, ports = rule.get("from"), rule.get("ports")
            peer_ok = not peers or any(
                _peer_matches(peer, policy["metadata"]["namespace"], source) for peer in peers
            )
            port_ok = not ports or any(_port_matches(p, target, port) for p in ports)
            if peer_ok and port_ok:
                return True
    return False


# --- the policies and the pods ---------------------------------------------------------------


def _kustomize(relative: str) -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not on PATH: it renders the kustomizations under test")
    completed = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS / relative)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return [obj for obj in yaml.load_all(completed.stdout, Loader=KustomizeOutputLoader) if obj]


@pytest.fixture(scope="module")
def install() -> list[dict[str, Any]]:
    return _kustomize("default")


@pytest.fixture(scope="module")
def serving_policies() -> list[dict[str, Any]]:
    """The serving policies as a user applies them: `kubectl apply -n team-a -k ...`, with
    the API server's address set in the ipBlock as apiserver.yaml says."""
    policies = _kustomize("networkpolicy/serving")
    for policy in policies:
        policy["metadata"]["namespace"] = USER_NAMESPACE
        for rule in policy["spec"]["ingress"]:
            for peer in rule["from"]:
                if "ipBlock" in peer:
                    peer["ipBlock"]["cidr"] = f"{APISERVER_IP}/32"
    return policies


@pytest.fixture(scope="module")
def policies(
    install: list[dict[str, Any]], serving_policies: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    return [obj for obj in install if obj["kind"] == "NetworkPolicy"] + serving_policies


def _pipeline() -> TrainingPipeline:
    body = load_yaml_documents(EXAMPLES / "iris" / "trainingpipeline.yaml")[0]
    body["metadata"].update(namespace=USER_NAMESPACE, uid="u-1", generation=1)
    return TrainingPipeline.from_body(body)


VERSION = {
    "metadata": {"name": "iris-classifier-v1"},
    "spec": {
        "model": "iris-classifier",
        "version": 1,
        "artifact": {"uri": "s3://conveyor/m/model.skops", "digest": "sha256:" + "1" * 64},
    },
}


def _pod_of(workload: Mapping[str, Any], namespace: str) -> Pod:
    template = workload["spec"]["template"]
    ports = {
        port["name"]: port["containerPort"]
        for container in template["spec"]["containers"]
        for port in container.get("ports") or []
        if "name" in port
    }
    return Pod(namespace, template["metadata"].get("labels") or {}, ports)


def _serving_pod(*, canary: bool = False) -> Pod:
    deployment = build_serving_deployment(_pipeline(), VERSION, SETTINGS, replicas=2, canary=canary)
    return _pod_of(deployment, USER_NAMESPACE)


def _operator_pod(install: list[dict[str, Any]]) -> Pod:
    (deployment,) = [
        o
        for o in install
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "conveyor-operator"
    ]
    return _pod_of(deployment, deployment["metadata"]["namespace"])


PROMETHEUS = Source("10.244.2.5", Pod("monitoring", {"app.kubernetes.io/name": "prometheus"}))
ALERTMANAGER = Source("10.244.2.6", Pod("monitoring", {"app.kubernetes.io/name": "alertmanager"}))
CLIENT = Source("10.244.3.7", Pod(USER_NAMESPACE, {"app": "shop", CLIENT_LABEL: "true"}))
UNLABELLED = Source("10.244.3.8", Pod(USER_NAMESPACE, {"app": "shop"}))
CLIENT_ELSEWHERE = Source("10.244.4.9", Pod("team-b", {"app": "shop", CLIENT_LABEL: "true"}))
STRANGER = Source("10.244.4.10", Pod("team-b", {"app": "random"}))
GRAFANA = Source("10.244.2.11", Pod("monitoring", {"app.kubernetes.io/name": "grafana"}))
APISERVER = Source(APISERVER_IP)
OUTSIDE = Source("203.0.113.50")


def _operator_source(install: list[dict[str, Any]]) -> Source:
    return Source("10.244.0.20", _operator_pod(install))


# --- serving pods ----------------------------------------------------------------------------


@pytest.mark.parametrize("canary", [False, True], ids=["stable", "canary"])
def test_serving_pods_admit_their_clients_prometheus_and_the_api_server(
    policies: list[dict[str, Any]], canary: bool
) -> None:
    pod = _serving_pod(canary=canary)
    port = pod.ports["http"]
    for source in (CLIENT, PROMETHEUS, APISERVER):
        assert admits(policies, pod, source, port), source


@pytest.mark.parametrize("canary", [False, True], ids=["stable", "canary"])
def test_serving_pods_refuse_everyone_else(
    policies: list[dict[str, Any]], install: list[dict[str, Any]], canary: bool
) -> None:
    pod = _serving_pod(canary=canary)
    port = pod.ports["http"]
    others = [UNLABELLED, CLIENT_ELSEWHERE, STRANGER, GRAFANA, ALERTMANAGER, OUTSIDE]
    for source in others:
        assert not admits(policies, pod, source, port), source
    # The operator reads pods only through the API server's proxy, never directly.
    assert not admits(policies, pod, _operator_source(install), port)
    for source in (CLIENT, PROMETHEUS, APISERVER):  # the allowed, on another port
        assert not admits(policies, pod, source, 9090), source


def test_the_api_server_rule_ships_with_an_address_that_matches_nothing_real() -> None:
    """Until a person sets it, it opens the pods to no one (192.0.2.0/24: RFC 5737)."""
    (policy,) = [
        p
        for p in _kustomize("networkpolicy/serving")
        if "ipBlock" in p["spec"]["ingress"][0]["from"][0]
    ]
    cidr = ipaddress.ip_network(policy["spec"]["ingress"][0]["from"][0]["ipBlock"]["cidr"])
    assert cidr.subnet_of(ipaddress.ip_network("192.0.2.0/24"))


def test_the_serving_policy_leaves_the_namespaces_jobs_alone(
    policies: list[dict[str, Any]],
) -> None:
    """Only serving pods are isolated: a training Job's pod is not selected."""
    job = build_training_job(
        _pipeline(),
        run="iris-r1",
        snapshot="s1",
        phase="all",
        featureset={"metadata": {"name": "iris"}, "spec": {}},
        champion=None,
        settings=SETTINGS,
    )
    pod = _pod_of(job, USER_NAMESPACE)
    assert admits(policies, pod, STRANGER, 8080)


def test_serving_policy_ports_are_the_service_and_container_ports(
    serving_policies: list[dict[str, Any]],
) -> None:
    pod = _serving_pod()
    service = build_serving_service(_pipeline())
    (service_port,) = service["spec"]["ports"]
    for policy in serving_policies:
        assert _selects(policy["spec"]["podSelector"], pod.labels)
        assert _selects(policy["spec"]["podSelector"], service["spec"]["selector"])
        for rule in policy["spec"]["ingress"]:
            assert [p["port"] for p in rule["ports"]] == [service_port["targetPort"]]
            assert pod.ports[service_port["targetPort"]] == service_port["port"]


# --- the operator ----------------------------------------------------------------------------


def test_the_operator_admits_prometheus_and_alertmanager_only(
    policies: list[dict[str, Any]], install: list[dict[str, Any]]
) -> None:
    pod = _operator_pod(install)
    port = pod.ports["http"]
    assert admits(policies, pod, PROMETHEUS, port)
    assert admits(policies, pod, ALERTMANAGER, port)
    minio = Source(
        "10.244.0.30",
        Pod(
            "conveyor-system",
            {"app.kubernetes.io/name": "minio", "app.kubernetes.io/component": "storage"},
        ),
    )
    serving = Source("10.244.3.12", _serving_pod())
    for source in (GRAFANA, STRANGER, CLIENT, UNLABELLED, minio, serving, APISERVER, OUTSIDE):
        assert not admits(policies, pod, source, port), source
    assert not admits(policies, pod, PROMETHEUS, 9090)


def test_the_operator_policy_port_is_the_service_and_container_port(
    install: list[dict[str, Any]],
) -> None:
    (policy,) = [o for o in install if o["kind"] == "NetworkPolicy"]
    assert policy["metadata"]["namespace"] == "conveyor-system"
    (service,) = [o for o in install if o["kind"] == "Service"]
    pod = _operator_pod(install)
    assert _selects(policy["spec"]["podSelector"], pod.labels)
    (service_port,) = service["spec"]["ports"]
    (rule,) = policy["spec"]["ingress"]
    assert [p["port"] for p in rule["ports"]] == [service_port["targetPort"]]
    assert pod.ports[service_port["targetPort"]] == service_port["port"]


def test_the_operator_policy_isolates_only_the_operator(
    policies: list[dict[str, Any]], install: list[dict[str, Any]]
) -> None:
    """MinIO and the bucket Job in the operator's namespace keep their traffic."""
    minio = Pod(
        "conveyor-system",
        {"app.kubernetes.io/name": "minio", "app.kubernetes.io/component": "storage"},
    )
    assert admits(policies, minio, _operator_source(install), 9000)


# --- the evaluator itself ----------------------------------------------------------------------


def test_the_evaluator_follows_networkpolicy_semantics() -> None:
    target = Pod("ns", {"app": "a"}, {"http": 8080})
    assert admits([], target, STRANGER, 8080), "no policy: not isolated"

    def policy(ingress: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
        return {
            "metadata": {"namespace": "ns"},
            "spec": {"podSelector": {"matchLabels": {"app": "a"}}, "ingress": ingress, **spec},
        }

    assert not admits([policy([])], target, STRANGER, 8080), "isolated, nothing allowed"
    assert admits([policy([{}])], target, STRANGER, 8080), "an empty rule allows all"
    assert admits([policy([], policyTypes=["Egress"])], target, STRANGER, 8080)
    same_ns = Source("10.0.0.1", Pod("ns", {"role": "x"}))
    other_ns = Source("10.0.0.2", Pod("other", {"role": "x"}))
    pods_x = policy([{"from": [{"podSelector": {"matchLabels": {"role": "x"}}}]}])
    assert admits([pods_x], target, same_ns, 8080) and not admits([pods_x], target, other_ns, 8080)
    any_ns = policy(
        [{"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"role": "x"}}}]}]
    )
    assert admits([any_ns], target, other_ns, 8080)
    expressions = policy(
        [
            {
                "from": [
                    {
                        "podSelector": {
                            "matchExpressions": [
                                {"key": "role", "operator": "NotIn", "values": ["x"]}
                            ]
                        }
                    }
                ]
            }
        ]
    )
    assert not admits([expressions], target, same_ns, 8080)
    ranged = policy([{"ports": [{"port": 8000, "endPort": 8100}]}])
    assert admits([ranged], target, STRANGER, 8080) and not admits([ranged], target, STRANGER, 9000)
    named = policy([{"ports": [{"port": "http"}]}])
    assert admits([named], target, STRANGER, 8080) and not admits([named], target, STRANGER, 8081)
    block = policy([{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.2/32"]}}]}])
    assert admits([block], target, same_ns, 8080) and not admits([block], target, other_ns, 8080)
