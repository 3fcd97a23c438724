"""What the web page reads, and nothing else: Conveyor's objects through `clients.kube.Kube`
(get and list only) and the files they point at through `clients.s3.ObjectStorage`.

The page never takes a storage location from a request. A report or a card is read only by
following the URI a cluster object holds, and only when that URI lies where the operator
writes that object's files (`contracts.layouts`): a snapshot's report under its FeatureSet's
snapshot, a version's card and report under its own run. So a URL names a namespace and an
object, and the object decides which file, if any, is shown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..clients.kube import Kube
from ..clients.s3 import ObjectNotFound, ObjectStorage, split_uri
from ..contracts.layouts import RunLayout, SnapshotLayout
from ..errors import ConveyorError
from ..resources.kinds import FEATURESETS, MODEL_VERSIONS, TRAINING_PIPELINES, Resource

__all__ = ["Catalog", "NamespaceView", "NotFound", "Unavailable", "read_version_card"]

Body = dict[str, Any]


class NotFound(ConveyorError):
    """The object (or the file it should point at) does not exist: the page answers 404."""


class Unavailable(ConveyorError):
    """A file an object points at could not be read: the page says which and why."""


@dataclass
class NamespaceView:
    """One namespace's Conveyor objects, each list sorted by name."""

    name: str
    featuresets: list[Body] = field(default_factory=list)
    pipelines: list[Body] = field(default_factory=list)
    versions: list[Body] = field(default_factory=list)


