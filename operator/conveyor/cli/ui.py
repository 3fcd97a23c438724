"""`conveyor ui`: a read-only web page of FeatureSets, pipelines, versions and their reports,
served on this machine through your kubeconfig and S3 credentials (see docs/ui.md)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from .features import storage_from_environment
from .kubeconfig import kube

__all__ = ["add_commands"]


def add_commands(commands: Any) -> None:
    ui = commands.add_parser(
        "ui", help="serve a read-only web page of FeatureSets, pipelines, versions and reports"
    )
    ui.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)"
    )
    ui.add_argument(
        "--port", type=int, default=0, help="port to listen on (default 0: a free one, printed)"
    )
    ui.add_argument("-n", "--namespace", help="show this namespace only (default: every namespace)")
    ui.set_defaults(func=_ui)


def _ui(args: argparse.Namespace) -> int:
    from ..ui.app import serve
    from ..ui.catalog import Catalog

    client = kube(args.kubeconfig)
    with storage_from_environment(args.kubeconfig) as storage:
        catalog = Catalog(client, storage, namespace=args.namespace)
        try:
            asyncio.run(serve(catalog, args.host, args.port, _announce))
        finally:
            client.close()
    return 0


def _announce(url: str) -> None:
    print(f"Conveyor UI: {url}", flush=True)
    print("Read-only; Ctrl-C stops it.", flush=True)
