"""`conveyor serve`: the model server of a serving Deployment's pods.

It serves one ModelVersion, named by the registry's record of its files (the operator builds
the arguments from `conveyor.contracts.invocations.ServeArgs`): the skops pipeline and its
digest, the verified ONNX estimator when there is one, and the model card whose sample row it
answers before it reports ready. S3 settings and credentials come from the environment as for
the Jobs (CONVEYOR_S3_ENDPOINT, CONVEYOR_S3_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY);
the port from CONVEYOR_PORT_HTTP (8080); CONVEYOR_SERVE_MAX_BODY_BYTES,
CONVEYOR_SERVE_DRAIN_SECONDS, CONVEYOR_SERVE_GRACE_SECONDS and CONVEYOR_LOG_LEVEL tune it.

When it cannot serve its version it exits with the outcome's code and reports one JSON line on
stdout and in the termination message — `{"ok": false, "reason": "DigestMismatch", ...}` —
as the Jobs do (reasons: DigestMismatch, ArtifactUnreadable, WarmupFailed,
InvalidConfiguration, StorageAccessDenied, StorageUnavailable). After SIGTERM it drains, finishes
the requests in flight and exits 0.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..contracts.invocations import ServeArgs
from ..jobs.common import run_program

__all__ = ["add_commands", "main", "run"]


def add_commands(commands: Any) -> None:
    """Register `serve` on the `conveyor` command's subparsers."""
    parser = commands.add_parser(
        "serve",
        help="serve one model version over HTTP (runs in a serving Deployment's pods)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ServeArgs.add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run without the `conveyor` command around it (tests, `python -m` wrappers)."""
    parser = argparse.ArgumentParser(prog="conveyor serve")
    ServeArgs.add_arguments(parser)
    return run(parser.parse_args(argv), env=env)


def run(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    invocation = ServeArgs.from_namespace(args)
    environment = os.environ if env is None else env

    def body() -> dict[str, Any]:
        from .settings import ServeSettings

        settings = ServeSettings.from_invocation(environment, invocation)
        from .server import serve  # uvicorn, scikit-learn and onnxruntime once arguments are valid

        return serve(settings)

    return run_program(body, output_json=None, keep={}, activity="Serving", env=environment)
