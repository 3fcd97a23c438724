"""What the Conveyor bucket shows after a fault: every snapshot and run that is published (its
manifest.json or result.json, written last) is whole, and what is not published is counted.

Read straight from the S3 server, past the fault proxy."""

from __future__ import annotations

import hashlib
import json
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from conveyor.clients.s3 import split_uri
from conveyor.contracts.manifest import SnapshotManifest
from conveyor.contracts.results import RunResult
from conveyor.sandbox.objectstore import BUCKET, s3_client
from conveyor.sandbox.stack import Sandbox


@dataclass
class BucketCheck:
    snapshots: list[str] = field(default_factory=list)
    """Published snapshot ids (a manifest.json)."""
    runs: list[str] = field(default_factory=list)
    """Published run ids (a result.json)."""
    unpublished: list[str] = field(default_factory=list)
    """Prefixes with objects but no manifest or result: never read by anyone."""
    problems: list[str] = field(default_factory=list)
    """What a published snapshot or run lacks or gets wrong."""

    def describe(self) -> str:
        return (
            f"{len(self.snapshots)} snapshot(s) and {len(self.runs)} run(s) published, "
            f"all whole; {len(self.unpublished)} unpublished prefix(es)"
        )


def check_bucket(sandbox: Sandbox, namespace: str) -> BucketCheck:
    """Every snapshot and run of `namespace` in the bucket, checked against its manifest."""
    store = sandbox.object_store
    check = BucketCheck()
    with closing(s3_client(store.endpoint, store.credentials)) as s3:
        keys = _keys(s3, f"features/{namespace}/") + _keys(s3, f"models/{namespace}/")

        def read(key: str) -> bytes:
            return bytes(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())

        present = set(keys)
        for prefix in sorted(_prefixes(keys, "/snapshots/")):
            if prefix + "manifest.json" not in present:
                check.unpublished.append(prefix)
                continue
            manifest = SnapshotManifest.from_json(json.loads(read(prefix + "manifest.json")))
            check.snapshots.append(manifest.id)
            check.problems += _snapshot_problems(prefix, manifest, present, read)
        for prefix in sorted(_prefixes(keys, "/runs/")):
            if prefix + "result.json" not in present:
                check.unpublished.append(prefix)
                continue
            result = RunResult.from_json(json.loads(read(prefix + "result.json")))
            check.runs.append(result.run)
            check.problems += _run_problems(prefix, result, read)
    return check


def _keys(s3: Any, prefix: str) -> list[str]:
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return keys


def _prefixes(keys: list[str], marker: str) -> set[str]:
    """features/<ns>/<fs>/snapshots/<id>/ or models/<ns>/<model>/runs/<run>/ of each key."""
    found = set()
    for key in keys:
        head, sep, rest = key.partition(marker)
        if sep and "/" in rest:
            found.add(head + sep + rest.split("/", 1)[0] + "/")
    return found


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _snapshot_problems(
    prefix: str, manifest: SnapshotManifest, present: set[str], read: Any
) -> list[str]:
    problems = []
    if not prefix.endswith(f"/{manifest.id}/"):
        problems.append(f"{prefix}: its manifest names snapshot {manifest.id}")
    for part in manifest.data:
        if part.key not in present:
            problems.append(f"{prefix}: data part {part.key} is missing")
    if not manifest.data:
        problems.append(f"{prefix}: the manifest lists no data")
    _, transforms = split_uri(manifest.transforms)
    if transforms not in present:
        problems.append(f"{prefix}: {transforms} is missing")
    elif _digest(read(transforms)) != manifest.transforms_digest:
        problems.append(f"{prefix}: {transforms} does not match the manifest's digest")
    _, profile = split_uri(manifest.profile)
    if profile not in present:
        problems.append(f"{prefix}: {profile} is missing")
    return problems


def _run_problems(prefix: str, result: RunResult, read: Any) -> list[str]:
    artifact = result.artifact
    bucket, key = split_uri(artifact.uri)
    if bucket != BUCKET:
        return [f"{prefix}: the artifact is in bucket {bucket}"]
    try:
        data = read(key)
    except Exception as error:
        return [f"{prefix}: the artifact {key} cannot be read: {error}"]
    if _digest(data) != artifact.digest:
        return [f"{prefix}: the artifact {key} does not match its digest {artifact.digest}"]
    return []
