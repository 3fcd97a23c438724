"""The materialize Job's configuration: arguments plus environment, read once; errors name keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from ...api.v1alpha1 import FeatureSetSpec
from ...clients.s3 import S3Settings
from ...contracts.invocations import MaterializeArgs, MaterializePhase, object_from_env
from ...errors import SettingsError
from ..common import partition_index, spec_problems

__all__ = ["JobSettings"]


@dataclass(frozen=True)
class JobSettings:
    """Everything one run needs; built by `from_invocation`, never from a shell string."""

    name: str
    namespace: str
    spec: FeatureSetSpec
    s3: S3Settings
    phase: MaterializePhase = "all"
    partitions: int = 1
    index: int = 0
    previous_snapshot: str | None = None
    logs_until: datetime | None = None
    """Read the prediction logs written by then: the operator's listing's bound."""
    output_json: Path | None = None

    @classmethod
    def from_invocation(cls, env: Mapping[str, str], args: MaterializeArgs) -> JobSettings:
        name, namespace, spec = _featureset_from_env(env, args.featureset_env)
        count = args.partitions if args.partitions is not None else spec.materialization.parallelism
        position = partition_index(
            env, partitions=count, index=args.index, phase=args.phase, indexed_phase="partition"
        )
        return cls(
            name=name,
            namespace=namespace,
            spec=spec,
            s3=S3Settings.from_env(env),
            phase=args.phase,
            partitions=count,
            index=position,
            previous_snapshot=args.previous_snapshot or None,
            logs_until=_time(args.logs_until),
            output_json=args.output_json,
        )


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise SettingsError(f"--logs-until {value!r} is not an RFC 3339 time.") from None


def _featureset_from_env(env: Mapping[str, str], key: str) -> tuple[str, str, FeatureSetSpec]:
    name, namespace, data = object_from_env(env, key, "FeatureSet")
    try:
        spec = FeatureSetSpec.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(spec_problems(error, prefix=""))
        message = f"Setting '{key}' holds an invalid FeatureSet spec: {problems}."
        raise SettingsError(message) from error
    return name, namespace, spec
