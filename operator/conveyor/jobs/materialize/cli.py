"""`conveyor materialize`: the Job program that writes a FeatureSet snapshot.

Configuration comes only from arguments and the environment (the operator builds the Job). The
last line on stdout is one JSON object — `{"ok": true, "snapshot": {...}}` or
`{"ok": false, "reason": "...", "message": "..."}` — also written to `--output-json` and, in a
pod, to /dev/termination-log, where the operator reads it. The exit code tells the outcome
(see errors.py).
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

__all__ = ["TERMINATION_LOG", "add_arguments", "add_commands", "main", "run"]

logger = logging.getLogger(__name__)

TERMINATION_LOG = Path("/dev/termination-log")
# Kubernetes keeps at most 4096 bytes of a termination message.
_TERMINATION_LIMIT = 4000


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
    # Imported here: `conveyor --help` should not pay for boto3 and pyarrow.
    from .errors import EXIT_INTERNAL_ERROR, InvalidConfiguration, MaterializeError
    from .settings import JobSettings

    _configure_logging()
    output_json: Path | None = args.output_json
    try:
        settings = JobSettings.from_sources(
            os.environ if env is None else env,
            featureset_env=args.featureset_json_env,
            phase=args.phase,
            partitions=args.partitions,
            index=args.index,
            previous_snapshot=args.previous_snapshot,
            output_json=output_json,
        )
        from .program import materialize  # heavy imports only once arguments are valid

        result: dict[str, Any] = {"ok": True, **materialize(settings)}
        code = 0
    except SettingsError as error:
        result, code = _failure(InvalidConfiguration(str(error)))
    except MaterializeError as error:
        result, code = _failure(error)
    except Exception as error:  # a bug: still one JSON line, so the operator can report it
        logger.exception("Materialize failed unexpectedly")
        result = {
            "ok": False,
            "reason": "InternalError",
            "message": f"{type(error).__name__}: {error}",
            "retryable": True,
        }
        code = EXIT_INTERNAL_ERROR
    _report(result, output_json)
    return code


def _failure(error: Any) -> tuple[dict[str, Any], int]:
    """The JSON result and exit code of a MaterializeError."""
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
    """The result, cut to what Kubernetes keeps: the message shrinks, the JSON stays valid."""
    text = json.dumps(result, separators=(",", ":"), default=str)
    if len(text.encode()) <= _TERMINATION_LIMIT:
        return text
    short = dict(result)
    if "message" in short:
        short["message"] = str(short["message"])[: _TERMINATION_LIMIT // 2] + "…"
    if "snapshot" in short:
        short["snapshot"] = {
            key: short["snapshot"].get(key) for key in ("id", "uri", "rows", "reportUrl")
        }
    return json.dumps(short, separators=(",", ":"), default=str)[:_TERMINATION_LIMIT]


def _configure_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
