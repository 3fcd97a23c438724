"""The registry's guards (manifests/admission, as committed) against the sandbox API, with the
CRDs of crds/: what a person may do to a ModelVersion, what only the operator may do."""

from __future__ import annotations

import copy
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from kubernetes.client import (
    AdmissionregistrationV1Api,
    ApiClient,
    ApiextensionsV1Api,
    CoreV1Api,
    CustomObjectsApi,
)

from conveyor.sandbox.apiserver import ApiServerThread, UserInfo, service_account, write_kubeconfig
from conveyor.sandbox.apiserver.errors import ApiError
from conveyor.sandbox.apiserver.policies import Attributes, PolicyAdmission
from conveyor.sandbox.apiserver.resources import ResourceType
from tests.conftest import CRDS, ROOT, load_yaml_documents
from tests.sandbox.apiserver.conftest import Kubectl, api_error

pytestmark = pytest.mark.integration

ADMIN = UserInfo("sandbox-admin", ("system:masters", "system:authenticated"))
OPERATOR = service_account("conveyor-system", "conveyor-operator")
GROUP, VERSION, PLURAL = "conveyor.dev", "v1alpha1", "modelversions"
NAMESPACE = "ml"
POLICIES = ROOT / "manifests" / "admission"
REGISTRY = "ValidatingAdmissionPolicy 'conveyor-modelversion-registry' with binding 'conveyor-modelversion-registry' denied request: "
DELETION = "ValidatingAdmissionPolicy 'conveyor-production-modelversion-deletion' with binding 'conveyor-production-modelversion-deletion' denied request: "
VERSION_BODY: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "ModelVersion",
    "metadata": {
        "name": "iris-classifier-v1",
        "labels": {
            "conveyor.dev/model": "iris-classifier",
            "conveyor.dev/pipeline": "iris",
            "conveyor.dev/run": "run-1",
        },
    },
    "spec": {
        "model": "iris-classifier",
        "version": 1,
        "stage": "Candidate",
        "task": "classification",
        "metric": "accuracy",
        "metrics": {"accuracy": 0.96},
        "artifact": {
            "uri": "s3://conveyor/models/iris-classifier/1/model.skops",
            "digest": "sha256:" + "ab" * 32,
        },
        "lineage": {
            "pipeline": "iris",
            "run": "run-1",
            "featureSet": "iris",
            "snapshot": "s1",
            "image": "conveyor:0.1.0",
        },
    },
}


@pytest.fixture
def tokens() -> dict[UserInfo, str]:
    return {ADMIN: secrets.token_urlsafe(16), OPERATOR: secrets.token_urlsafe(16)}


@pytest.fixture
def server(log_dir: Path, tokens: dict[UserInfo, str]) -> Iterator[ApiServerThread]:
    by_token = {token: user for user, token in tokens.items()}
    with ApiServerThread(log_dir=log_dir, tokens=by_token) as running:
        yield running


def kubeconfig_for(tmp_path: Path, server: ApiServerThread, name: str, token: str | None) -> Path:
    path = tmp_path / f"{name}-kubeconfig"
    write_kubeconfig(path, server.url, namespace=NAMESPACE, token=token)
    return path


@pytest.fixture
def people_kubeconfig(tmp_path: Path, server: ApiServerThread, tokens: dict) -> Path:
    return kubeconfig_for(tmp_path, server, "people", tokens[ADMIN])


def client_for(path: Path) -> Iterator[ApiClient]:
    with kubernetes.config.new_client_from_config(config_file=str(path)) as client:
        yield client


@pytest.fixture
def person(people_kubeconfig: Path) -> Iterator[ApiClient]:
    yield from client_for(people_kubeconfig)


@pytest.fixture
def operator(tmp_path: Path, server: ApiServerThread, tokens: dict) -> Iterator[ApiClient]:
    yield from client_for(kubeconfig_for(tmp_path, server, "operator", tokens[OPERATOR]))


@pytest.fixture
def anonymous(tmp_path: Path, server: ApiServerThread) -> Iterator[ApiClient]:
    yield from client_for(kubeconfig_for(tmp_path, server, "anonymous", None))


@pytest.fixture(autouse=True)
def installed(person: ApiClient) -> None:
    """The CRD of crds/ and the policies of manifests/admission, installed by an admin."""
    ApiextensionsV1Api(person).create_custom_resource_definition(
        load_yaml_documents(CRDS / "conveyor.dev_modelversions.yaml")[0]
    )
    admission = AdmissionregistrationV1Api(person)
    for path in sorted(POLICIES.glob("modelversion-*.yaml")):
        for document in load_yaml_documents(path):
            if document["kind"] == "ValidatingAdmissionPolicy":
                admission.create_validating_admission_policy(document)
            else:
                admission.create_validating_admission_policy_binding(document)
    CoreV1Api(person).create_namespace({"metadata": {"name": NAMESPACE}})


def objects(client: ApiClient) -> CustomObjectsApi:
    return CustomObjectsApi(client)


def create(client: ApiClient, body: dict[str, Any] | None = None) -> dict[str, Any]:
    body = copy.deepcopy(body or VERSION_BODY)
    result: dict[str, Any] = objects(client).create_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL, body
    )
    return result


