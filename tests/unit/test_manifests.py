"""The install manifests and the image: what `kubectl apply -k` and `docker build` will meet.

Every kustomization is rendered with the real `kubectl kustomize`, every built-in object is
validated strictly against the Kubernetes schemas, every Conveyor object against the CRDs, and
the security promises of the design (non-root, read-only root filesystem, least-privilege RBAC)
are checked on the rendered output rather than on the sources.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from conveyor.settings import ALLOCATOR_ENV, Settings

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
CRDS = REPO / "crds"
EXAMPLES = REPO / "examples"
DOCKERFILE = REPO / "images" / "Dockerfile"

INSTALLS = ["default", "overlays/kind"]  # kustomizations a user applies to install Conveyor
SAMPLES = "samples"
GROUP = "conveyor.dev"
NAMESPACE = "conveyor-system"
OPERATOR = "conveyor-operator"
RUNTIME_UID = 65532
MINIO_ENDPOINT = "http://minio.conveyor-system.svc:9000"

# The contract: every (API group, resource, verb) the operator uses cluster-wide. The
# ClusterRole must grant exactly this: a missing grant breaks the operator, an extra one
# breaks least privilege. Change both together.
CONVEYOR_KINDS = ["featuresets", "trainingpipelines", "modelversions", "retrainpolicies"]
OPERATOR_NEEDS: frozenset[tuple[str, str, str]] = frozenset(
    {(GROUP, kind, verb) for kind in CONVEYOR_KINDS for verb in ("get", "list", "watch", "patch")}
    | {(GROUP, "modelversions", "create")}
    | {(GROUP, f"{kind}/status", "patch") for kind in CONVEYOR_KINDS}
    | {
        (GROUP, f"{kind}/finalizers", "update")
        for kind in ("featuresets", "trainingpipelines", "modelversions")
    }
    | {("batch", "jobs", v) for v in ("list", "watch", "create", "delete")}
    | {("apps", "deployments", v) for v in ("get", "list", "watch", "create", "patch", "delete")}
    | {("", "services", v) for v in ("get", "create", "patch")}
    | {("autoscaling", "horizontalpodautoscalers", v) for v in ("get", "create", "patch", "delete")}
    | {("", "pods", v) for v in ("list", "watch")}
    | {("", "pods/proxy", "get")}  # a canary's judgement reads its pods' /metrics
    | {("", "secrets", v) for v in ("get", "create", "patch")}
    | {("", "serviceaccounts", v) for v in ("get", "create")}
    | {("", "events", "create")}
    | {("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("list", "watch")}
)
OPERATOR_ENV = {
    "CONVEYOR_OPERATOR_NAMESPACE",
    "CONVEYOR_NAMESPACES",
    "CONVEYOR_IMAGE",
    "CONVEYOR_S3_ENDPOINT",
    "CONVEYOR_S3_REGION",
    "CONVEYOR_S3_BUCKET",
    "CONVEYOR_S3_CREDENTIALS_SECRET",
    "CONVEYOR_WEBHOOK_TOKEN_SECRET",
    "CONVEYOR_PORT_HTTP",
    "POD_NAME",
    *ALLOCATOR_ENV,
}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}
LONG_RUNNING_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}


# --- rendering ---------------------------------------------------------------------------


class KustomizeOutputLoader(yaml.SafeLoader):
    """kustomize prints the string "=" bare, which YAML 1.1 (PyYAML) reads as a `value` tag."""


KustomizeOutputLoader.add_constructor(
    "tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node)
)


def kustomize(relative: str) -> list[dict[str, Any]]:
    completed = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS / relative)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        pytest.fail(f"`kubectl kustomize manifests/{relative}` failed:\n{completed.stderr}")
    return [obj for obj in yaml.load_all(completed.stdout, Loader=KustomizeOutputLoader) if obj]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not on PATH: it renders the kustomizations under test")
    return {relative: kustomize(relative) for relative in [*INSTALLS, SAMPLES]}


@pytest.fixture(params=INSTALLS)
def install(request: pytest.FixtureRequest, rendered: dict[str, list[dict[str, Any]]]) -> str:
    return str(request.param)


def ref(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind')} {where}{meta.get('name')}"


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"{kind} {name} is missing from the rendered manifests")


def pod_templates(objects: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict]]:
    """(owner, pod spec) for every object that runs pods."""
    for obj in objects:
        if obj["kind"] == "Pod":
            yield obj, obj["spec"]
        elif obj["kind"] == "CronJob":
            yield obj, obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif obj["kind"] in WORKLOAD_KINDS:
            yield obj, obj["spec"]["template"]["spec"]


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = find(objects, "Deployment", OPERATOR)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env", [])}


# --- schemas -----------------------------------------------------------------------------


def kubernetes_problems(obj: dict[str, Any]) -> list[str]:
    """Schema errors of a built-in object, unknown fields included (strict schemas)."""
    version = kubernetes_validate.latest_version()
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(part) for part in error.path)
        return [f"{ref(obj)}: {path}: {error.message} (Kubernetes {version})"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [f"{ref(obj)}: {error.message}"]
    return []


def test_builtin_objects_validate_strictly_against_kubernetes(
    rendered: dict[str, list[dict[str, Any]]], install: str
) -> None:
    problems = [
        problem
        for obj in rendered[install]
        if not obj["apiVersion"].startswith(f"{GROUP}/")
        for problem in kubernetes_problems(obj)
    ]
    assert not problems, "invalid objects:\n" + "\n".join(problems)


def crd_schemas(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema, from the rendered CRDs."""
    schemas = {}
    for crd in objects:
        if crd["kind"] != "CustomResourceDefinition":
            continue
        for version in crd["spec"]["versions"]:
            api_version = f"{crd['spec']['group']}/{version['name']}"
            kind = crd["spec"]["names"]["kind"]
            schemas[api_version, kind] = version["schema"]["openAPIV3Schema"]
    return schemas


