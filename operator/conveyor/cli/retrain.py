"""`conveyor retrain <policy> --reason "..."`: a manual trigger of a RetrainPolicy, guarded like
any other (cooldown, an active run, new data, suspend); prints the decision it got."""

from __future__ import annotations

import argparse
import getpass
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..api.v1alpha1 import GROUP
from ..contracts.labels import RETRAIN_REQUEST
from ..errors import ConveyorError
from ..resources.kinds import RETRAIN_POLICIES
from .kubeconfig import kube

__all__ = ["add_commands", "manual_decision"]


def add_commands(commands: Any) -> None:
    retrain = commands.add_parser(
        "retrain", help="trigger a RetrainPolicy by hand (its guards still apply)"
    )
    retrain.add_argument("policy")
    retrain.add_argument("--reason", default="", help="why; recorded with the decision and run")
    retrain.add_argument("-n", "--namespace", default="default")
    retrain.add_argument(
        "--wait",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="how long to wait for the operator's decision (default 15; 0: only request it)",
    )
    retrain.set_defaults(func=_retrain)


def _retrain(args: argparse.Namespace) -> int:
    client = kube(args.kubeconfig)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    stamp = f"{now} by {getpass.getuser()}" + (f": {args.reason}" if args.reason else "")
    patch = {"metadata": {"annotations": {RETRAIN_REQUEST: stamp}}}
    if client.patch(RETRAIN_POLICIES, args.namespace, args.policy, patch) is None:
        raise ConveyorError(
            f'RetrainPolicy "{args.policy}" not found in namespace "{args.namespace}"'
        )
    name = f"retrainpolicy.{GROUP}/{args.policy}"
    deadline = time.monotonic() + args.wait
    while True:
        body = client.get(RETRAIN_POLICIES, args.namespace, args.policy) or {}
        decision = manual_decision(body, stamp)
        if decision is not None:
            fired = bool(decision.get("fired"))
            verb = "retraining requested" if fired else f"NOT retrained ({decision['reason']})"
            print(f"{name}: {verb}: {decision.get('message', '')}")
            return 0 if fired else 1
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    print(f"{name}: retrain requested ({stamp}); the operator has not decided yet")
    return 0


def manual_decision(body: Mapping[str, Any], stamp: str) -> Mapping[str, Any] | None:
    """The operator's decision on the manual request `stamp`, or None before it decides."""
    status = body.get("status") or {}
    if status.get("lastManualRequest") != stamp:
        return None
    for decision in status.get("decisions") or []:
        if decision.get("trigger") == "manual" and stamp in decision.get("message", ""):
            return dict(decision)
    return None
