"""The server's configuration: its arguments (`ServeArgs`, built by the operator) plus the
environment, read once at start-up; every error names the key to fix."""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ..api.v1alpha1.common import NAME_PATTERN
from ..clients.s3 import S3Settings
from ..contracts.invocations import ServeArgs
from ..contracts.serving import (
    CACHE_DIR,
    DRAIN_SECONDS,
    ENV_DRAIN_SECONDS,
    ENV_GRACE_SECONDS,
    ENV_LOG_BATCH_RECORDS,
    ENV_LOG_BUFFER_RECORDS,
    ENV_LOG_FLUSH_SECONDS,
    ENV_LOG_PREDICTIONS,
    ENV_LOG_SAMPLE_RATIO,
    ENV_MAX_BODY_BYTES,
    ENV_POD_NAME,
    ENV_POD_NAMESPACE,
    ENV_PORT,
    GRACE_SECONDS,
    MAX_BODY_BYTES,
    SERVE_PORT,
)
from ..errors import SettingsError

__all__ = ["ENV_HOST", "ENV_LOG_LEVEL", "LogSettings", "ServeSettings", "ShadowSettings"]

ENV_HOST = "CONVEYOR_SERVE_HOST"
ENV_LOG_LEVEL = "CONVEYOR_LOG_LEVEL"
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_MODEL_NAME = re.compile(NAME_PATTERN)
_WRITER_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_N = TypeVar("_N", int, float)


@dataclass(frozen=True)
class ServeSettings:
    """Everything `conveyor serve` needs, checked."""

    model: str
    version: int
    artifact_uri: str
    artifact_digest: str
    onnx_uri: str | None = None
    onnx_digest: str | None = None
    card_uri: str | None = None
    cache_dir: Path = Path(CACHE_DIR)
    s3: S3Settings = field(default_factory=S3Settings)
    host: str = "0.0.0.0"
    port: int = SERVE_PORT
    max_body_bytes: int = MAX_BODY_BYTES
    drain_seconds: float = DRAIN_SECONDS
    grace_seconds: float = GRACE_SECONDS
    log_level: str = "INFO"
    logs: LogSettings = field(default_factory=lambda: LogSettings())
    shadow: ShadowSettings | None = None

    @classmethod
    def from_invocation(cls, env: Mapping[str, str], args: ServeArgs) -> ServeSettings:
        if not _MODEL_NAME.match(args.model or ""):
            raise SettingsError(
                f"Argument '--model' must be a model name of lowercase letters, digits and '-', "
                f"not {args.model!r}."
            )
        if args.version < 1:
            raise SettingsError(f"Argument '--version' must be 1 or more, not {args.version}.")
        _require_uri("--artifact-uri", args.artifact_uri)
        _require_digest("--artifact-digest", args.artifact_digest)
        onnx_uri, onnx_digest = args.onnx_uri or None, args.onnx_digest or None
        if (onnx_uri is None) != (onnx_digest is None):
            missing = "--onnx-digest" if onnx_digest is None else "--onnx-uri"
            raise SettingsError(
                f"Argument '{missing}' is missing: an ONNX file is served only with both its "
                "URI and the digest the registry recorded."
            )
        if onnx_uri is not None and onnx_digest is not None:
            _require_uri("--onnx-uri", onnx_uri)
            _require_digest("--onnx-digest", onnx_digest)
        if args.card_uri:
            _require_uri("--card-uri", args.card_uri)
        log_level = env.get(ENV_LOG_LEVEL, "INFO").strip().upper() or "INFO"
        if log_level not in _LOG_LEVELS:
            raise SettingsError(
                f"Setting '{ENV_LOG_LEVEL}' must be one of {', '.join(_LOG_LEVELS)}, "
                f"not {log_level!r}."
            )
        port = _number(env, ENV_PORT, int, SERVE_PORT)
        if not 0 < port < 65536:
            raise SettingsError(f"Setting '{ENV_PORT}' must be 1-65535, not {port}.")
        max_body = _number(env, ENV_MAX_BODY_BYTES, int, MAX_BODY_BYTES)
        if max_body < 1024:
            raise SettingsError(
                f"Setting '{ENV_MAX_BODY_BYTES}' must be at least 1024 bytes, not {max_body}."
            )
        drain = _number(env, ENV_DRAIN_SECONDS, float, DRAIN_SECONDS)
        grace = _number(env, ENV_GRACE_SECONDS, float, GRACE_SECONDS)
        for key, value in ((ENV_DRAIN_SECONDS, drain), (ENV_GRACE_SECONDS, grace)):
            if value < 0:
                raise SettingsError(f"Setting '{key}' must be 0 or more seconds, not {value}.")
        return cls(
            model=args.model,
            version=args.version,
            artifact_uri=args.artifact_uri,
            artifact_digest=args.artifact_digest,
            onnx_uri=onnx_uri,
            onnx_digest=onnx_digest,
            card_uri=args.card_uri or None,
            cache_dir=args.cache_dir,
            s3=S3Settings.from_env(env),
            host=env.get(ENV_HOST, "").strip() or cls.host,
            port=port,
            max_body_bytes=max_body,
            drain_seconds=drain,
            grace_seconds=grace,
            log_level=log_level,
            logs=LogSettings.from_env(env),
            shadow=ShadowSettings.from_invocation(args),
        )


