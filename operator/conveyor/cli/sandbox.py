"""`conveyor sandbox up|status` and `conveyor demo`."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..clients.kube import Kube
from ..errors import ConveyorError
from ..resources.kinds import FEATURESETS, MODEL_VERSIONS, RETRAIN_POLICIES, TRAINING_PIPELINES
from .loop import follow_retrain, iris_loop, send_labelled, shifted_iris, versions_and_triggers
from .resources import apply_documents, load_documents
from .serving import feedback, predict, read_rows, served_at

if TYPE_CHECKING:
    from ..sandbox.stack import Sandbox, SandboxConfig
    from ..sandbox.status import SandboxStatus

__all__ = ["add_commands"]

DEMO_FIRST_ID = 100_000
"""Entity keys of the demo's requests: apart from the dataset's, so the rows read back from
the prediction logs are new rows."""


SANDBOX_HELP = """\
A local stand-in for a cluster, for development: a Kubernetes API emulator, a node agent that runs
Jobs and Deployments of the Conveyor image as local processes, an S3 server, the operator, and
Prometheus with Alertmanager when installed.

The processes it starts (S3, the operator, Prometheus, Alertmanager) are supervised as a
Deployment's pods would be: one that exits or is killed without being stopped is reported with
its exit code or signal and the tail of its log, and restarted with the kubelet's back-off
(at once, then 10 s, doubling up to 5 min; afresh after 10 min of running).
`conveyor sandbox status`, from another terminal, shows each part: state, pid, URL, restarts and
how it last ended. The state directory (.sandbox) holds kubeconfig, env (source it for kubectl
and aws), operator.env (the operator's environment, to run it by hand), status.json and logs/.
"""


def add_commands(commands: Any) -> None:
    sandbox = commands.add_parser(
        "sandbox",
        help="a local stand-in for a cluster (development)",
        description=SANDBOX_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = sandbox.add_subparsers(dest="verb", required=True, metavar="VERB")
    up = verbs.add_parser("up", help="start the sandbox in the foreground; Ctrl-C stops it")
    _add_sandbox_options(up)
    up.add_argument(
        "--no-operator",
        action="store_true",
        help="do not start the operator: run it yourself with the state directory's operator.env",
    )
    up.set_defaults(func=_up)
    status = verbs.add_parser(
        "status", help="what the running sandbox runs: state, pid, URL, restarts, last exit"
    )
    status.add_argument("--state-dir", type=Path, default=Path(".sandbox"))
    status.add_argument("--json", action="store_true", help="print status.json as it is")
    status.set_defaults(func=_status)

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
        state_dir=args.state_dir,
        s3_backend=args.s3,
        monitoring=not args.no_monitoring,
        operator=not getattr(args, "no_operator", False),
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
    # Crashes and restarts of what the sandbox supervises are news for the person watching.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("conveyor.sandbox.supervisor").setLevel(logging.INFO)
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


def _status(args: argparse.Namespace) -> int:
    # The status module needs nothing but the standard library: this works without the extra.
    from ..sandbox.status import NoSandbox, read_status

    try:
        status = read_status(args.state_dir)
    except NoSandbox as error:
        print(error, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(status.to_json(), indent=2))
    else:
        print(_status_table(status))
    return 0


def _status_table(status: SandboxStatus) -> str:
    lines = [f"Sandbox in {status.state_dir}: pid {status.pid}, up since {status.started_at}"]
    rows = [("COMPONENT", "STATE", "PID", "RESTARTS", "URL", "LAST EXIT")]
    for part in status.components:
        last = "-"
        if part.last_exit:
            last = f"{part.last_exit} {_ago(part.last_exit_at)}"
        state = part.state
        if part.restart_at:
            state = f"{state} (restart {_until(part.restart_at)})"
        pid = str(part.pid) if part.pid else "-"
        rows.append((part.name, state, pid, str(part.restarts), part.url or "-", last))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def _seconds_from_now(stamp: str) -> float:
    return (datetime.fromisoformat(stamp) - datetime.now(UTC)).total_seconds()


def _ago(stamp: str) -> str:
    return f"({max(0, round(-_seconds_from_now(stamp)))}s ago)" if stamp else ""


def _until(stamp: str) -> str:
    return f"in {max(0, round(_seconds_from_now(stamp)))}s"


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
            if done:
                done = _wait_for_every_pipeline(client, documents, args.timeout)
        finally:
            client.close()
        _show_status(sandbox, documents)
        if done:
            _show_comparison(sandbox, documents)
        if done:
            done = _answer_a_prediction(sandbox, example, args.example)
        if done and args.example in _datasets():
            done = _show_live_quality(sandbox, example, args.example)
        if done and args.example == "iris":
            done = _show_retrain_loop(sandbox, args.timeout)
        if not done:
            print(
                f"\nThe loop did not finish within {args.timeout:.0f}s; "
                f"see {sandbox.log_dir / 'operator.log'}"
            )
        if args.keep:
            _keep_with_web_page(sandbox, documents)
        elif done:
            print("\nTo browse all of it in a web page: conveyor demo --keep (or, with the sandbox")
            print("up, conveyor ui), then open the URL it prints.")
    return 0 if done else 1


def _keep_with_web_page(sandbox: Sandbox, documents: list[dict[str, Any]]) -> None:
    """Keep the sandbox up, with `conveyor ui` serving the web page of what the demo made."""
    command = [*_conveyor(sandbox), "ui", "--namespace", "default"]
    page = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        first = page.stdout.readline().strip() if page.stdout else ""
        url = first.removeprefix("Conveyor UI: ")
        featuresets = [d["metadata"]["name"] for d in documents if d["kind"] == "FeatureSet"]
        if url.startswith("http") and featuresets:
            url = f"{url.rstrip('/')}/namespaces/default/featuresets/{featuresets[0]}"
        print(f"\nThe web page (read-only): {url or 'conveyor ui did not start'}")
        print("The sandbox stays up; press Ctrl-C to stop.", flush=True)
        _wait_for_signal()
    finally:
        page.terminate()
        page.wait(timeout=10)


def _conveyor(sandbox: Sandbox) -> list[str]:
    return [sys.executable, "-m", "conveyor", "--kubeconfig", str(sandbox.kubeconfig)]


def _pipelines(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in documents if d.get("kind") == "TrainingPipeline"]


def _wait_for_every_pipeline(client: Kube, documents: list[dict[str, Any]], timeout: float) -> bool:
    """Every pipeline of the example has registered a version (the experiments beside the
    served one), so they can be compared."""
    names = {d["metadata"]["name"] for d in _pipelines(documents)}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        trained = {
            (v["spec"].get("lineage") or {}).get("pipeline")
            for v in client.list(MODEL_VERSIONS, "default")
        }
        if names <= trained:
            return True
        time.sleep(0.5)
    print(f"  Not every pipeline registered a version: {', '.join(sorted(names - trained))}")
    return False


def _show_comparison(sandbox: Sandbox, documents: list[dict[str, Any]]) -> None:
    """The pipelines on the example's FeatureSet side by side, and the HTML report of them."""
    featuresets = [d["metadata"]["name"] for d in documents if d.get("kind") == "FeatureSet"]
    if len(_pipelines(documents)) < 2 or not featuresets:
        return
    report = sandbox.state_dir / f"compare-{featuresets[0]}.html"
    print(f"\n$ conveyor compare --featureset {featuresets[0]} --html {report}", flush=True)
    compare = ["compare", "--featureset", featuresets[0], "--html", str(report)]
    subprocess.run([*_conveyor(sandbox), *compare], check=False)


def _answer_a_prediction(sandbox: Sandbox, example: Path, name: str) -> bool:
    """The served model answers the example's request rows through its Service's URL."""
    request = example.parent / "requests" / f"{name}.json"
    if not request.is_file():
        return True
    client = Kube.from_kubeconfig(str(sandbox.kubeconfig))
    try:
        model = _model_of(example)
        rows = read_rows(request.read_text(), str(request))
        url = served_at(client, "default", model)
        print(f"\n$ conveyor predict {model} -f examples/requests/{name}.json    # {url}")
        print(json.dumps(predict(client, "default", model, rows), indent=2))
    except ConveyorError as error:
        print(f"error: {error}")
        return False
    finally:
        client.close()
    return True


def _datasets() -> list[str]:
    from ..sandbox.datasets import DATASETS

    return list(DATASETS)


def _show_live_quality(sandbox: Sandbox, example: Path, name: str) -> bool:
    """A few hundred labelled predictions, then the model's live metric as the monitor
    measured it from the prediction and feedback logs."""
    from ..sandbox.datasets import labelled_requests  # scikit-learn's datasets, when needed

    model = _model_of(example)
    # 300 requests; each row its own entity key: the FeatureSet reads the labelled logs back
    traffic = labelled_requests(name, DEMO_FIRST_ID) + labelled_requests(name, DEMO_FIRST_ID + 1000)
    client = Kube.from_kubeconfig(str(sandbox.kubeconfig))
    try:
        print(f"\n$ # {len(traffic)} predictions, then their ground truth:", flush=True)
        feedback_items = []
        for row, label in traffic:
            answer = predict(client, "default", model, [row])
            feedback_items.append({"request_id": answer["request_id"], "label": label})
        print(f"$ conveyor feedback {model} -f labels.json    # {len(feedback_items)} labels")
        print(json.dumps(feedback(client, "default", model, {"feedback": feedback_items})))
        print("# unknown: ids another pod answered; the labels are logged all the same")
        print("\nWaiting for the live-quality monitor ...", flush=True)
        measured = _wait_for_live_metrics(client, model, len(traffic), timeout=120)
    except ConveyorError as error:
        print(f"error: {error}")
        return False
    finally:
        client.close()
    print(f"\n$ conveyor models {model}", flush=True)
    subprocess.run([*_conveyor(sandbox), "models", model], check=False)
    if not measured:
        print("The monitor had not measured the labelled predictions within 120 s.")
    return measured


def _show_retrain_loop(sandbox: Sandbox, timeout: float) -> bool:
    """The inputs shift and the model's answers stop matching their labels: the monitor measures
    it, Prometheus alerts, Alertmanager calls the webhook, the RetrainPolicy refreshes the
    features with the labelled traffic and retrains, and the new version serves."""
    client = Kube.from_kubeconfig(str(sandbox.kubeconfig))
    try:
        pipeline = client.get(TRAINING_PIPELINES, "default", "iris") or {}
        serving = (pipeline.get("status") or {}).get("serving") or {}
        model = pipeline["spec"]["model"]["name"]
        monitoring = sandbox.monitoring
        if monitoring is None:
            print(
                "\nPrometheus and Alertmanager are not installed (apt-get install prometheus "
                "prometheus-alertmanager): the RetrainPolicy's drift trigger fires from the "
                "monitor's figures directly instead of through an alert.",
                flush=True,
            )
            drift = {"method": "psi", "threshold": 0.25, "minSamples": 100}
            patch = {"spec": {"checkIntervalSeconds": 1, "triggers": {"drift": drift}}}
            client.patch(RETRAIN_POLICIES, "default", "iris", patch)
        else:
            print(
                "\nPrometheus scrapes the operator and evaluates manifests/monitoring/rules.yaml; "
                "Alertmanager calls the operator's webhook with its token.",
                flush=True,
            )
        print("\n$ # The flowers now arrive measured 1.8 times larger; their labels follow:")
        started = time.monotonic()
        taken = send_labelled(client, "default", model, shifted_iris(1.8, DEMO_FIRST_ID + 2000))
        print(f"  150 predictions, {taken} labels", flush=True)
        loop = iris_loop(client, "default", sandbox)
        times = follow_retrain(
            loop, serving.get("version", ""), started, timeout=timeout, say=_indented
        )
        print(f"\n$ conveyor models {model}    # and what triggered each version")
        print(versions_and_triggers(client, "default", "iris", model))
    except ConveyorError as error:
        print(f"error: {error}")
        return False
    finally:
        client.close()
    if times.serving is None:
        print(f"No new version served within {timeout:.0f} s.")
        return False
    phases = ", ".join(f"{name} {value:.1f} s" for name, value in times.phases().items() if value)
    print(f"\nFrom the shift to {times.new_version} serving: {times.serving:.1f} s ({phases})")
    return True


def _indented(line: str) -> None:
    print(f"  {line}", flush=True)


def _model_of(example: Path) -> str:
    """The model the example serves: its pipeline named like the example (iris beside the
    iris-logistic experiment), else its first."""
    pipelines = _pipelines([d for _, d in load_documents([str(example)])])
    named = [p for p in pipelines if p["metadata"]["name"] == example.name]
    return str((named or pipelines)[0]["spec"]["model"]["name"])


def _wait_for_live_metrics(client: Kube, model: str, labelled: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for version in client.list(MODEL_VERSIONS, "default"):
            live = (version.get("status") or {}).get("liveMetrics") or {}
            if version["spec"]["model"] == model and live.get("labelledSamples", 0) >= labelled:
                return True
        time.sleep(1)
    return False


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
        serving = (item.get("status") or {}).get("serving") or {}
        if serving.get("rollingOut"):
            said.append(f"Serving: rolling out {serving['rollingOut']}")
        if serving.get("version"):
            said.append(f"Serving: {serving['version']} answers at {serving.get('url')}")
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
    conveyor = _conveyor(sandbox)
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
