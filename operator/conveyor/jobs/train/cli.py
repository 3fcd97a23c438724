"""`conveyor train`: the Job program that trains, evaluates and stores one model version.

Configuration comes only from arguments and the environment (the operator builds the Job from
`conveyor.contracts.invocations.TrainArgs`): CONVEYOR_PIPELINE (the TrainingPipeline object as
JSON), CONVEYOR_FEATURESET (the FeatureSet object as JSON), CONVEYOR_IMAGE, and the S3 settings
(CONVEYOR_S3_ENDPOINT, CONVEYOR_S3_REGION, CONVEYOR_S3_BUCKET, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY). The last line on stdout is one JSON object — `{"ok": true, "result":
{...}}` (the run's `RunResult`) or `{"ok": false, "reason": "...", "message": "...",
"retryable": ...}` — also written to `--output-json` and, in a pod, to its termination message,
where the operator reads it. The exit code tells the outcome (see errors.py); a model that fails
its gates is a successful run with `"passed": false`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ...contracts.invocations import TrainArgs
from ..common import run_program

__all__ = ["add_commands", "main", "run"]

# What a termination message too long for Kubernetes keeps of a result (the first 5 rejection
# reasons, each cut to 200 characters).
_TERMINATION_KEYS = {
    "result": (
        "run",
        "snapshot",
        "metric",
        "score",
        "passed",
        "artifact",
        "phase",
        "index",
        "rejection_reasons",
    )
}


def add_commands(commands: Any) -> None:
    """Register `train` on the `conveyor` command's subparsers."""
    parser = commands.add_parser(
        "train",
        help="train a model version (runs as a Job; configured by the operator)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    TrainArgs.add_arguments(parser)
    parser.set_defaults(func=run, reported_exit=True)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run without the `conveyor` command around it (tests, `python -m` wrappers)."""
    parser = argparse.ArgumentParser(prog="conveyor train")
    TrainArgs.add_arguments(parser)
    return run(parser.parse_args(argv), env=env)


def run(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    invocation = TrainArgs.from_namespace(args)
    environment = os.environ if env is None else env

    def body() -> dict[str, Any]:
        from .settings import TrainSettings

        settings = TrainSettings.from_invocation(environment, invocation)
        from .validate import plan_run  # scikit-learn loads once the arguments are valid

        plan = plan_run(settings.spec, settings.featureset, settings.featureset_spec)
        from .program import train  # the rest (skops, plots) only for a spec that can train

        return train(settings, plan)

    return run_program(
        body,
        output_json=invocation.output_json,
        keep=_TERMINATION_KEYS,
        activity="Training",
        env=environment,
    )
