"""Every pod Conveyor runs passes the Pod Security Standards `restricted` profile.

`restricted_violations` implements the profile as Kubernetes 1.30+ defines it
(https://kubernetes.io/docs/concepts/security/pod-security-standards/): the baseline rules plus
the restricted ones, for Linux pods, over containers, initContainers and ephemeralContainers.
It is checked on every pod template the operator builds (materialize and train Jobs in each
phase, serving Deployments stable, canary and shadowing) and on every workload in `manifests/`
as `kubectl kustomize` renders it, and each rule is shown to catch what it forbids. A namespace
labelled `pod-security.kubernetes.io/enforce: restricted` therefore admits all of them.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.api.v1alpha1 import FeatureSet, TrainingPipeline
from conveyor.resources.jobs import build_materialize_job, build_training_job
from conveyor.resources.serving import build_serving_deployment
from conveyor.resources.workloads import JobSettings
from tests.conftest import EXAMPLES, load_yaml_documents
from tests.unit.test_manifests import KustomizeOutputLoader

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
SETTINGS = JobSettings("conveyor:0.1.0", "http://s3:9000", "us-east-1", "conveyor")
DIGEST = "sha256:" + "1" * 64

# --- the profile ---------------------------------------------------------------------------

BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
RESTRICTED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
SELINUX_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
APPARMOR_TYPES = frozenset({"RuntimeDefault", "Localhost"})
SECCOMP_TYPES = frozenset({"RuntimeDefault", "Localhost"})
RESTRICTED_VOLUMES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


@dataclass(frozen=True)
class Violation:
    """A field that breaks the profile: `path` as `kubectl explain` spells it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _selinux(where: str, options: Any) -> Iterator[Violation]:
    options = _dict(options)
    if options.get("type", "") not in SELINUX_TYPES:
        yield Violation(f"{where}.seLinuxOptions.type", f"{options['type']!r} is not allowed")
    for field in ("user", "role"):
        if options.get(field):
            yield Violation(f"{where}.seLinuxOptions.{field}", "must be unset")


def _apparmor(where: str, context: Mapping[str, Any]) -> Iterator[Violation]:
    profile = _dict(context.get("appArmorProfile"))
    if "type" in profile and profile["type"] not in APPARMOR_TYPES:
        yield Violation(f"{where}.appArmorProfile.type", f"{profile['type']!r} is not allowed")


def _pod_level(spec: Mapping[str, Any]) -> Iterator[Violation]:
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            yield Violation(f"spec.{field}", "host namespaces are forbidden")
    context = _dict(spec.get("securityContext"))
    if _dict(context.get("windowsOptions")).get("hostProcess"):
        yield Violation("spec.securityContext.windowsOptions.hostProcess", "must be false")
    yield from _selinux("spec.securityContext", context.get("seLinuxOptions"))
    yield from _apparmor("spec.securityContext", context)
    for i, sysctl in enumerate(_list(context.get("sysctls"))):
        if _dict(sysctl).get("name") not in SAFE_SYSCTLS:
            yield Violation(f"spec.securityContext.sysctls[{i}].name", "not a safe sysctl")
    if context.get("runAsUser") == 0:
        yield Violation("spec.securityContext.runAsUser", "must not be 0 (root)")
    seccomp = _dict(context.get("seccompProfile")).get("type")
    if seccomp is not None and seccomp not in SECCOMP_TYPES:
        yield Violation("spec.securityContext.seccompProfile.type", f"{seccomp!r} is not allowed")
    for i, volume in enumerate(_list(spec.get("volumes"))):
        kinds = set(_dict(volume)) - {"name"}
        for kind in sorted(kinds - RESTRICTED_VOLUMES):
            yield Violation(f"spec.volumes[{i}].{kind}", "volume type not allowed")


