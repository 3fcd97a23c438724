"""Run overhead in the sandbox, and the examples end to end.

Measures, with watches on a real sandbox (API emulator, node agent, S3, operator process):
  trigger → Job started      from writing conveyor.dev/run-requested to the Job's ADDED event
  Job finished → registered  from the Job's Complete condition to the ModelVersion's ADDED event
and the wall time of the iris and diabetes examples from `apply` to a registered version.
Prints figures; asserts nothing. Usage: python bench/runs.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import kubernetes
import yaml
from kubernetes import watch
from kubernetes.client import BatchV1Api, CustomObjectsApi

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

from conveyor.api.v1alpha1 import GROUP, VERSION  # noqa: E402
from conveyor.sandbox.stack import Sandbox, SandboxConfig  # noqa: E402

NAMESPACE = "default"


class Recorder:
    """Local receive times of watch events: Job added, Job complete, ModelVersion added."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.job_added: dict[str, float] = {}
        self.job_done: dict[str, float] = {}
        self.version_added: dict[str, tuple[float, str]] = {}
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._jobs, daemon=True),
            threading.Thread(target=self._versions, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _jobs(self) -> None:
        stream = watch.Watch().stream(
            BatchV1Api(self.client).list_namespaced_job,
            NAMESPACE,
            label_selector="conveyor.dev/run",
            timeout_seconds=3600,
        )
        for event in stream:
            now = time.monotonic()
            job = event["object"]
            run = job.metadata.labels["conveyor.dev/run"]
            self.job_added.setdefault(run, now)
            conditions = (job.status.conditions or []) if job.status else []
            complete = [c for c in conditions if c.type == "Complete" and c.status == "True"]
            if complete:
                self.job_done.setdefault(run, now)
            if self._stop.is_set():
                return

    def _versions(self) -> None:
        api = CustomObjectsApi(self.client)
        stream = watch.Watch().stream(
            api.list_namespaced_custom_object,
            GROUP,
            VERSION,
            NAMESPACE,
            "modelversions",
            timeout_seconds=3600,
        )
        for event in stream:
            body = event["object"]
            run = body["metadata"]["labels"]["conveyor.dev/run"]
            self.version_added.setdefault(run, (time.monotonic(), body["metadata"]["name"]))
            if self._stop.is_set():
                return

    def wait_version(self, run: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if run in self.version_added:
                return self.version_added[run][1]
            time.sleep(0.05)
        raise TimeoutError(f"run {run} registered no version within {timeout}s")


def _apply(api: CustomObjectsApi, example: str) -> None:
    for path in sorted((ROOT / "examples" / example).glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        plural = {
            "FeatureSet": "featuresets",
            "TrainingPipeline": "trainingpipelines",
            "RetrainPolicy": "retrainpolicies",
        }[body["kind"]]
        if body["kind"] == "TrainingPipeline":
            body["spec"].setdefault("runs", {})["runOnSpecChange"] = True
        api.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, body)


def _newest_run(api: CustomObjectsApi, pipeline: str, after: set[str]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = api.get_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "trainingpipelines", pipeline
        )
        ids = [run["id"] for run in (body.get("status") or {}).get("runs", [])]
        fresh = [run for run in ids if run not in after]
        if fresh:
            return fresh[0]
        time.sleep(0.02)
    raise TimeoutError(f"no new run of {pipeline}")


def _runs_of(api: CustomObjectsApi, pipeline: str) -> set[str]:
    body = api.get_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "trainingpipelines", pipeline
    )
    return {run["id"] for run in (body.get("status") or {}).get("runs", [])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="manual runs to time")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as state,
        Sandbox(SandboxConfig(state_dir=Path(state), monitoring=False)) as sandbox,
        kubernetes.config.new_client_from_config(config_file=str(sandbox.kubeconfig)) as c,
    ):
        api = CustomObjectsApi(c)
        recorder = Recorder(c)
        wall: dict[str, float] = {}
        for example in ("iris", "diabetes"):
            started = time.monotonic()
            _apply(api, example)
            run = _newest_run(api, example, set())
            try:
                recorder.wait_version(run)
            except TimeoutError:
                body = api.get_namespaced_custom_object(
                    GROUP, VERSION, NAMESPACE, "trainingpipelines", example
                )
                print(body.get("status"), file=sys.stderr)
                print((sandbox.log_dir / "operator.log").read_text()[-3000:], file=sys.stderr)
                raise
            wall[example] = time.monotonic() - started
        starts, registrations = [], []
        for _ in range(args.runs):
            before = _runs_of(api, "iris")
            time.sleep(0.5)
            asked = time.monotonic()
            api.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                NAMESPACE,
                "trainingpipelines",
                "iris",
                {"metadata": {"annotations": {"conveyor.dev/run-requested": str(time.time())}}},
            )
            run = _newest_run(api, "iris", before)
            recorder.wait_version(run)
            starts.append(recorder.job_added[run] - asked)
            registrations.append(recorder.version_added[run][0] - recorder.job_done[run])

    def line(name: str, values: list[float]) -> str:
        return (
            f"  {name:<28} median {statistics.median(values):6.3f} s   "
            f"max {max(values):6.3f} s   (n={len(values)})"
        )

    print("Run overhead in the sandbox (target: under 2 s each)")
    print(line("trigger → Job started", starts))
    print(line("Job finished → registered", registrations))
    print("Examples end to end (apply → ModelVersion registered, materialization included)")
    for example, seconds in wall.items():
        print(f"  {example:<28} {seconds:6.1f} s")


if __name__ == "__main__":
    main()
