"""`conveyor materialize`: the Job program that writes a FeatureSet snapshot.

Configuration comes only from arguments and the environment (the operator builds the Job from
`conveyor.contracts.invocations.MaterializeArgs`). The last line on stdout is one JSON object —
`{"ok": true, "snapshot": {...}}` or `{"ok": false, "reason": "...", "message": "...",
"retryable": ...}` — also written to `--output-json` and, in a pod, to its termination message,
where the operator reads it. The exit code tells the outcome (see errors.py).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ...contracts.invocations import MaterializeArgs
from ..common import run_program

__all__ = ["add_commands", "main", "run"]

# What a termination message too long for Kubernetes keeps of a snapshot.
_TERMINATION_KEYS = {"snapshot": ("id", "uri", "rows", "reportUrl")}


def add_commands(commands: Any) -> None:
    """Register `materialize` on the `conveyor` command's subparsers."""
    parser = commands.add_parser(
        "materialize",
        help="write a FeatureSet snapshot (runs as a Job; configured by the operator)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    MaterializeArgs.add_arguments(parser)
    parser.set_defaults(func=run, reported_exit=True)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run without the `conveyor` command around it (tests, `python -m` wrappers)."""
    parser = argparse.ArgumentParser(prog="conveyor materialize")
    MaterializeArgs.add_arguments(parser)
    return run(parser.parse_args(argv), env=env)


def run(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    invocation = MaterializeArgs.from_namespace(args)
    environment = os.environ if env is None else env

    def body() -> dict[str, Any]:
        # Imported here: `conveyor --help` should not pay for boto3 and pyarrow.
        from .settings import JobSettings

        settings = JobSettings.from_invocation(environment, invocation)
        from .program import materialize  # heavy imports only once arguments are valid

        return materialize(settings)

    return run_program(
        body,
        output_json=invocation.output_json,
        keep=_TERMINATION_KEYS,
        activity="Materialize",
        env=environment,
    )