def _container(
    where: str, container: Mapping[str, Any], pod_context: Mapping[str, Any]
) -> Iterator[Violation]:
    context = _dict(container.get("securityContext"))
    sc = f"{where}.securityContext"
    if context.get("privileged"):
        yield Violation(f"{sc}.privileged", "must be false")
    if _dict(context.get("windowsOptions")).get("hostProcess"):
        yield Violation(f"{sc}.windowsOptions.hostProcess", "must be false")
    if context.get("procMount", "Default") != "Default":
        yield Violation(f"{sc}.procMount", "must be Default")
    yield from _selinux(sc, context.get("seLinuxOptions"))
    yield from _apparmor(sc, context)
    for i, port in enumerate(_list(container.get("ports"))):
        if _dict(port).get("hostPort"):
            yield Violation(f"{where}.ports[{i}].hostPort", "host ports are forbidden")
    capabilities = _dict(context.get("capabilities"))
    for i, added in enumerate(_list(capabilities.get("add"))):
        if added not in RESTRICTED_CAPABILITIES:
            extra = "" if added in BASELINE_CAPABILITIES else " (not even in baseline)"
            yield Violation(f"{sc}.capabilities.add[{i}]", f"{added!r} may not be added{extra}")
    if "ALL" not in _list(capabilities.get("drop")):
        yield Violation(f"{sc}.capabilities.drop", "must include ALL")
    if context.get("allowPrivilegeEscalation") is not False:
        yield Violation(f"{sc}.allowPrivilegeEscalation", "must be false")
    non_root = context.get("runAsNonRoot")
    if non_root is False or (non_root is None and pod_context.get("runAsNonRoot") is not True):
        yield Violation(f"{sc}.runAsNonRoot", "must be true (here or in the pod's)")
    if context.get("runAsUser") == 0:
        yield Violation(f"{sc}.runAsUser", "must not be 0 (root)")
    seccomp = _dict(context.get("seccompProfile")).get("type")
    if seccomp is None:
        if _dict(pod_context.get("seccompProfile")).get("type") not in SECCOMP_TYPES:
            yield Violation(
                f"{sc}.seccompProfile.type", "must be RuntimeDefault or Localhost (or the pod's)"
            )
    elif seccomp not in SECCOMP_TYPES:
        yield Violation(f"{sc}.seccompProfile.type", f"{seccomp!r} is not allowed")


def restricted_violations(pod: Mapping[str, Any]) -> list[Violation]:
    """What in `pod` (a Pod, or a pod template: metadata and spec) the `restricted` profile
    forbids; empty when it passes."""
    spec = _dict(pod.get("spec"))
    violations = list(_pod_level(spec))
    annotations = _dict(_dict(pod.get("metadata")).get("annotations"))
    for key, value in annotations.items():
        if key.startswith(APPARMOR_ANNOTATION) and not (
            value == "runtime/default" or str(value).startswith("localhost/")
        ):
            violations.append(Violation(f"metadata.annotations[{key}]", f"{value!r} not allowed"))
    pod_context = _dict(spec.get("securityContext"))
    for field in CONTAINER_LISTS:
        for i, container in enumerate(_list(spec.get(field))):
            violations += _container(f"spec.{field}[{i}]", _dict(container), pod_context)
    return violations


