"""The audit log: each request as the RBAC verb, group, resource and namespace it needs."""

from __future__ import annotations

from pathlib import Path

import kubernetes
from kubernetes.client import BatchV1Api, CoreV1Api

from conveyor.sandbox.apiserver.audit import read_audit


def test_each_request_is_recorded_in_rbac_terms(
    api_client: kubernetes.client.ApiClient, log_dir: Path
) -> None:
    core, batch = CoreV1Api(api_client), BatchV1Api(api_client)
    core.create_namespace({"metadata": {"name": "ns"}})
    core.create_namespaced_config_map("ns", {"metadata": {"name": "cm"}})
    core.patch_namespaced_config_map("cm", "ns", {"metadata": {"labels": {"a": "b"}}})
    core.read_namespaced_config_map("cm", "ns")
    batch.list_job_for_all_namespaces()
    core.delete_namespaced_config_map("cm", "ns")
    calls = [
        (r.user, r.verb, r.group, r.resource, r.namespace, r.name)
        for r in read_audit(log_dir)
        if r.resource != "namespaces"
    ]
    anonymous = "system:anonymous"
    assert calls == [
        (anonymous, "create", "", "configmaps", "ns", None),
        (anonymous, "patch", "", "configmaps", "ns", "cm"),
        (anonymous, "get", "", "configmaps", "ns", "cm"),
        (anonymous, "list", "batch", "jobs", None, None),
        (anonymous, "delete", "", "configmaps", "ns", "cm"),
    ]
    (patch,) = [r for r in read_audit(log_dir) if r.verb == "patch"]
    assert patch.body == {"metadata": {"labels": {"a": "b"}}}
    assert patch.content_type.endswith("patch+json")