def patch(client: ApiClient, body: dict[str, Any], *, status: bool = False) -> dict[str, Any]:
    call = objects(client).patch_namespaced_custom_object
    if status:
        call = objects(client).patch_namespaced_custom_object_status
    result: dict[str, Any] = call(GROUP, VERSION, NAMESPACE, PLURAL, "iris-classifier-v1", body)
    return result


def get(client: ApiClient) -> dict[str, Any]:
    result: dict[str, Any] = objects(client).get_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL, "iris-classifier-v1"
    )
    return result


def delete(client: ApiClient) -> Any:
    return objects(client).delete_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL, "iris-classifier-v1"
    )


def refused(call: Any, *args: Any, **kwargs: Any) -> tuple[int, str]:
    code, body = api_error(call, *args, **kwargs)
    return code, body["message"]


def test_a_person_cannot_register_a_version(person: ApiClient, anonymous: ApiClient) -> None:
    forged = copy.deepcopy(VERSION_BODY)
    forged["spec"]["artifact"] = {
        "uri": "s3://other-bucket/model.skops",
        "digest": "sha256:" + "0" * 64,
    }
    forged["spec"]["stage"] = "Production"
    for client in (person, anonymous):
        code, message = refused(create, client, forged)
        assert code == 403
        assert message == (
            'modelversions.conveyor.dev "iris-classifier-v1" is forbidden: '
            + REGISTRY
            + "ModelVersions are registered by the Conveyor operator from training runs: run "
            "`conveyor run iris` instead of creating one"
        )
    assert (
        objects(person).list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)["items"]
        == []
    )


def test_the_operator_registers_and_reports(operator: ApiClient) -> None:
    create(operator)
    reported = patch(operator, {"status": {"stage": "Candidate"}}, status=True)
    assert reported["status"]["stage"] == "Candidate"


def test_a_person_sets_the_stage_and_deletion_of_artifacts(
    operator: ApiClient, person: ApiClient
) -> None:
    create(operator)
    patched = patch(person, {"spec": {"stage": "Production", "deleteArtifacts": True}})
    assert (patched["spec"]["stage"], patched["spec"]["deleteArtifacts"]) == ("Production", True)
    labelled = patch(person, {"metadata": {"labels": {"team": "vision"}}})
    assert labelled["metadata"]["labels"]["team"] == "vision"


IMMUTABLE = "is immutable: a registry entry never changes; train a new version"


@pytest.mark.parametrize(
    ("change", "status", "expected"),
    [
        (
            {"metadata": {"labels": {"conveyor.dev/run": "run-9"}}},
            False,
            "the labels conveyor.dev/run tie a ModelVersion to its model, pipeline and run: only the "
            "Conveyor operator sets them",
        ),
        (
            {"status": {"stage": "Production"}},
            True,
            "the status of a ModelVersion is written by the Conveyor operator and reports what is "
            "served: set spec.stage instead (`conveyor promote <version>`, `conveyor rollback <model>`)",
        ),
    ],
    ids=["run-label", "status"],
)
def test_a_person_cannot_rewrite_the_record(
    operator: ApiClient, person: ApiClient, change: dict, status: bool, expected: str
) -> None:
    create(operator)
    before = get(person)
    code, message = refused(patch, person, change, status=status)
    assert code == 403
    assert message.endswith(REGISTRY + expected)
    assert get(person) == before


def test_a_person_cannot_change_the_digest(operator: ApiClient, person: ApiClient) -> None:
    """The CRD's rule answers first (a server validates the object before admission policies)."""
    create(operator)
    before = get(person)
    code, message = refused(patch, person, {"spec": {"artifact": {"digest": "sha256:" + "0" * 64}}})
    assert code == 422
    assert message == (
        'ModelVersion.conveyor.dev "iris-classifier-v1" is invalid: spec.artifact: Invalid value: '
        f'"object": {IMMUTABLE}'
    )
    assert get(person) == before


def test_the_policy_alone_guards_every_registry_field() -> None:
    """Where the CRD declares no rule for a field, the policy still refuses its change."""
    documents = [
        doc
        for path in sorted(POLICIES.glob("modelversion-*.yaml"))
        for doc in load_yaml_documents(path)
    ]
    policies = [doc for doc in documents if doc["kind"] == "ValidatingAdmissionPolicy"]
    bindings = [doc for doc in documents if doc["kind"] == "ValidatingAdmissionPolicyBinding"]
    for index, doc in enumerate(policies):
        doc["metadata"].update(uid=str(index), resourceVersion="1")
    resource_type = ResourceType(GROUP, VERSION, PLURAL, "ModelVersion", custom=True)
    old = copy.deepcopy(VERSION_BODY)
    new = copy.deepcopy(VERSION_BODY)
    new["spec"]["artifact"]["digest"] = "sha256:" + "0" * 64
    del new["spec"]["metrics"]
    new["spec"]["stage"] = "Production"
    request = Attributes("UPDATE", resource_type, "iris-classifier-v1", NAMESPACE, ADMIN, new, old)
    with pytest.raises(ApiError) as raised:
        PolicyAdmission().validate(request, policies, bindings, None)
    assert raised.value.code == 403
    assert raised.value.message.endswith(
        REGISTRY + "spec.artifact, spec.metrics of a ModelVersion belong to the registry record of "
        "its training run and never change: only spec.stage and spec.deleteArtifacts are yours to "
        "set; train a new version with `conveyor run <pipeline>` instead"
    )
    new["spec"] = {**old["spec"], "stage": "Production", "deleteArtifacts": True}
    assert PolicyAdmission().validate(request, policies, bindings, None) == []