def schema_problems(schema: dict[str, Any], obj: dict[str, Any]) -> list[str]:
    """What a real API server would reject, or silently prune, in obj."""
    try:
        from conveyor.sandbox.apiserver.schema import admit
    except ImportError:
        return closed_schema_problems(schema, obj)
    admitted, errors = admit(schema, obj)
    # metadata belongs to the server, not to the schema; the rest must survive pruning.
    checked = {key: value for key, value in obj.items() if key != "metadata"}
    return [error.message for error in errors] + [
        f"{path}: unknown field, a server would drop it" for path in pruned(checked, admitted)
    ]


def pruned(original: Any, admitted: Any, path: str = "") -> Iterator[str]:
    if isinstance(original, dict) and isinstance(admitted, dict):
        for key, value in original.items():
            where = f"{path}.{key}" if path else key
            if key not in admitted:
                yield where
            else:
                yield from pruned(value, admitted[key], where)
    elif isinstance(original, list) and isinstance(admitted, list):
        for index, (before, after) in enumerate(zip(original, admitted, strict=False)):
            yield from pruned(before, after, f"{path}[{index}]")


def closed_schema_problems(schema: dict[str, Any], obj: dict[str, Any]) -> list[str]:
    """Fallback without the sandbox's admission: JSON Schema with unknown fields as errors."""
    import jsonschema

    validator = jsonschema.Draft7Validator(closed(schema))
    return [
        f"{'.'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(obj)
    ]


def closed(schema: Any) -> Any:
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: closed(value) for key, value in schema.items()}
    open_ended = schema.get("x-kubernetes-preserve-unknown-fields") or (
        "additionalProperties" in schema
    )
    if "properties" in schema and not open_ended:
        result["additionalProperties"] = False
    return result


