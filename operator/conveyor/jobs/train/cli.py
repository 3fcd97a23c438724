"""`conveyor train`: the Job program that trains, evaluates and stores one model version.

Configuration comes only from arguments and the environment (the operator builds the Job):
CONVEYOR_PIPELINE (the TrainingPipeline object as JSON), CONVEYOR_FEATURESET (the FeatureSet
object as JSON), CONVEYOR_IMAGE, and the S3 settings (CONVEYOR_S3_ENDPOINT, CONVEYOR_S3_REGION,
CONVEYOR_S3_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY). The last line on stdout is one
JSON object — `{"ok": true, "result": {...}}` or `{"ok": false, "reason": "...", "message":
"..."}` — also written to `--output-json` and, in a pod, to /dev/termination-log, where the
operator reads it. The exit code tells the outcome (see errors.py); a model that fails its
gates is a successful run with `"passed": false`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ...errors import SettingsError
from .errors import EXIT_INTERNAL_ERROR, InvalidConfiguration, TrainError

__all__ = ["TERMINATION_LOG", "add_arguments", "add_commands", "main", "run"]

logger = logging.getLogger(__name__)

TERMINATION_LOG = Path("/dev/termination-log")
# Kubernetes keeps at most 4096 bytes of a termination message.
_TERMINATION_LIMIT = 4000
_TERMINATION_KEYS = ("run", "snapshot", "metric", "score", "passed", "artifact", "phase", "index")


def add_commands(commands: Any) -> None:
    """Register `train` on the `conveyor` command's subparsers."""
    parser = commands.add_parser(
        "train",
        help="train a model version (runs as a Job; configured by the operator)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, metavar="ID", help="the run id")
    parser.add_argument("--snapshot", required=True, metavar="ID", help="feature snapshot id")
    parser.add_argument(
        "--phase",
        choices=["all", "trials", "final"],
        default="all",
        help="all in one pod; trials: this Indexed Job pod's share; final: merge and refit",
    )
    parser.add_argument(
        "--partitions", type=int, help="pods of the trials Indexed Job (default: parallelism)"
    )
    parser.add_argument(
        "--index", type=int, help="this pod's index (default: $JOB_COMPLETION_INDEX)"
    )
    parser.add_argument("--champion-uri", metavar="S3_URI", help="the Production model file")
    parser.add_argument(
        "--champion-digest", metavar="SHA256", help="its digest as the registry recorded it"
    )
    parser.add_argument("--output-json", type=Path, metavar="PATH", help="also write the result")


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run without the `conveyor` command around it (tests, `python -m` wrappers)."""
    parser = argparse.ArgumentParser(prog="conveyor train")
    add_arguments(parser)
    return run(parser.parse_args(argv), env=env)


def run(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    _configure_logging()
    output_json: Path | None = args.output_json
    try:
        from .settings import TrainSettings

        settings = TrainSettings.from_sources(
            os.environ if env is None else env,
            run=args.run,
            snapshot=args.snapshot,
            phase=args.phase,
            partitions=args.partitions,
            index=args.index,
            champion_uri=args.champion_uri,
            champion_digest=args.champion_digest,
            output_json=output_json,
        )
        from .validate import plan_run  # scikit-learn loads once the arguments are valid

        plan = plan_run(settings.spec, settings.featureset, settings.featureset_spec)
        from .program import train  # the rest (skops, plots) only for a spec that can train

        result: dict[str, Any] = {"ok": True, **train(settings, plan)}
        code = 0
    except SettingsError as error:
        result, code = _failure(InvalidConfiguration(str(error)))
    except TrainError as error:
        result, code = _failure(error)
    except Exception as error:  # a bug: still one JSON line, so the operator can report it
        logger.exception("Training failed unexpectedly")
        result = {
            "ok": False,
            "reason": "InternalError",
            "message": f"{type(error).__name__}: {error}",
            "retryable": True,
        }
        code = EXIT_INTERNAL_ERROR
    _report(result, output_json)
    return code


def _failure(error: TrainError) -> tuple[dict[str, Any], int]:
    logger.error("%s: %s", error.reason, error.message)
    payload = {
        "ok": False,
        "reason": error.reason,
        "message": error.message,
        "retryable": error.retryable,
    }
    return payload, error.exit_code


def _report(result: dict[str, Any], output_json: Path | None) -> None:
    line = json.dumps(result, separators=(",", ":"), default=str)
    if output_json is not None:
        output_json.parent.mkdir(parents=True, exist_ok=True)
        output_json.write_text(line + "\n")
    if TERMINATION_LOG.exists() and os.access(TERMINATION_LOG, os.W_OK):
        TERMINATION_LOG.write_text(_termination_message(result))
    print(line, flush=True)


def _termination_message(result: dict[str, Any]) -> str:
    """The result, cut to what Kubernetes keeps: the essentials stay, the JSON stays valid."""
    text = json.dumps(result, separators=(",", ":"), default=str)
    if len(text.encode()) <= _TERMINATION_LIMIT:
        return text
    short = dict(result)
    if "message" in short:
        short["message"] = str(short["message"])[: _TERMINATION_LIMIT // 2] + "…"
    if isinstance(short.get("result"), dict):
        full = short["result"]
        short["result"] = {key: full[key] for key in _TERMINATION_KEYS if key in full}
        short["result"]["rejection_reasons"] = [
            reason[:200] for reason in full.get("rejection_reasons", [])[:5]
        ]
    return json.dumps(short, separators=(",", ":"), default=str)[:_TERMINATION_LIMIT]


def _configure_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