def test_replacing_the_whole_object_is_checked_too(operator: ApiClient, person: ApiClient) -> None:
    create(operator)
    body = get(person)
    body["spec"]["lineage"]["run"] = "run-that-never-existed"
    code, message = refused(
        objects(person).replace_namespaced_custom_object,
        GROUP, VERSION, NAMESPACE, PLURAL, "iris-classifier-v1", body,
    )  # fmt: skip
    assert code == 422 and message.endswith(f'spec.lineage: Invalid value: "object": {IMMUTABLE}')


def test_the_record_is_immutable_even_for_the_operator(operator: ApiClient) -> None:
    create(operator)
    code, body = api_error(patch, operator, {"spec": {"lineage": {"run": "run-2"}}})
    assert code == 422
    assert body["message"] == (
        'ModelVersion.conveyor.dev "iris-classifier-v1" is invalid: spec.lineage: Invalid value: '
        '"object": is immutable: a registry entry never changes; train a new version'
    )
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "object": is immutable: a registry entry never changes; '
            "train a new version",
            "field": "spec.lineage",
        }
    ]


def test_a_production_version_cannot_be_deleted(operator: ApiClient, person: ApiClient) -> None:
    create(operator)
    patch(person, {"spec": {"stage": "Production"}})
    patch(operator, {"status": {"stage": "Production"}}, status=True)
    before = get(person)
    code, message = refused(delete, person)
    assert code == 403
    assert message == (
        'modelversions.conveyor.dev "iris-classifier-v1" is forbidden: '
        + DELETION
        + "iris-classifier-v1 serves model iris-classifier in Production: promote another version "
        "(`conveyor promote <version>`) or set its spec.stage to Archived first, then delete it"
    )
    after = get(person)
    assert "deletionTimestamp" not in after["metadata"] and after == before
    code, _ = refused(
        objects(person).delete_collection_namespaced_custom_object,
        GROUP, VERSION, NAMESPACE, PLURAL,
    )  # fmt: skip
    assert code == 403 and get(person) == before

    patch(operator, {"status": {"stage": "Archived"}}, status=True)
    delete(person)
    assert api_error(get, person)[0] == 404


def test_deleting_the_namespace_is_never_stuck_on_a_served_version(
    operator: ApiClient, person: ApiClient
) -> None:
    create(operator)
    patch(operator, {"status": {"stage": "Production"}}, status=True)
    CoreV1Api(person).delete_namespace(NAMESPACE)
    assert api_error(CoreV1Api(person).read_namespace, NAMESPACE)[0] == 404


def test_an_unknown_token_is_unauthorized(tmp_path: Path, server: ApiServerThread) -> None:
    for client in client_for(kubeconfig_for(tmp_path, server, "stranger", "not-a-token")):
        code, body = api_error(CoreV1Api(client).list_namespace)
        assert (code, body["reason"], body["message"]) == (401, "Unauthorized", "Unauthorized")


def test_kubectl_shows_why(tmp_path: Path, people_kubeconfig: Path, operator: ApiClient) -> None:
    kubectl = Kubectl(people_kubeconfig, tmp_path / "kube-cache")
    forged = tmp_path / "forged.yaml"
    forged.write_text(yaml.safe_dump(VERSION_BODY))
    applied = kubectl.run("apply", "-f", str(forged), check=False)
    assert applied.returncode == 1
    assert (
        'modelversions.conveyor.dev "iris-classifier-v1" is forbidden: ' + REGISTRY
        + "ModelVersions are registered by the Conveyor operator from training runs: run "
        "`conveyor run iris` instead of creating one"
    ) in applied.stderr  # fmt: skip

    create(operator)
    promoted = kubectl.run(
        "patch", "mv", "iris-classifier-v1", "--type", "merge", "-p",
        '{"spec":{"stage":"Production"}}',
    )  # fmt: skip
    assert "patched" in promoted.stdout
    forged_digest = kubectl.run(
        "patch", "mv", "iris-classifier-v1", "--type", "merge", "-p",
        '{"spec":{"artifact":{"digest":"sha256:' + "0" * 64 + '"}}}',
        check=False,
    )  # fmt: skip
    assert forged_digest.returncode == 1
    assert (
        'The ModelVersion "iris-classifier-v1" is invalid: spec.artifact: Invalid value: "object": '
        + IMMUTABLE
    ) in forged_digest.stderr
    listed = kubectl("get", "validatingadmissionpolicies", "-o", "name")
    assert (
        "validatingadmissionpolicy.admissionregistration.k8s.io/conveyor-modelversion-registry"
        in listed
    )
