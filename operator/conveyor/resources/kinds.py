"""Descriptors of the API resources Conveyor reads and writes: where each lives on the server.

`clients.kube.Kube` takes these; the builders here produce the bodies. One descriptor per
resource, so a path is never spelled by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..api.v1alpha1 import (
    GROUP,
    VERSION,
    CustomResource,
    FeatureSet,
    ModelVersion,
    RetrainPolicy,
    TrainingPipeline,
)

__all__ = [
    "AUTOSCALERS",
    "DEPLOYMENTS",
    "EVENTS",
    "FEATURESETS",
    "JOBS",
    "MODEL_VERSIONS",
    "NAMESPACES",
    "PODS",
    "RETRAIN_POLICIES",
    "SECRETS",
    "SERVICES",
    "SERVICE_ACCOUNTS",
    "TRAINING_PIPELINES",
    "Resource",
    "custom",
]


@dataclass(frozen=True)
class Resource:
    """An API resource: `batch` + `v1` + `jobs` + `Job`; the core group is ""."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        """The URL path of the collection (in `namespace`), one object, or its subresource."""
        path = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace is not None and self.namespaced:
            path += f"/namespaces/{namespace}"
        path += f"/{self.plural}"
        if name is not None:
            path += f"/{name}"
        return path + (f"/{sub}" if sub else "")

    def describe(self, namespace: str | None, name: str) -> str:
        """`Job default/iris-mat-0123` — how messages name one object."""
        where = f"{namespace}/{name}" if namespace and self.namespaced else name
        return f"{self.kind} {where}"


def custom(kind: type[CustomResource]) -> Resource:
    """The resource of one of Conveyor's kinds."""
    return Resource(GROUP, VERSION, kind.plural, kind.kind_name)


FEATURESETS = custom(FeatureSet)
TRAINING_PIPELINES = custom(TrainingPipeline)
MODEL_VERSIONS = custom(ModelVersion)
RETRAIN_POLICIES = custom(RetrainPolicy)

JOBS = Resource("batch", "v1", "jobs", "Job")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
AUTOSCALERS = Resource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler")
PODS = Resource("", "v1", "pods", "Pod")
SECRETS = Resource("", "v1", "secrets", "Secret")
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")
SERVICES = Resource("", "v1", "services", "Service")
EVENTS = Resource("", "v1", "events", "Event")
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
