"""The materialize Job's configuration: arguments plus environment, read once; errors name keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from ...api.v1alpha1 import FeatureSetSpec
from ...clients.s3 import S3Settings
from ...errors import SettingsError
from ..common import object_from_env, partition_index, spec_problems

__all__ = ["JobSettings", "Phase"]

Phase = Literal["all", "partition", "combine"]


@dataclass(frozen=True)
class JobSettings:
    """Everything one run needs; built by `from_sources`, never from a shell string."""

    name: str
    namespace: str
    spec: FeatureSetSpec
    s3: S3Settings
    phase: Phase = "all"
    partitions: int = 1
    index: int = 0
    previous_snapshot: str | None = None
    output_json: Path | None = None

    @classmethod
    def from_sources(
        cls,
        env: Mapping[str, str],
        *,
        featureset_env: str,
        phase: Phase = "all",
        partitions: int | None = None,
        index: int | None = None,
        previous_snapshot: str | None = None,
        output_json: Path | None = None,
    ) -> JobSettings:
        name, namespace, spec = _featureset_from_env(env, featureset_env)
        count = partitions if partitions is not None else spec.materialization.parallelism
        position = partition_index(
            env, partitions=count, index=index, phase=phase, indexed_phase="partition"
        )
        return cls(
            name=name,
            namespace=namespace,
            spec=spec,
            s3=S3Settings.from_env(env),
            phase=phase,
            partitions=count,
            index=position,
            previous_snapshot=previous_snapshot or None,
            output_json=output_json,
        )


def _featureset_from_env(env: Mapping[str, str], key: str) -> tuple[str, str, FeatureSetSpec]:
    name, namespace, data = object_from_env(env, key, "FeatureSet")
    try:
        spec = FeatureSetSpec.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(spec_problems(error, prefix=""))
        message = f"Setting '{key}' holds an invalid FeatureSet spec: {problems}."
        raise SettingsError(message) from error
    return name, namespace, spec