class Catalog:
    """Read-only access to FeatureSets, TrainingPipelines, ModelVersions and their files.

    `namespace`: show that namespace only (for a user who may not list across namespaces);
    None: every namespace holding a Conveyor object.
    """

    def __init__(self, kube: Kube, storage: ObjectStorage, namespace: str | None = None) -> None:
        self.kube = kube
        self.storage = storage
        self.namespace = namespace

    # Objects -----------------------------------------------------------------------------------

    def overview(self) -> list[NamespaceView]:
        """Every namespace with a Conveyor object (or the one namespace asked for)."""
        views: dict[str, NamespaceView] = {}
        if self.namespace is not None:
            views[self.namespace] = NamespaceView(self.namespace)
        for resource, attribute in (
            (FEATURESETS, "featuresets"),
            (TRAINING_PIPELINES, "pipelines"),
            (MODEL_VERSIONS, "versions"),
        ):
            for body in _by_name(self.kube.list(resource, self.namespace)):
                where = str(body["metadata"].get("namespace", ""))
                getattr(views.setdefault(where, NamespaceView(where)), attribute).append(body)
        return [views[name] for name in sorted(views)]

    def featureset(self, namespace: str, name: str) -> Body:
        return self._get(FEATURESETS, namespace, name)

    def pipeline(self, namespace: str, name: str) -> Body:
        return self._get(TRAINING_PIPELINES, namespace, name)

    def version(self, namespace: str, name: str) -> Body:
        return self._get(MODEL_VERSIONS, namespace, name)

    def pipelines_on(self, namespace: str, featureset: str) -> list[Body]:
        """The pipelines that train on the FeatureSet."""
        return [
            body
            for body in _by_name(self.kube.list(TRAINING_PIPELINES, namespace))
            if (body.get("spec") or {}).get("featureSet") == featureset
        ]

    def versions_of(self, namespace: str, pipelines: Sequence[str]) -> list[Body]:
        """The versions the pipelines registered, by model and version number."""
        wanted = set(pipelines)
        found = [
            body
            for body in self.kube.list(MODEL_VERSIONS, namespace)
            if ((body.get("spec") or {}).get("lineage") or {}).get("pipeline") in wanted
        ]
        return sorted(found, key=_version_order)

    def _get(self, resource: Resource, namespace: str, name: str) -> Body:
        if self.namespace is not None and namespace != self.namespace:
            raise NotFound(
                f"{resource.describe(namespace, name)} is outside namespace "
                f"{self.namespace}, the one this page shows"
            )
        body = self.kube.get(resource, namespace, name)
        if body is None:
            raise NotFound(f"{resource.describe(namespace, name)} does not exist")
        return body

    # Files the objects point at ----------------------------------------------------------------

    def data_report(self, featureset: Mapping[str, Any]) -> bytes:
        """The HTML data report of the FeatureSet's latest snapshot."""
        name = _describe(FEATURESETS, featureset)
        latest = (featureset.get("status") or {}).get("latestSnapshot") or {}
        if not latest.get("reportUrl"):
            raise NotFound(f"{name} has no snapshot with a data report yet")
        try:
            bucket, _ = split_uri(str(latest.get("uri", "")))
        except ValueError as error:
            raise Unavailable(
                f"{name}: the latest snapshot's URI is not usable ({error})"
            ) from None
        metadata = featureset["metadata"]
        layout = SnapshotLayout(bucket, metadata["namespace"], metadata["name"], str(latest["id"]))
        if latest["reportUrl"] != layout.uri(layout.report):
            raise Unavailable(
                f"{name}: the data report {latest['reportUrl']} is not where its snapshot's "
                f"report is written ({layout.uri(layout.report)}), so it is not shown"
            )
        return _read(self.storage, layout.uri(layout.report), f"the data report of {name}")

    def training_report(self, version: Mapping[str, Any]) -> bytes:
        """The HTML training report of a ModelVersion."""
        name = _describe(MODEL_VERSIONS, version)
        uri = ((version.get("spec") or {}).get("artifact") or {}).get("reportUri")
        if not uri:
            raise NotFound(f"{name} has no training report")
        return _read(self.storage, _in_run(version, str(uri)), f"the training report of {name}")

    def card(self, version: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The version's model card, or ({}, why it is missing): a page still shows the rest."""
        return read_version_card(self.storage, version)


def read_version_card(
    storage: ObjectStorage, version: Mapping[str, Any]
) -> tuple[dict[str, Any], str | None]:
    """A ModelVersion's model card, read only from under its own run's path, or ({}, why it
    could not be): the one way the web page and `conveyor compare` read cards."""
    name = _describe(MODEL_VERSIONS, version)
    uri = ((version.get("spec") or {}).get("artifact") or {}).get("cardUri")
    if not uri:
        return {}, f"{name} has no model card (spec.artifact.cardUri is empty)"
    try:
        card = json.loads(_read(storage, _in_run(version, str(uri)), f"the card of {name}"))
    except (ConveyorError, ValueError) as error:  # unreadable, or not JSON
        return {}, str(error)
    return (card, None) if isinstance(card, dict) else ({}, f"the card of {name} is no object")


def _in_run(version: Mapping[str, Any], uri: str) -> str:
    """`uri`, when it lies under the version's own run; otherwise refused."""
    spec = version.get("spec") or {}
    name = _describe(MODEL_VERSIONS, version)
    try:
        bucket, _ = split_uri(uri)
    except ValueError as error:
        raise Unavailable(f"{name}: {error}") from None
    run = str((spec.get("lineage") or {}).get("run", ""))
    layout = RunLayout(bucket, version["metadata"]["namespace"], str(spec.get("model")), run)
    if not run or not layout.holds(uri):
        raise Unavailable(
            f"{name}: {uri} is not under the path of its run "
            f"({layout.uri(layout.prefix)}), so it is not shown"
        )
    return uri


def _read(storage: ObjectStorage, uri: str, what: str) -> bytes:
    bucket, key = split_uri(uri)
    try:
        return storage.get_bytes(bucket, key)
    except ObjectNotFound:
        raise NotFound(f"{what} ({uri}) is not in the object store") from None
    except ConveyorError as error:
        raise Unavailable(f"Could not read {what} ({uri}): {error}") from None


def _by_name(items: list[Body]) -> list[Body]:
    return sorted(items, key=lambda body: str(body["metadata"]["name"]))


def _version_order(body: Mapping[str, Any]) -> tuple[str, int]:
    spec = body.get("spec") or {}
    version = spec.get("version")
    return str(spec.get("model", "")), version if isinstance(version, int) else 0


def _describe(resource: Resource, body: Mapping[str, Any]) -> str:
    metadata = body.get("metadata") or {}
    return resource.describe(metadata.get("namespace"), str(metadata.get("name", "")))
