"""Benchmark: the continuous-delivery loop, from a bad live metric to a new version serving.

    .venv/bin/python bench/loop.py [--repetitions 5] [--timeout 300]

Starts the sandbox with real Prometheus and Alertmanager (scrape and evaluation every 5 s or
--prometheus-interval,
Alertmanager's group wait 1 s, the rules of manifests/monitoring/rules.yaml with their `for`
set to 0 s), applies the iris example and waits for its first version to serve. Then, each
repetition, sends 150 labelled predictions whose inputs are scaled away from everything the
served version was trained on (`cli/loop.shifted_iris`), and times every step until the next
version answers (`cli/loop.follow_retrain`, polling every 0.1 s):

  detection     the operator's /metrics shows the served version's drift over the rule's
                threshold  ->  the RetrainPolicy records its decision (alert received)
  run start     decision  ->  the run trains (the features refreshed with the labelled logs first)
  training      the training Job, start to success
  registration  success  ->  the ModelVersion exists
  rollout       registered  ->  the serving Deployment answers with the new version

and, for the alert path, what Prometheus and Alertmanager themselves take in the same run:
the bad metric -> Prometheus reports the alert firing -> Alertmanager holds it, plus its group
wait before it notifies. The operator's share is the rest of the detection. The pipeline's
beatProductionBy gate is lifted: each repetition's model serves, whatever the last one scored.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from conveyor.cli.loop import LoopTimes, follow_retrain, iris_loop, send_labelled, shifted_iris
from conveyor.cli.resources import apply_documents, load_documents
from conveyor.clients.kube import Kube
from conveyor.sandbox.monitoring import GROUP_WAIT
from conveyor.sandbox.stack import PROJECT_ROOT, Sandbox, SandboxConfig

SCALES = (1.8, 0.5, 2.4, 0.3, 1.5, 0.7, 2.1, 0.4)
"""Each repetition's shift: away from the inputs of every version before it."""
GROUP_WAIT_SECONDS = float(GROUP_WAIT.rstrip("s"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=300.0, help="per repetition")
    parser.add_argument(
        "--prometheus-interval", default="5s", help="scrape and evaluation interval (5s)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-loop-") as state:
        config = SandboxConfig(
            state_dir=Path(state),
            monitoring=True,
            monitor_interval_seconds=1.0,
            prometheus_interval=args.prometheus_interval,
        )
        with Sandbox(config) as sandbox:
            if sandbox.monitoring is None:
                print("Prometheus and Alertmanager are not installed; this benchmark needs them.")
                return 1
            results = run(sandbox, args.repetitions, args.timeout)
    report(results)
    return 0 if len(results) == args.repetitions else 1


def run(sandbox: Sandbox, repetitions: int, timeout: float) -> list[LoopTimes]:
    client = Kube.from_kubeconfig(str(sandbox.kubeconfig))
    try:
        documents = [d for _, d in load_documents([str(PROJECT_ROOT / "examples" / "iris")])]
        for document in documents:
            if document["kind"] == "RetrainPolicy":  # every repetition retrains
                document["spec"].update(cooldownSeconds=0, maxRunsPerDay=None)
            if document["kind"] == "TrainingPipeline":  # it times the loop, not the model:
                document["spec"]["gates"]["beatProductionBy"] = None  # each new one serves
        apply_documents(client, documents, "default")
        version = wait_for_serving(client, timeout)
        print(f"{version} serves; {repetitions} repetitions follow", flush=True)
        loop = iris_loop(client, "default", sandbox)
        results = []
        for repetition in range(repetitions):
            scale = SCALES[repetition % len(SCALES)]
            print(f"\nrepetition {repetition + 1}: inputs x{scale} on {version}", flush=True)
            started = time.monotonic()
            traffic = shifted_iris(scale, 1_000_000 + 1000 * repetition)
            send_labelled(client, "default", "iris-classifier", traffic)
            times = follow_retrain(
                loop, version, started, timeout=timeout, say=lambda line: print("  " + line)
            )
            if times.serving is None:
                print(f"  no new version within {timeout:.0f} s; stopping", flush=True)
                break
            results.append(times)
            version = times.new_version
    finally:
        client.close()
    return results


def wait_for_serving(client: Kube, timeout: float) -> str:
    from conveyor.resources.kinds import TRAINING_PIPELINES

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pipeline = client.get(TRAINING_PIPELINES, "default", "iris") or {}
        version = ((pipeline.get("status") or {}).get("serving") or {}).get("version")
        if version:
            return str(version)
        time.sleep(0.5)
    raise SystemExit(f"the iris model did not serve within {timeout:.0f} s")


def report(results: list[LoopTimes]) -> None:
    if not results:
        print("no repetition completed")
        return
    rows = {name: [t.phases()[name] for t in results] for name in results[0].phases()}
    rows["all but training"] = [
        sum(v for k, v in t.phases().items() if k != "training" and v is not None) for t in results
    ]
    rows["bad metric -> serving"] = [_span(t.bad_metric, t.serving) for t in results]
    prometheus = [_span(t.bad_metric, t.alert_received) for t in results]
    rows["  Prometheus + Alertmanager"] = [
        None if p is None else p + GROUP_WAIT_SECONDS for p in prometheus
    ]
    rows["  the operator's share"] = [
        None if d is None or p is None else d - p
        for d, p in zip(rows["detection"], rows["  Prometheus + Alertmanager"], strict=True)
    ]
    rows["the operator's own time"] = [
        None if share is None or rest is None else share + rest - (detection or 0)
        for share, rest, detection in zip(
            rows["  the operator's share"], rows["all but training"], rows["detection"], strict=True
        )
    ]
    print(f"\n{len(results)} repetitions; seconds (median, max); each repetition:")
    for name, values in rows.items():
        known = [v for v in values if v is not None]
        cells = " ".join(f"{v:5.1f}" if v is not None else "    -" for v in values)
        summary = f"{statistics.median(known):6.1f} {max(known):6.1f}" if known else "     -      -"
        print(f"  {name:<28} {summary}   [{cells}]")
    print(
        "\nThe operator's own time: all but training, less what Prometheus and Alertmanager "
        "take (its share of the detection, run start, registration, rollout).\nTargets: all "
        "but training under 10 s; the operator's share of the alert path under 3 s."
    )


def _span(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start


if __name__ == "__main__":
    sys.exit(main())