def pod_templates(obj: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(where, pod or pod template) for a workload of any kind."""
    kind = obj.get("kind")
    if kind == "Pod":
        yield "", obj
    elif kind == "CronJob":
        yield "spec.jobTemplate.spec.template.", obj["spec"]["jobTemplate"]["spec"]["template"]
    elif kind in {"Deployment", "Job", "StatefulSet", "DaemonSet", "ReplicaSet"}:
        yield "spec.template.", obj["spec"]["template"]


def workload_violations(obj: Mapping[str, Any]) -> list[str]:
    name = f"{obj.get('kind')} {_dict(obj.get('metadata')).get('name')}"
    return [
        f"{name}: {where}{violation}"
        for where, template in pod_templates(obj)
        for violation in restricted_violations(template)
    ]


# --- (a) every pod template the operator builds --------------------------------------------


def _example(name: str) -> dict[str, Any]:
    body = load_yaml_documents(EXAMPLES / "iris" / name)[0]
    body["metadata"].update(namespace="team-a", uid="u-1", generation=1)
    return body


def _version(number: int) -> dict[str, Any]:
    prefix = f"s3://conveyor/models/team-a/iris-classifier/runs/iris-r{number}/"
    return {
        "metadata": {"name": f"iris-classifier-v{number}"},
        "spec": {
            "model": "iris-classifier",
            "version": number,
            "artifact": {
                "uri": prefix + "model.skops",
                "digest": DIGEST,
                "cardUri": prefix + "card.json",
                "onnx": {"uri": prefix + "model.onnx", "digest": DIGEST},
            },
        },
    }


def _materialize(phase: Any) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        featureset = FeatureSet.from_body(_example("featureset.yaml"))
        return build_materialize_job(featureset, "0123456789abcdef", phase, SETTINGS)

    return build


def _train(phase: Any) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        body = _example("trainingpipeline.yaml")
        body["spec"].setdefault("search", {})["parallelism"] = 3
        return build_training_job(
            TrainingPipeline.from_body(body),
            run="iris-r1",
            snapshot="snap1",
            phase=phase,
            featureset=_example("featureset.yaml"),
            champion=None,
            settings=SETTINGS,
        )

    return build


def _serving(**options: Any) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        pipeline = TrainingPipeline.from_body(_example("trainingpipeline.yaml"))
        return build_serving_deployment(pipeline, _version(1), SETTINGS, replicas=2, **options)

    return build


BUILT = [
    pytest.param(_materialize("all"), id="materialize"),
    pytest.param(_materialize("partition"), id="materialize-partition-indexed"),
    pytest.param(_materialize("combine"), id="materialize-combine"),
    pytest.param(_train("all"), id="train"),
    pytest.param(_train("trials"), id="train-trials-indexed"),
    pytest.param(_train("final"), id="train-final"),
    pytest.param(_serving(), id="serving"),
    pytest.param(_serving(canary=True), id="serving-canary"),
    pytest.param(_serving(shadow=_version(2)), id="serving-shadow"),
]


@pytest.mark.parametrize("build", BUILT)
def test_every_pod_the_operator_builds_is_restricted(build: Callable[[], dict[str, Any]]) -> None:
    workload = build()
    templates = list(pod_templates(workload))
    assert templates and templates[0][1]["spec"]["containers"], "the builder built no pod"
    assert workload_violations(workload) == []


def test_the_indexed_trials_job_really_is_indexed() -> None:
    """The parametrization above covers the Indexed Jobs, not only the single-pod ones."""
    assert _train("trials")()["spec"]["completionMode"] == "Indexed"
    assert _materialize("partition")()["spec"]["completionMode"] == "Indexed"


# --- (b) every workload in manifests/ ------------------------------------------------------


WORKLOAD_KINDS = {"Deployment", "Job", "StatefulSet", "DaemonSet", "CronJob", "Pod", "ReplicaSet"}


def _kustomize(directory: Path) -> list[dict[str, Any]]:
    completed = subprocess.run(
        ["kubectl", "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, f"kubectl kustomize {directory}: {completed.stderr}"
    return [obj for obj in yaml.load_all(completed.stdout, Loader=KustomizeOutputLoader) if obj]


def _kustomizations() -> tuple[list[Path], list[Path]]:
    """(kustomizations, components) under manifests/."""
    plain, components = [], []
    for path in sorted(MANIFESTS.rglob("kustomization.yaml")):
        kind = yaml.safe_load(path.read_text()).get("kind", "Kustomization")
        (components if kind == "Component" else plain).append(path.parent)
    return plain, components


@pytest.fixture(scope="module")
def rendered_workloads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every workload any kustomization renders, components applied on top of the default
    install (a component cannot be rendered alone), by `<kind> <name>`."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not on PATH: it renders the kustomizations under test")
    plain, components = _kustomizations()
    assert components, "no kustomize component found: did the layout change?"
    wrapper = tmp_path_factory.mktemp("with-components")
    relative = Path(os.path.relpath(MANIFESTS, wrapper))
    (wrapper / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [str(relative / "default")],
                "components": [str(relative / c.relative_to(MANIFESTS)) for c in components],
            }
        )
    )
    workloads: dict[str, dict[str, Any]] = {}
    for directory in [*plain, wrapper]:
        for obj in _kustomize(directory):
            if obj.get("kind") in WORKLOAD_KINDS:
                workloads[f"{obj['kind']} {obj['metadata']['name']}"] = obj
    return workloads


def _workloads_in_files() -> set[str]:
    """Every complete workload written in a YAML file under manifests/ (patches, which carry
    no image, are parts of one)."""
    found = set()
    for path in MANIFESTS.rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict) or doc.get("kind") not in WORKLOAD_KINDS:
                continue
            images = [
                c.get("image") for _, t in pod_templates(doc) for c in t["spec"]["containers"]
            ]
            if all(images):
                found.add(f"{doc['kind']} {doc['metadata']['name']}")
    return found


def test_every_workload_in_manifests_is_rendered_and_checked(
    rendered_workloads: dict[str, dict[str, Any]],
) -> None:
    written = _workloads_in_files()
    assert {"Deployment conveyor-operator", "Deployment minio", "Job minio-buckets"} <= written
    assert written <= set(rendered_workloads), "a workload no kustomization renders"


def test_every_workload_in_manifests_is_restricted(
    rendered_workloads: dict[str, dict[str, Any]],
) -> None:
    violations = [v for obj in rendered_workloads.values() for v in workload_violations(obj)]
    assert violations == []


# --- (c) the checker catches what each rule forbids ----------------------------------------


def _good_pod() -> dict[str, Any]:
    return copy.deepcopy(
        {
            "metadata": {"name": "p"},
            "spec": {
                "securityContext": {
                    "runAsNonRoot": True,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "main",
                        "image": "conveyor:0.1.0",
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "ports": [{"containerPort": 8080}],
                    }
                ],
                "volumes": [{"name": "tmp", "emptyDir": {}}],
            },
        }
    )


C0 = "spec.containers[0].securityContext"


def _set(pod: dict[str, Any], path: str, value: Any) -> None:
    """Set `value` at a dotted `path` below the pod, creating mappings; `x[0]` indexes lists."""
    node: Any = pod
    *parents, last = path.split(".")
    for part in parents:
        name, _, index = part.partition("[")
        node = node.setdefault(name, {})
        if index:
            node = node[int(index.rstrip("]"))]
    node[last] = value


BROKEN = [
    ("spec.hostNetwork", True, "spec.hostNetwork"),
    ("spec.hostPID", True, "spec.hostPID"),
    ("spec.hostIPC", True, "spec.hostIPC"),
    (f"{C0}.privileged", True, f"{C0}.privileged"),
    (f"{C0}.capabilities", {"add": ["SYS_ADMIN"], "drop": ["ALL"]}, f"{C0}.capabilities.add[0]"),
    (f"{C0}.capabilities", {"add": ["CHOWN"], "drop": ["ALL"]}, f"{C0}.capabilities.add[0]"),
    (f"{C0}.capabilities", {"drop": ["NET_RAW"]}, f"{C0}.capabilities.drop"),
    (f"{C0}.capabilities", {}, f"{C0}.capabilities.drop"),
    ("spec.volumes", [{"name": "h", "hostPath": {"path": "/"}}], "spec.volumes[0].hostPath"),
    ("spec.volumes", [{"name": "n", "nfs": {"server": "s", "path": "/"}}], "spec.volumes[0].nfs"),
    ("spec.containers[0].ports[0].hostPort", 8080, "spec.containers[0].ports[0].hostPort"),
    (f"{C0}.appArmorProfile", {"type": "Unconfined"}, f"{C0}.appArmorProfile.type"),
    (
        "metadata.annotations",
        {f"{APPARMOR_ANNOTATION}main": "unconfined"},
        f"metadata.annotations[{APPARMOR_ANNOTATION}main]",
    ),
    (f"{C0}.seLinuxOptions", {"type": "spc_t"}, f"{C0}.seLinuxOptions.type"),
    (
        "spec.securityContext.seLinuxOptions",
        {"user": "root"},
        "spec.securityContext.seLinuxOptions.user",
    ),
    (f"{C0}.procMount", "Unmasked", f"{C0}.procMount"),
    (
        "spec.securityContext.sysctls",
        [{"name": "kernel.msgmax", "value": "1"}],
        "spec.securityContext.sysctls[0].name",
    ),
    (f"{C0}.windowsOptions", {"hostProcess": True}, f"{C0}.windowsOptions.hostProcess"),
    (f"{C0}.allowPrivilegeEscalation", True, f"{C0}.allowPrivilegeEscalation"),
    (f"{C0}.allowPrivilegeEscalation", None, f"{C0}.allowPrivilegeEscalation"),
    ("spec.securityContext.runAsNonRoot", False, f"{C0}.runAsNonRoot"),
    (f"{C0}.runAsNonRoot", False, f"{C0}.runAsNonRoot"),
    (f"{C0}.runAsUser", 0, f"{C0}.runAsUser"),
    ("spec.securityContext.runAsUser", 0, "spec.securityContext.runAsUser"),
    ("spec.securityContext.seccompProfile", {"type": "Unconfined"}, f"{C0}.seccompProfile.type"),
    ("spec.securityContext.seccompProfile", None, f"{C0}.seccompProfile.type"),
    (f"{C0}.seccompProfile", {"type": "Unconfined"}, f"{C0}.seccompProfile.type"),
]


@pytest.mark.parametrize(("path", "value", "expected"), BROKEN, ids=[b[2] for b in BROKEN])
def test_the_checker_names_the_field_that_breaks_a_rule(
    path: str, value: Any, expected: str
) -> None:
    assert restricted_violations(_good_pod()) == []
    pod = _good_pod()
    _set(pod, path, value)
    assert expected in {v.path for v in restricted_violations(pod)}


def test_the_checker_looks_at_init_and_ephemeral_containers_too() -> None:
    pod = _good_pod()
    pod["spec"]["initContainers"] = [{"name": "init", "image": "x", "securityContext": {}}]
    pod["spec"]["ephemeralContainers"] = [
        {"name": "debug", "image": "x", "securityContext": {"privileged": True}}
    ]
    paths = {v.path for v in restricted_violations(pod)}
    assert "spec.initContainers[0].securityContext.allowPrivilegeEscalation" in paths
    assert "spec.initContainers[0].securityContext.capabilities.drop" in paths
    assert "spec.ephemeralContainers[0].securityContext.privileged" in paths


def test_what_restricted_allows_passes() -> None:
    pod = _good_pod()
    spec = pod["spec"]
    spec["securityContext"]["sysctls"] = [
        {"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}
    ]
    spec["securityContext"]["seLinuxOptions"] = {"type": "container_t", "level": "s0:c1,c2"}
    spec["containers"][0]["securityContext"].update(
        capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
        seccompProfile={"type": "Localhost", "localhostProfile": "profiles/p.json"},
        appArmorProfile={"type": "RuntimeDefault"},
        procMount="Default",
        runAsUser=1000,
    )
    spec["volumes"] += [
        {"name": kind, kind: {}} for kind in sorted(RESTRICTED_VOLUMES - {"emptyDir"})
    ]
    assert restricted_violations(pod) == []


def test_a_workload_violation_names_the_object_and_the_full_path() -> None:
    job = _materialize("all")()
    job["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    name = job["metadata"]["name"]
    assert workload_violations(job) == [
        f"Job {name}: spec.template.spec.containers[0].securityContext.privileged: must be false"
    ]
