"""`conveyor features materialize|describe|report <name>`."""

from __future__ import annotations

import argparse
import json
import os
import shlex
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..api.v1alpha1 import GROUP
from ..clients.s3 import ObjectStorage, S3Settings, split_uri
from ..contracts.labels import MATERIALIZE_REQUEST
from ..contracts.layouts import SnapshotLayout
from ..errors import ConveyorError
from ..resources.kinds import FEATURESETS
from .kubeconfig import kube, resolve_kubeconfig

__all__ = ["add_commands", "storage_from_environment"]


def add_commands(commands: Any) -> None:
    features = commands.add_parser("features", help="FeatureSets: materialize, describe, report")
    verbs = features.add_subparsers(dest="verb", required=True, metavar="VERB")
    materialize = verbs.add_parser("materialize", help="request a materialization now")
    describe = verbs.add_parser("describe", help="the latest snapshot and its data profile")
    report = verbs.add_parser("report", help="save the latest snapshot's HTML report")
    report.add_argument("-o", "--output", type=Path, help="file to write (default <name>.html)")
    for parser in (materialize, describe, report):
        parser.add_argument("name")
        parser.add_argument("-n", "--namespace", default="default")
    materialize.set_defaults(func=_materialize)
    describe.set_defaults(func=_describe)
    report.set_defaults(func=_report)


def _not_found(args: argparse.Namespace) -> ConveyorError:
    return ConveyorError(f'FeatureSet "{args.name}" not found in namespace "{args.namespace}"')


def _get(args: argparse.Namespace) -> dict[str, Any]:
    body = kube(args.kubeconfig).get(FEATURESETS, args.namespace, args.name)
    if body is None:
        raise _not_found(args)
    return body


def _materialize(args: argparse.Namespace) -> int:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    patch = {"metadata": {"annotations": {MATERIALIZE_REQUEST: stamp}}}
    if kube(args.kubeconfig).patch(FEATURESETS, args.namespace, args.name, patch) is None:
        raise _not_found(args)
    print(f"featureset.{GROUP}/{args.name} materialization requested ({stamp})")
    return 0


def storage_from_environment(kubeconfig: str | None) -> ObjectStorage:
    """S3 from CONVEYOR_S3_* and AWS_* variables, else from the sandbox's env file."""
    env = dict(os.environ)
    if not env.get("CONVEYOR_S3_ENDPOINT"):
        sandbox_env = Path(resolve_kubeconfig(kubeconfig) or ".").parent / "env"
        if sandbox_env.is_file():
            for line in sandbox_env.read_text().splitlines():
                key, _, value = line.removeprefix("export ").partition("=")
                env.setdefault(key, shlex.split(value)[0] if value else "")
    return ObjectStorage(S3Settings.from_env(env))


def _latest(body: dict[str, Any]) -> dict[str, Any]:
    latest = (body.get("status") or {}).get("latestSnapshot")
    if not latest:
        ready: dict[str, Any] = next(
            (
                c
                for c in (body.get("status") or {}).get("conditions", [])
                if c.get("type") == "Ready"
            ),
            {},
        )
        raise ConveyorError(
            f"FeatureSet {body['metadata']['name']!r} has no snapshot yet "
            f"({ready.get('reason', 'not reconciled')}: {ready.get('message', '')})"
        )
    return dict(latest)


def _describe(args: argparse.Namespace) -> int:
    from ..features.profile import Profile
    from ..features.report import render_profile_table

    body = _get(args)
    latest = _latest(body)
    status = body.get("status") or {}
    print(f"FeatureSet {args.namespace}/{args.name}")
    print(
        f"  snapshot  {latest['id']}  ({latest.get('rows', 0)} rows, "
        f"created {latest.get('createdAt', '?')})"
    )
    print(f"  manifest  {latest['uri']}")
    if latest.get("reportUrl"):
        print(f"  report    {latest['reportUrl']}   (conveyor features report {args.name})")
    summary = status.get("profile") or {}
    if summary:
        print(
            f"  rejected  {summary.get('rejectedRows', 0)} rows; "
            f"max drift {_drift(summary.get('maxDriftScore'))}; "
            f"drifted {', '.join(summary.get('driftedColumns', [])) or 'none'}"
        )
    with storage_from_environment(args.kubeconfig) as storage:
        bucket, _ = split_uri(latest["uri"])
        layout = SnapshotLayout(bucket, args.namespace, args.name, latest["id"])
        profile = Profile.from_json(json.loads(storage.get_bytes(bucket, layout.profile)))
    print()
    print(render_profile_table(profile))
    return 0


def _report(args: argparse.Namespace) -> int:
    latest = _latest(_get(args))
    if not latest.get("reportUrl"):
        raise ConveyorError(f"snapshot {latest['id']} has no report")
    output = args.output or Path(f"{args.name}.html")
    with storage_from_environment(args.kubeconfig) as storage:
        bucket, key = split_uri(latest["reportUrl"])
        output.write_bytes(storage.get_bytes(bucket, key))
    print(f"wrote {output}")
    return 0


def _drift(score: float | None) -> str:
    """The largest drift score, or why there is none (a first snapshot has nothing to compare)."""
    return f"{score:.4g}" if score is not None else "- (no previous snapshot)"
