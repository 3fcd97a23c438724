"""`conveyor materialize`: the Job program that writes a FeatureSet snapshot.

Configuration comes only from arguments and the environment (the operator builds the Job). The
last line on stdout is one JSON object — `{"ok": true, "snapshot": {...}}` or
`{"ok": false, "reason": "...", "message": "..."}` — also written to `--output-json` and, in a
pod, to /dev/termination-log, where the operator reads it. The exit code tells the outcome
(see errors.py).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..common import TERMINATION_LOG, run_program

__all__ = ["TERMINATION_LOG", "add_arguments", "add_commands", "main", "run"]

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
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--featureset-json-env",
        required=True,
        metavar="VAR",
        help="environment variable holding the whole FeatureSet object as JSON",
    )
    parser.add_argument("--phase", choices=["all", "partition", "combine"], default="all")
    parser.add_argument(
        "--partitions", type=int, help="partitions of the Indexed Job (default: parallelism)"
    )
    parser.add_argument(
        "--index", type=int, help="this partition's index (default: $JOB_COMPLETION_INDEX)"
    )
    parser.add_argument(
        "--previous-snapshot", metavar="ID", help="snapshot whose profile drift is measured against"
    )
    parser.add_argument("--output-json", type=Path, metavar="PATH", help="also write the result")


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run without the `conveyor` command around it (tests, `python -m` wrappers)."""
    parser = argparse.ArgumentParser(prog="conveyor materialize")
    add_arguments(parser)
    return run(parser.parse_args(argv), env=env)


def run(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    def body() -> dict[str, Any]:
        # Imported here: `conveyor --help` should not pay for boto3 and pyarrow.
        from .settings import JobSettings

        settings = JobSettings.from_sources(
            os.environ if env is None else env,
            featureset_env=args.featureset_json_env,
            phase=args.phase,
            partitions=args.partitions,
            index=args.index,
            previous_snapshot=args.previous_snapshot,
            output_json=args.output_json,
        )
        from .program import materialize  # heavy imports only once arguments are valid

        return materialize(settings)

    return run_program(
        body, output_json=args.output_json, keep=_TERMINATION_KEYS, activity="Materialize"
    )
