"""`conveyor sandbox up` and `conveyor demo`."""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..clients.kube import Kube
from ..errors import ConveyorError
from ..resources.kinds import FEATURESETS, MODEL_VERSIONS, TRAINING_PIPELINES
from .resources import apply_documents, load_documents

if TYPE_CHECKING:
    from ..sandbox.stack import Sandbox, SandboxConfig

__all__ = ["add_commands"]


def add_commands(commands: Any) -> None:
    sandbox = commands.add_parser("sandbox", help="a local stand-in for a cluster (development)")
    verbs = sandbox.add_subparsers(dest="verb", required=True, metavar="VERB")
    up = verbs.add_parser("up", help="start the sandbox in the foreground; Ctrl-C stops it")
    _add_sandbox_options(up)
    up.set_defaults(func=_up)

    demo = commands.add_parser(
        "demo", help="start the sandbox, apply the iris example and show its status"
    )
    _add_sandbox_options(demo)
    demo.add_argument("--example", default="iris", help="directory under examples/")
    demo.add_argument("--timeout", type=float, default=120.0)
    demo.add_argument("--keep", action="store_true", help="keep the sandbox up until Ctrl-C")
    demo.set_defaults(func=_demo)


def _add_sandbox_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, default=Path(".sandbox"))
    parser.add_argument("--image", help="the image the node agent runs (default conveyor:0.1.0)")
    parser.add_argument("--s3", choices=["auto", "minio", "moto"], default="auto")
    parser.add_argument(
        "--no-monitoring", action="store_true", help="do not start Prometheus and Alertmanager"
    )


def _stack() -> ModuleType:
    """The sandbox, imported only here: its emulator and S3 server are an extra that `operator`
    never needs and the image does not have."""
    try:
        from ..sandbox import stack
    except ModuleNotFoundError as error:
        raise ConveyorError(
            f"the sandbox needs {error.name}, which this installation lacks: "
            "pip install 'conveyor[sandbox]' (make demo and make test install it)"
        ) from None
    return stack


def _config(args: argparse.Namespace) -> SandboxConfig:
    config = _stack().SandboxConfig(
        state_dir=args.state_dir, s3_backend=args.s3, monitoring=not args.no_monitoring
    )
    if args.image:
        config.image = args.image
    return config


def _print_table(sandbox: Sandbox) -> None:
    rows = sandbox.describe()
    width = max(len(name) for name, _ in rows)
    for name, where in rows:
        print(f"  {name:<{width}}  {where}")
    for notice in sandbox.notices:
        print(f"  note: {notice}")


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


def _up(args: argparse.Namespace) -> int:
    config = _config(args)
    print("Starting the Conveyor sandbox ...", flush=True)
    with _stack().Sandbox(config) as sandbox:
        print("The sandbox is up:")
        _print_table(sandbox)
        print(f"Try: kubectl --kubeconfig {sandbox.kubeconfig} apply -f examples/iris/")
        print("Press Ctrl-C to stop.", flush=True)
        _wait_for_signal()
        print("Stopping the sandbox ...", flush=True)
    print("Stopped.")
    return 0


def _demo(args: argparse.Namespace) -> int:
    stack = _stack()
    example = stack.PROJECT_ROOT / "examples" / args.example
    if not example.is_dir():
        raise ConveyorError(f"no example named {args.example!r} in {example.parent}")
    print("Starting the Conveyor sandbox ...", flush=True)
    with stack.Sandbox(_config(args)) as sandbox:
        _print_table(sandbox)
        print(f"\n$ conveyor apply -f examples/{args.example}/")
        documents = [document for _, document in load_documents([str(example)])]
        client = Kube.from_kubeconfig(str(sandbox.kubeconfig))
        try:
            for line in apply_documents(client, documents, "default"):
                print(line)
            print("\nFollowing the loop: materialize → train → register → promote", flush=True)
            done = _follow_loop(client, args.timeout)
        finally:
            client.close()
        _show_status(sandbox, documents)
        if not done:
            print(
                f"\nThe loop did not finish within {args.timeout:.0f}s; "
                f"see {sandbox.log_dir / 'operator.log'}"
            )
        if args.keep:
            print("\nThe sandbox stays up; press Ctrl-C to stop.", flush=True)
            _wait_for_signal()
    return 0 if done else 1


def _milestones(client: Kube) -> list[str]:
    """What has happened so far, in words, in the order of the loop."""
    said = []
    for item in client.list(FEATURESETS, "default"):
        latest = (item.get("status") or {}).get("latestSnapshot")
        if latest:
            said.append(
                f"FeatureSet {item['metadata']['name']}: snapshot {latest['id']} "
                f"({latest['rows']} rows)"
            )
    for item in client.list(TRAINING_PIPELINES, "default"):
        for run in reversed((item.get("status") or {}).get("runs", [])):
            said.append(
                f"TrainingPipeline {item['metadata']['name']}: run {run['id']} {run['phase']}"
            )
    for item in client.list(MODEL_VERSIONS, "default"):
        stage = (item.get("status") or {}).get("stage")
        if stage:
            said.append(f"ModelVersion {item['metadata']['name']}: {stage}")
    return said


def _follow_loop(client: Kube, timeout: float) -> bool:
    """Print each milestone once; True when a version is in Production."""
    deadline = time.monotonic() + timeout
    printed: set[str] = set()
    while time.monotonic() < deadline:
        for line in _milestones(client):
            if line not in printed:
                printed.add(line)
                print(f"  {line}", flush=True)
        if any(line.endswith(": Production") for line in printed):
            return True
        if any(line.endswith((" Failed", " Rejected")) for line in printed):
            return False
        time.sleep(0.5)
    return False


def _show_status(sandbox: Sandbox, documents: list[dict[str, Any]]) -> None:
    kubectl = shutil.which("kubectl")
    commands = []
    if kubectl is not None:
        commands.append(
            (
                "kubectl get conveyor -o wide",
                [kubectl, "--kubeconfig", str(sandbox.kubeconfig), "get", "conveyor", "-o", "wide"],
            )
        )
    conveyor = [sys.executable, "-m", "conveyor", "--kubeconfig", str(sandbox.kubeconfig)]
    for document in documents:
        name = document["metadata"]["name"]
        if document["kind"] == "FeatureSet":
            commands.append(
                (f"conveyor features describe {name}", [*conveyor, "features", "describe", name])
            )
        if document["kind"] == "TrainingPipeline":
            model = document["spec"]["model"]["name"]
            commands.append((f"conveyor models {model}", [*conveyor, "models", model]))
    for title, command in commands:
        print(f"\n$ {title}", flush=True)
        subprocess.run(command, check=False)