@dataclass(frozen=True)
class ShadowSettings:
    """A candidate version that predicts a copy of the requests; its answers are logged under
    its own version and never returned."""

    version: int
    artifact_uri: str
    artifact_digest: str
    onnx_uri: str | None = None
    onnx_digest: str | None = None
    share: float = 1.0

    @classmethod
    def from_invocation(cls, args: ServeArgs) -> ShadowSettings | None:
        given = {
            "--shadow-version": args.shadow_version,
            "--shadow-artifact-uri": args.shadow_artifact_uri,
            "--shadow-artifact-digest": args.shadow_artifact_digest,
        }
        if all(value is None for value in given.values()):
            if args.shadow_onnx_uri or args.shadow_onnx_digest:
                raise SettingsError("Arguments '--shadow-onnx-*' need '--shadow-version'.")
            return None
        missing = [flag for flag, value in given.items() if value is None]
        if missing:
            raise SettingsError(
                f"Argument '{missing[0]}' is missing: a shadow version is named by its "
                "version, artifact URI and digest together."
            )
        assert args.shadow_version is not None and args.shadow_artifact_uri is not None
        assert args.shadow_artifact_digest is not None
        if args.shadow_version == args.version or args.shadow_version < 1:
            raise SettingsError(
                f"Argument '--shadow-version' must be another version than the served "
                f"{args.version}, not {args.shadow_version}."
            )
        _require_uri("--shadow-artifact-uri", args.shadow_artifact_uri)
        _require_digest("--shadow-artifact-digest", args.shadow_artifact_digest)
        onnx_uri, onnx_digest = args.shadow_onnx_uri or None, args.shadow_onnx_digest or None
        if (onnx_uri is None) != (onnx_digest is None):
            raise SettingsError(
                "Arguments '--shadow-onnx-uri' and '--shadow-onnx-digest' go together."
            )
        if onnx_uri is not None and onnx_digest is not None:
            _require_uri("--shadow-onnx-uri", onnx_uri)
            _require_digest("--shadow-onnx-digest", onnx_digest)
        if not 0 < args.shadow_share <= 1:
            raise SettingsError(
                f"Argument '--shadow-share' must be above 0 and at most 1, not {args.shadow_share}."
            )
        return cls(
            version=args.shadow_version,
            artifact_uri=args.shadow_artifact_uri,
            artifact_digest=args.shadow_artifact_digest,
            onnx_uri=onnx_uri,
            onnx_digest=onnx_digest,
            share=args.shadow_share,
        )


@dataclass(frozen=True)
class LogSettings:
    """How the server writes the prediction and feedback logs."""

    predictions: bool = True
    sample_ratio: float = 1.0
    flush_seconds: float = 5.0
    batch_records: int = 1000
    buffer_records: int = 100_000
    writer: str = "conveyor-serve"
    """Its log objects' name prefix: the pod's name."""
    namespace: str = "default"
    """The namespace whose logs these are: the pod's."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LogSettings:
        raw = env.get(ENV_LOG_PREDICTIONS, "true").strip().lower() or "true"
        if raw not in ("true", "false"):
            raise SettingsError(
                f"Setting '{ENV_LOG_PREDICTIONS}' must be true or false, not {raw!r}."
            )
        ratio = _number(env, ENV_LOG_SAMPLE_RATIO, float, cls.sample_ratio)
        if not 0 <= ratio <= 1:
            raise SettingsError(f"Setting '{ENV_LOG_SAMPLE_RATIO}' must be 0-1, not {ratio}.")
        flush = _number(env, ENV_LOG_FLUSH_SECONDS, float, cls.flush_seconds)
        if not 0.01 <= flush <= 3600:
            raise SettingsError(
                f"Setting '{ENV_LOG_FLUSH_SECONDS}' must be 0.01-3600 seconds, not {flush}."
            )
        batch = _number(env, ENV_LOG_BATCH_RECORDS, int, cls.batch_records)
        buffer = _number(env, ENV_LOG_BUFFER_RECORDS, int, cls.buffer_records)
        if not 1 <= batch <= buffer:
            raise SettingsError(
                f"Settings '{ENV_LOG_BATCH_RECORDS}' ({batch}) and '{ENV_LOG_BUFFER_RECORDS}' "
                f"({buffer}) must be 1 or more, the batch no larger than the buffer."
            )
        writer = _WRITER_CHARACTERS.sub("-", env.get(ENV_POD_NAME, "").strip())
        namespace = env.get(ENV_POD_NAMESPACE, "").strip() or cls.namespace
        if not _NAMESPACE.fullmatch(namespace):
            raise SettingsError(
                f"Setting '{ENV_POD_NAMESPACE}' must be a Kubernetes namespace name (lower-case "
                f"letters, digits and '-', at most 63), not {namespace!r}."
            )
        return cls(
            predictions=raw == "true",
            sample_ratio=ratio,
            flush_seconds=flush,
            batch_records=batch,
            buffer_records=buffer,
            writer=writer or _WRITER_CHARACTERS.sub("-", socket.gethostname()) or cls.writer,
            namespace=namespace,
        )


def _require_uri(key: str, uri: str) -> None:
    bucket, _, path = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket or not path or path.endswith("/"):
        raise SettingsError(f"Argument '{key}' must be an s3://bucket/key URI, not {uri!r}.")


def _require_digest(key: str, digest: str) -> None:
    if not _DIGEST.match(digest or ""):
        raise SettingsError(f"Argument '{key}' must be sha256:<64 hex digits>, not {digest!r}.")


def _number(env: Mapping[str, str], key: str, kind: type[_N], default: _N) -> _N:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise SettingsError(f"Setting '{key}' must be {what}, not {raw!r}.") from None