def test_samples_validate_against_the_generated_crds_and_kubernetes(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    schemas = crd_schemas(rendered["default"])
    samples = rendered[SAMPLES]
    assert samples, "manifests/samples renders no objects"
    problems = []
    for obj in samples:
        if not obj["apiVersion"].startswith(f"{GROUP}/"):
            problems += kubernetes_problems(obj)
            continue
        schema = schemas.get((obj["apiVersion"], obj["kind"]))
        if schema is None:
            problems.append(f"{ref(obj)}: no CRD in manifests/crd serves {obj['apiVersion']}")
            continue
        problems += [f"{ref(obj)}: {problem}" for problem in schema_problems(schema, obj)]
    assert not problems, "samples the API server would refuse:\n" + "\n".join(problems)


def test_crd_bases_are_the_generated_crds() -> None:
    generated = {path.name: path.read_bytes() for path in CRDS.glob("conveyor.dev_*.yaml")}
    assert len(generated) == len(CONVEYOR_KINDS), f"crds/ lacks CRDs: run `make crds` ({generated})"
    bases = MANIFESTS / "crd" / "bases"
    copies = {path.name: path.read_bytes() for path in bases.glob("*.yaml")}
    assert copies == generated, "manifests/crd/bases/ differs from crds/: run `make crds`"
    listed = yaml.safe_load((MANIFESTS / "crd" / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(f"bases/{name}" for name in generated)


def example_documents() -> dict[str, bytes]:
    """examples/<name>/*.yaml holding Conveyor objects, by path below examples/."""
    found = {}
    for path in sorted(EXAMPLES.glob("*/*.yaml")):
        documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        if any(str(doc.get("apiVersion", "")).startswith(f"{GROUP}/") for doc in documents):
            found[str(path.relative_to(EXAMPLES))] = path.read_bytes()
    return found


def test_samples_are_copies_of_the_examples() -> None:
    examples = example_documents()
    samples = MANIFESTS / "samples"
    listed = yaml.safe_load((samples / "kustomization.yaml").read_text())["resources"]
    copies = {name: (samples / name).read_bytes() for name in listed}
    stale = sorted(
        name for name in examples.keys() | copies.keys() if examples.get(name) != copies.get(name)
    )
    assert not stale, (
        f"manifests/samples/ differs from examples/ in {stale}: copy them again with "
        'for f in examples/*/*.yaml; do install -D -m 644 "$f" "manifests/samples/${f#examples/}"; '
        "done, and list every copy in manifests/samples/kustomization.yaml"
    )


# --- security ----------------------------------------------------------------------------


def effective(pod: dict[str, Any], container: dict[str, Any], key: str) -> Any:
    """A security setting as the kubelet resolves it: the container's, else the pod's."""
    own = container.get("securityContext", {})
    return own[key] if key in own else pod.get("securityContext", {}).get(key)


def test_every_container_runs_non_root_on_a_read_only_root(
    rendered: dict[str, list[dict[str, Any]]], install: str
) -> None:
    problems = []
    for owner, pod in pod_templates(rendered[install]):
        for container in containers(pod):
            where = f"{ref(owner)} container {container['name']}"
            context = container.get("securityContext", {})
            if effective(pod, container, "runAsNonRoot") is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            if effective(pod, container, "runAsUser") in (None, 0):
                problems.append(f"{where}: no numeric non-root runAsUser")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: root filesystem is writable")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if context.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}: capabilities are not all dropped")
            if (effective(pod, container, "seccompProfile") or {}).get("type") != "RuntimeDefault":
                problems.append(f"{where}: seccompProfile is not RuntimeDefault")
    assert not problems, "\n".join(problems)


def test_every_volume_mount_has_a_volume(
    rendered: dict[str, list[dict[str, Any]]], install: str
) -> None:
    for owner, pod in pod_templates(rendered[install]):
        volumes = {volume["name"] for volume in pod.get("volumes", [])}
        for container in containers(pod):
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{ref(owner)}: no volume {mount['name']}"


def test_every_container_declares_requests_and_limits(
    rendered: dict[str, list[dict[str, Any]]], install: str
) -> None:
    problems = []
    for owner, pod in pod_templates(rendered[install]):
        for container in containers(pod):
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                missing = {"cpu", "memory"} - set(resources.get(bound, {}))
                if missing:
                    problems.append(f"{ref(owner)} {container['name']}: no {bound} {missing}")
    assert not problems, "\n".join(problems)


def test_long_running_containers_have_probes_on_declared_ports(
    rendered: dict[str, list[dict[str, Any]]], install: str
) -> None:
    problems = []
    for owner, pod in pod_templates(rendered[install]):
        if owner["kind"] not in LONG_RUNNING_KINDS:
            continue
        for container in pod["containers"]:
            ports = {port.get("name") for port in container.get("ports", [])}
            ports |= {port["containerPort"] for port in container.get("ports", [])}
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in container:
                    problems.append(f"{ref(owner)} {container['name']}: no {probe}")
                elif container[probe]["httpGet"]["port"] not in ports:
                    problems.append(f"{ref(owner)} {container['name']}: {probe} port undeclared")
    assert not problems, "\n".join(problems)


def test_images_are_pinned_never_latest(
    rendered: dict[str, list[dict[str, Any]]], install: str
) -> None:
    for owner, pod in pod_templates(rendered[install]):
        for container in containers(pod):
            image = container["image"]
            name, _, tag = image.rpartition(":")
            assert "@sha256:" in image or (name and "/" not in tag), f"{ref(owner)}: {image}"
            assert tag != "latest", f"{ref(owner)} runs {image}: pin a version"


def rbac_rules(objects: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for obj in objects:
        if obj["kind"] in ("Role", "ClusterRole"):
            for rule in obj.get("rules", []):
                yield obj, rule


def test_rbac_has_no_wildcards(rendered: dict[str, list[dict[str, Any]]], install: str) -> None:
    for role, rule in rbac_rules(rendered[install]):
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule.get(field, []), f"{ref(role)}: '*' in {field}"


def grants(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role.get("rules", [])
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def bound_roles(objects: list[dict[str, Any]], binding_kind: str) -> list[str]:
    """Roles bound to the operator's ServiceAccount through bindings of binding_kind."""
    return [
        binding["roleRef"]["name"]
        for binding in objects
        if binding["kind"] == binding_kind
        and {"kind": "ServiceAccount", "name": OPERATOR, "namespace": NAMESPACE}
        in binding["subjects"]
    ]


def test_operator_cluster_role_grants_exactly_what_it_uses(
    rendered: dict[str, list[dict[str, Any]]], install: str
) -> None:
    objects = rendered[install]
    assert bound_roles(objects, "ClusterRoleBinding") == [OPERATOR]
    granted = grants(find(objects, "ClusterRole", OPERATOR))
    missing, extra = OPERATOR_NEEDS - granted, granted - OPERATOR_NEEDS
    assert not missing, f"the operator would get 403 Forbidden on {sorted(missing)}"
    assert not extra, f"grants the operator does not use: {sorted(extra)}"


def test_operator_reads_only_its_own_secrets_in_its_namespace(
    rendered: dict[str, list[dict[str, Any]]], install: str
) -> None:
    objects = rendered[install]
    assert set(bound_roles(objects, "RoleBinding")) == {
        "conveyor-operator-secrets",
        "conveyor-operator-leader-election",
    }
    role = find(objects, "Role", "conveyor-operator-secrets")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert grants(role) == {("", "secrets", "get")}
    env = env_of(operator_container(objects))
    named = {env[key]["value"] for key in OPERATOR_ENV if key.endswith("_SECRET")}
    (rule,) = role["rules"]
    assert set(rule["resourceNames"]) == named, "the Role must name the Secrets the operator reads"


def test_replicas_compete_for_one_lease_in_the_operators_namespace(
    rendered: dict[str, list[dict[str, Any]]], install: str
) -> None:
    objects = rendered[install]
    role = find(objects, "Role", "conveyor-operator-leader-election")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert grants(role) == {
        ("coordination.k8s.io", "leases", v) for v in ("create", "get", "patch")
    }
    named = [rule for rule in role["rules"] if set(rule["verbs"]) & {"get", "patch"}]
    assert [rule["resourceNames"] for rule in named] == [[Settings().lease_name]]
    env = env_of(operator_container(objects))
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_admission_policies_exempt_the_operators_own_service_account(
    rendered: dict[str, list[dict[str, Any]]], install: str
) -> None:
    """The registry policy must name the ServiceAccount the operator really runs as, or the
    operator is refused when it registers a version (an overlay that moves it must follow)."""
    objects = rendered[install]
    account = find(objects, "ServiceAccount", OPERATOR)
    username = f"system:serviceaccount:{account['metadata']['namespace']}:{OPERATOR}"
    registry = find(objects, "ValidatingAdmissionPolicy", "conveyor-modelversion-registry")
    conditions = " ".join(c["expression"] for c in registry["spec"]["matchConditions"])
    assert f"'{username}'" in conditions
    policies = [obj for obj in objects if obj["kind"] == "ValidatingAdmissionPolicy"]
    bound = {
        obj["spec"]["policyName"]: obj["spec"]["validationActions"]
        for obj in objects
        if obj["kind"] == "ValidatingAdmissionPolicyBinding"
    }
    assert policies and all(bound.get(p["metadata"]["name"]) == ["Deny"] for p in policies)
    for policy in policies:  # Kubernetes' own cleanup is never stuck behind a policy
        conditions = " ".join(c["expression"] for c in policy["spec"]["matchConditions"])
        assert "system:serviceaccount:kube-system:namespace-controller" in conditions


# --- the operator ------------------------------------------------------------------------


def test_operator_runs_two_replicas_that_a_drain_never_stops_together(
    rendered: dict[str, list[dict[str, Any]]], install: str
) -> None:
    deployment = find(rendered[install], "Deployment", OPERATOR)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    budget = find(rendered[install], "PodDisruptionBudget", OPERATOR)
    assert budget["metadata"]["namespace"] == NAMESPACE
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]
    pod = deployment["spec"]["template"]["spec"]
    (spread,) = pod["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert spread["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert spread["podAffinityTerm"]["labelSelector"] == deployment["spec"]["selector"]


def test_operator_runs_with_its_settings(
    rendered: dict[str, list[dict[str, Any]]], install: str
) -> None:
    deployment = find(rendered[install], "Deployment", OPERATOR)
    assert deployment["metadata"]["namespace"] == NAMESPACE
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == OPERATOR
    container = operator_container(rendered[install])
    assert container["args"] == ["operator"]
    env = env_of(container)
    assert set(env) == OPERATOR_ENV
    namespace_source = env["CONVEYOR_OPERATOR_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert namespace_source == "metadata.namespace"
    image = env["CONVEYOR_IMAGE"]["value"]
    assert image == container["image"], "Jobs and serving must run the operator's own image"
    assert env["CONVEYOR_PORT_HTTP"]["value"] == "8080"
    assert {name: env[name]["value"] for name in ALLOCATOR_ENV} == ALLOCATOR_ENV  # as measured
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    (tmp,) = [mount for mount in container["volumeMounts"] if mount["mountPath"] == "/tmp"]
    assert "emptyDir" in volumes[tmp["name"]], "HOME and TMPDIR need a writable /tmp"


def test_services_reach_their_pods(rendered: dict[str, list[dict[str, Any]]], install: str) -> None:
    objects = rendered[install]
    for service in (obj for obj in objects if obj["kind"] == "Service"):
        selector = service["spec"]["selector"]
        selected = [
            pod
            for owner, pod in pod_templates(objects)
            if owner["kind"] in LONG_RUNNING_KINDS
            and owner["metadata"]["namespace"] == service["metadata"]["namespace"]
            and selector.items() <= owner["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(selected) == 1, f"{ref(service)} selects {len(selected)} workloads, not one"
        port_names = {port.get("name") for c in selected[0]["containers"] for port in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, f"{ref(service)}: {port['targetPort']}"


def test_operator_service_is_scraped_by_prometheus(
    rendered: dict[str, list[dict[str, Any]]], install: str
) -> None:
    service = find(rendered[install], "Service", OPERATOR)
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    annotations = service["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8080"
    assert annotations["prometheus.io/path"] == "/metrics"


def test_namespaced_objects_live_in_conveyor_system(
    rendered: dict[str, list[dict[str, Any]]], install: str
) -> None:
    cluster_scoped = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
    # kustomize 5.5 does not know these kinds are cluster-scoped and gives them the namespace,
    # which the API server drops (it clears metadata.namespace of every cluster-scoped kind).
    unknown_to_kustomize = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    for obj in rendered[install]:
        expected = None if obj["kind"] in cluster_scoped else NAMESPACE
        if obj["kind"] in unknown_to_kustomize:
            assert obj["metadata"].get("namespace") in (None, NAMESPACE), ref(obj)
            continue
        assert obj["metadata"].get("namespace") == expected, ref(obj)


# --- the kind overlay and MinIO ----------------------------------------------------------


def test_kind_overlay_runs_the_loaded_image_against_in_cluster_minio(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["overlays/kind"]
    container = operator_container(objects)
    assert container["image"] == "conveyor:0.1.0"
    assert container["imagePullPolicy"] == "IfNotPresent", "kind load gives no registry to pull"
    assert env_of(container)["CONVEYOR_S3_ENDPOINT"]["value"] == MINIO_ENDPOINT
    minio = find(objects, "Service", "minio")
    assert {port["name"]: port["port"] for port in minio["spec"]["ports"]} == {
        "api": 9000,
        "console": 9001,
    }


def test_kind_overlay_has_every_secret_it_refers_to(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["overlays/kind"]
    secrets = {
        obj["metadata"]["name"]: set(obj.get("stringData", {})) | set(obj.get("data", {}))
        for obj in objects
        if obj["kind"] == "Secret"
    }
    env = env_of(operator_container(objects))
    assert secrets[env["CONVEYOR_S3_CREDENTIALS_SECRET"]["value"]] == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    }
    assert secrets[env["CONVEYOR_WEBHOOK_TOKEN_SECRET"]["value"]] == {"token"}
    for owner, pod in pod_templates(objects):
        for container in containers(pod):
            for entry in container.get("env", []):
                key_ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if key_ref:
                    assert key_ref["key"] in secrets.get(key_ref["name"], set()), ref(owner)


def test_bucket_job_creates_both_buckets_idempotently(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    job = find(rendered["overlays/kind"], "Job", "minio-buckets")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:3] == ["mc", "mb", "--ignore-existing"], "re-applying must not fail"
    assert set(command[3:]) == {"minio/conveyor", "minio/conveyor-raw"}
    assert env_of(container)["MC_HOST_minio"]["value"].endswith("@minio:9000")


def test_default_install_leaves_storage_to_the_cluster(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["default"]
    assert not [obj for obj in objects if obj["kind"] == "Secret"], "credentials are the user's"
    assert not [obj for obj in objects if obj["metadata"]["name"].startswith("minio")]


# --- the image ---------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    return [(text.split()[0].upper(), text.split(maxsplit=1)[1]) for text in logical]


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def test_image_is_multi_stage_on_a_pinned_python_slim_base() -> None:
    instructions = dockerfile_instructions()
    args = dict(text.split("=", 1) for word, text in instructions if word == "ARG" and "=" in text)
    bases = [text.split()[0] for word, text in instructions if word == "FROM"]
    assert len(bases) >= 2, "build in one stage, ship a slim runtime stage"
    for base in bases:
        image = args.get(base.strip("${}"), base)
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image), image


def test_image_runs_conveyor_as_numeric_non_root_user() -> None:
    runtime = final_stage(dockerfile_instructions())
    (user,) = [text for word, text in runtime if word == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) == RUNTIME_UID, "Kubernetes verifies runAsNonRoot by uid"
    assert ("ENTRYPOINT", '["conveyor"]') in runtime, "exec form, so signals reach conveyor"
    assert ("WORKDIR", "/home/conveyor") in runtime
    env = " ".join(text for word, text in runtime if word == "ENV")
    for setting in ("HOME=/tmp", "TMPDIR=/tmp", "PYTHONDONTWRITEBYTECODE=1"):
        assert setting in env, f"runtime stage lacks ENV {setting}"
    labels = " ".join(text for word, text in runtime if word == "LABEL")
    for label in ("title", "version", "licenses"):
        assert f"org.opencontainers.image.{label}=" in labels


def test_image_runtime_stage_has_no_build_tools() -> None:
    runtime = final_stage(dockerfile_instructions())
    commands = " ".join(text for word, text in runtime if word == "RUN")
    for tool in ("apt-get install", "pip install", "gcc", "build-essential"):
        assert tool not in commands, f"runtime stage installs {tool}"
    copies = [text for word, text in runtime if word in ("COPY", "ADD")]
    assert copies and all(text.startswith("--from=builder ") for text in copies)


def dockerignore_admits(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    admitted = True
    for line in (REPO / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        body = re.escape(pattern.removeprefix("!").strip("/"))
        body = body.replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        body = body.replace(r"\?", "[^/]").replace(r"\[", "[").replace(r"\]", "]")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(re.fullmatch(body, prefix) for prefix in prefixes):
            admitted = negated
    return admitted


def test_build_context_holds_the_sources_and_nothing_private() -> None:
    builder_copies = [
        text.split()[:-1]
        for word, text in dockerfile_instructions()
        if word == "COPY" and not text.startswith("--from")
    ]
    for source in (source for sources in builder_copies for source in sources):
        assert dockerignore_admits(source.rstrip("/")), f".dockerignore excludes {source}"
    assert dockerignore_admits("operator/conveyor/cli.py")
    for private in (".git/config", ".venv/bin/python", ".sandbox/s3/x", "tests/unit/x.py"):
        assert not dockerignore_admits(private), f".dockerignore sends {private} to the builder"
    assert not dockerignore_admits("operator/conveyor/__pycache__/cli.cpython-311.pyc")


def test_image_entrypoint_is_an_installed_script() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "conveyor" in project["scripts"], "ENTRYPOINT conveyor needs [project.scripts]"
