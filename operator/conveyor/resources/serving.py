"""Pure builders of what serves a model: its Deployment, Service and, when the pipeline asks
for autoscaling, HorizontalPodAutoscaler — all named after the model and owned by its
TrainingPipeline, so they go with it.

The pods run `conveyor serve` for one ModelVersion (its files and digests, `ServeArgs`) as the
workload ServiceAccount, non-root on a read-only root filesystem with an emptyDir for the
downloaded artifacts. Three probes, three questions: startup and liveness ask "does the process
answer" (LIVE_PATH, so a slow download is no liveness failure), readiness "is the model loaded,
verified and warmed up" (READY_PATH). A new version rolls out with `maxUnavailable: 0`: the old
pods answer until the new ones are ready.

Every object carries the hash of the spec it was built with (SPEC_HASH), so the operator
patches only when what it wants changed, never on every resync.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..api.v1alpha1 import TrainingPipeline
from ..api.v1alpha1.trainingpipeline import Serving
from ..contracts.invocations import ServeArgs
from ..contracts.labels import (
    LABEL_MODEL,
    LABEL_PIPELINE,
    LABEL_TRACK,
    LABEL_VERSION,
    SPEC_HASH,
    component_labels,
)
from ..contracts.serving import (
    CACHE_DIR,
    ENV_LOG_BATCH_RECORDS,
    ENV_LOG_BUFFER_RECORDS,
    ENV_LOG_FLUSH_SECONDS,
    ENV_LOG_PREDICTIONS,
    ENV_LOG_SAMPLE_RATIO,
    ENV_POD_NAME,
    ENV_POD_NAMESPACE,
    LIVE_PATH,
    METRICS_PATH,
    READY_PATH,
    SERVE_PORT,
    SERVE_PORT_NAME,
)
from .workloads import JobSettings, build_container, owner_reference, workload_pod_spec

__all__ = [
    "build_autoscaler",
    "build_serving_deployment",
    "build_serving_service",
    "canary_name",
    "serve_args",
    "serving_labels",
    "serving_name",
    "serving_url",
    "shadowed",
    "spec_hash_of",
]

_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_STARTUP_SECONDS = 300
"""How long a pod may take to listen at all (import, first download) before it is restarted."""


def serving_name(model: str) -> str:
    """The name of the model's Deployment, Service and autoscaler: the model's, when it is a
    valid Service name (DNS-1035: it starts with a letter), else prefixed."""
    return model if _DNS_1035.match(model) else f"model-{model}"


def canary_name(model: str) -> str:
    """The Deployment of a canary: its new version beside the stable one, behind the same
    Service (its pods carry every label the Service selects)."""
    return f"{serving_name(model)}-canary"


def serving_url(namespace: str, model: str) -> str:
    """Where the model answers inside the cluster."""
    return f"http://{serving_name(model)}.{namespace}.svc:{SERVE_PORT}"


def serving_labels(pipeline: TrainingPipeline) -> dict[str, str]:
    """What selects the model's serving pods, whatever version they serve."""
    return {
        LABEL_PIPELINE: pipeline.name,
        LABEL_MODEL: pipeline.spec.model.name,
        **component_labels("serving"),
    }


def serve_args(version: Mapping[str, Any]) -> ServeArgs:
    """How a pod serves a ModelVersion: its files and digests as the registry records them."""
    spec = version["spec"]
    artifact = spec["artifact"]
    onnx = artifact.get("onnx") or {}
    return ServeArgs(
        model=spec["model"],
        version=int(spec["version"]),
        artifact_uri=artifact["uri"],
        artifact_digest=artifact["digest"],
        onnx_uri=onnx.get("uri"),
        onnx_digest=onnx.get("digest"),
        card_uri=artifact.get("cardUri"),
    )


def shadowed(args: ServeArgs, candidate: Mapping[str, Any], share: float) -> ServeArgs:
    """`args` with a candidate version shadowing the served one, by the registry's record."""
    spec = candidate["spec"]
    artifact = spec["artifact"]
    onnx = artifact.get("onnx") or {}
    return replace(
        args,
        shadow_version=int(spec["version"]),
        shadow_artifact_uri=artifact["uri"],
        shadow_artifact_digest=artifact["digest"],
        shadow_onnx_uri=onnx.get("uri"),
        shadow_onnx_digest=onnx.get("digest"),
        shadow_share=share,
    )


def spec_hash_of(obj: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(obj.get("spec"), sort_keys=True).encode()).hexdigest()[:16]


