"""`conveyor operator`."""

from __future__ import annotations

import argparse
from typing import Any

from ..operator import run_operator
from ..settings import Settings

__all__ = ["add_commands"]


def add_commands(commands: Any) -> None:
    parser = commands.add_parser(
        "operator",
        help="run the operator (settings from CONVEYOR_* variables; flags override)",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        help="watch this namespace (repeatable); default: CONVEYOR_NAMESPACES or all namespaces",
    )
    parser.add_argument("--port", type=int, help="port of /healthz, /readyz and /metrics")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    settings = Settings.from_env(
        namespaces=tuple(args.namespaces) if args.namespaces else None,
        port_http=args.port,
        log_level=args.log_level,
        kubeconfig=args.kubeconfig,
    )
    run_operator(settings)
    return 0
