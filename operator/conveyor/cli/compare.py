"""`conveyor compare`: model versions side by side, the best value of each column marked."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import ConveyorError
from ..training.comparison import compare
from ..training.comparison_report import render_comparison_report
from ..training.comparison_text import render_text
from ..ui.comparisons import comparison_candidates
from .features import storage_from_environment
from .kubeconfig import kube

__all__ = ["add_commands"]

_EPILOG = """\
examples:
  conveyor compare --featureset iris            every pipeline on the FeatureSet iris
  conveyor compare iris iris-logistic           these pipelines
  conveyor compare --versions iris-classifier-v1 iris-classifier-v3
  conveyor compare --featureset iris --sort latency --html iris.html

Per pipeline: its newest version and its Production version (--all: every version).
Holdout metrics are ranked only among versions judged on the same holdout rows."""


def add_commands(commands: Any) -> None:
    parser = commands.add_parser(
        "compare",
        help="compare model versions: holdout metrics, size, latency, live quality",
        description="Model versions side by side: every holdout metric, the dummy baseline, "
        "training time, model size, prediction latency and the live metric, with the best "
        "value of each column marked (*).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("pipelines", nargs="*", metavar="PIPELINE", help="TrainingPipelines")
    parser.add_argument("--featureset", help="compare every pipeline that trains on it")
    parser.add_argument(
        "--versions", nargs="+", default=[], metavar="VERSION", help="ModelVersions by name"
    )
    parser.add_argument("-n", "--namespace", default="default")
    parser.add_argument(
        "--sort",
        metavar="COLUMN",
        help="order by this column, best first (e.g. f1_macro, rmse, size, latency, training, "
        "version); default: the pipelines' metric",
    )
    parser.add_argument(
        "--all", dest="every_version", action="store_true", help="every version of each pipeline"
    )
    parser.add_argument(
        "--html", metavar="FILE", help="also write a self-contained HTML report with plots"
    )
    parser.set_defaults(func=_compare)


def _compare(args: argparse.Namespace) -> int:
    if not (args.featureset or args.pipelines or args.versions):
        raise ConveyorError(
            "say what to compare: --featureset NAME, one or more pipeline names, or --versions "
            "NAME [NAME...] (see conveyor compare --help)"
        )
    client = kube(args.kubeconfig)
    with storage_from_environment(args.kubeconfig) as storage:
        candidates = comparison_candidates(
            client,
            storage,
            args.namespace,
            featureset=args.featureset,
            pipelines=args.pipelines,
            versions=args.versions,
            every_version=args.every_version,
        )
    comparison = compare(candidates, sort=args.sort)
    print(render_text(comparison), end="")
    if args.html:
        path = Path(args.html)
        path.write_text(render_comparison_report(comparison, _title(args)), encoding="utf-8")
        print(f"\nwrote {path}")
    return 0


def _title(args: argparse.Namespace) -> str:
    parts = []
    if args.featureset:
        parts.append(f"FeatureSet {args.featureset}")
    if args.pipelines:
        parts.append(f"pipelines {', '.join(args.pipelines)}")
    if args.versions:
        parts.append(f"versions {', '.join(args.versions)}")
    return f"Comparison: {'; '.join(parts)} (namespace {args.namespace})"