def _metadata(pipeline: TrainingPipeline, name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    owner = {
        "apiVersion": pipeline.api_version,
        "kind": pipeline.kind,
        "metadata": pipeline.metadata,
    }
    return {
        "name": name,
        "namespace": pipeline.namespace,
        "labels": dict(labels),
        "ownerReferences": [owner_reference(owner)],
    }


def _hashed(obj: dict[str, Any]) -> dict[str, Any]:
    obj["metadata"]["annotations"] = {
        **obj["metadata"].get("annotations", {}),
        SPEC_HASH: spec_hash_of(obj),
    }
    return obj


def _http_probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": SERVE_PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def build_serving_deployment(
    pipeline: TrainingPipeline,
    version: Mapping[str, Any],
    settings: JobSettings,
    *,
    replicas: int | None,
    canary: bool = False,
    shadow: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The Deployment serving `version` (a ModelVersion body) with `replicas` pods; None leaves
    the count to the autoscaler. A `canary` one is named `<model>-canary` and selects only its
    own pods (LABEL_TRACK); the stable one's selector, immutable once created, also matches
    them — its ReplicaSets select by pod-template-hash, so neither adopts the other's pods.
    With `shadow` (a candidate's ModelVersion body) the pods also load the candidate and have
    it predict a copy of the requests (spec.serving.rollout.shadowShare of them)."""
    serving = pipeline.spec.serving
    labels = serving_labels(pipeline)
    if canary:
        labels[LABEL_TRACK] = "canary"
    name = version["metadata"]["name"]
    args = serve_args(version)
    if shadow is not None:
        args = shadowed(args, shadow, serving.rollout.shadow_share)
    container = build_container(
        args.to_argv(),
        settings,
        resources=serving.resources.to_wire() if serving.resources else None,
        env=_log_env(serving),
        volumes={"cache": CACHE_DIR},
    )
    container["env"] += [
        {"name": ENV_POD_NAME, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": ENV_POD_NAMESPACE, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    container.update(
        ports=[{"name": SERVE_PORT_NAME, "containerPort": SERVE_PORT, "protocol": "TCP"}],
        startupProbe=_http_probe(LIVE_PATH, 2, _STARTUP_SECONDS // 2),
        livenessProbe=_http_probe(LIVE_PATH, 10, 3),
        readinessProbe=_http_probe(READY_PATH, 2, 2),
    )
    spec: dict[str, Any] = {
        "selector": {"matchLabels": dict(labels)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        },
        "progressDeadlineSeconds": serving.progress_deadline_seconds,
        "revisionHistoryLimit": 5,
        "template": {
            "metadata": {
                "labels": {**labels, LABEL_VERSION: name},
                "annotations": {
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(SERVE_PORT),
                    "prometheus.io/path": METRICS_PATH,
                },
            },
            "spec": {
                **workload_pod_spec([container]),
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
            },
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    model = pipeline.spec.model.name
    metadata = _metadata(pipeline, canary_name(model) if canary else serving_name(model), labels)
    metadata["annotations"] = {LABEL_VERSION: name}
    return _hashed(
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec}
    )


def _log_env(serving: Serving) -> dict[str, str]:
    """How the pods write the prediction and feedback logs (spec.serving.log*)."""
    return {
        ENV_LOG_PREDICTIONS: "true" if serving.log_predictions else "false",
        ENV_LOG_SAMPLE_RATIO: repr(serving.log_sample_ratio),
        ENV_LOG_FLUSH_SECONDS: repr(serving.log_flush_seconds),
        ENV_LOG_BATCH_RECORDS: str(serving.log_batch_records),
        ENV_LOG_BUFFER_RECORDS: str(serving.log_buffer_records),
    }


def build_serving_service(pipeline: TrainingPipeline) -> dict[str, Any]:
    """The model's Service: every ready serving pod, whichever version it serves."""
    labels = serving_labels(pipeline)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(pipeline, serving_name(pipeline.spec.model.name), labels),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(labels),
            "ports": [
                {
                    "name": SERVE_PORT_NAME,
                    "port": SERVE_PORT,
                    "targetPort": SERVE_PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }
    return _hashed(service)


def build_autoscaler(pipeline: TrainingPipeline) -> dict[str, Any] | None:
    """The model's HorizontalPodAutoscaler when spec.serving sets minReplicas and maxReplicas."""
    serving = pipeline.spec.serving
    if serving.min_replicas is None or serving.max_replicas is None:
        return None
    name = serving_name(pipeline.spec.model.name)
    autoscaler = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(pipeline, name, serving_labels(pipeline)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": serving.min_replicas,
            "maxReplicas": serving.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": serving.target_cpu_utilization,
                        },
                    },
                }
            ],
        },
    }
    return _hashed(autoscaler)
