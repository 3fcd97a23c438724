"""The `conveyor` command (also installed as the kubectl plugin `kubectl-conveyor`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import ConveyorError
from ..jobs.materialize import cli as materialize
from ..jobs.train import cli as train
from ..serving import cli as serve
from . import compare, features, models, operator, resources, retrain, sandbox, serving
from . import ui as web_ui

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conveyor",
        description="Continuous model delivery on Kubernetes.",
    )
    parser.add_argument(
        "--kubeconfig",
        help="kubeconfig (default: $KUBECONFIG, then .sandbox/kubeconfig, then ~/.kube/config)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    operator.add_commands(commands)
    materialize.add_commands(commands)
    train.add_commands(commands)
    serve.add_commands(commands)
    resources.add_commands(commands)
    features.add_commands(commands)
    models.add_commands(commands)
    compare.add_commands(commands)
    retrain.add_commands(commands)
    serving.add_commands(commands)
    sandbox.add_commands(commands)
    web_ui.add_commands(commands)
    version = commands.add_parser("version", help="print the version")
    version.set_defaults(func=lambda _: print(f"conveyor {__version__}") or 0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConveyorError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if getattr(args, "reported_exit", False):
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """End a Job program whose outcome is reported (termination message, output file, log)
    without the interpreter's finalization: native libraries' static destructors (Arrow's S3
    client and thread pools) sometimes abort there ("terminate called without an active
    exception"), and the pod would end killed by SIGABRT instead of with the exit code that
    tells the operator whether to retry."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
