"""The materialize Job's configuration: arguments plus environment, read once; errors name keys."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from ...api.v1alpha1 import FeatureSetSpec
from ...clients.s3 import S3Settings
from ...errors import SettingsError

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
        if count < 1:
            raise SettingsError(f"Argument '--partitions' must be at least 1, not {count}.")
        if phase == "partition" and index is None:
            index = _index_from_env(env)
        position = index or 0
        if not 0 <= position < count:
            raise SettingsError(
                f"Argument '--index' (or JOB_COMPLETION_INDEX) must be in 0..{count - 1} "
                f"for {count} partitions, not {position}."
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
    raw = env.get(key)
    if not raw:
        raise SettingsError(
            f"Setting '{key}' is missing: it must hold the FeatureSet object as JSON."
        )
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise SettingsError(f"Setting '{key}' is not valid JSON: {error}.") from error
    metadata = data.get("metadata") if isinstance(data, dict) else None
    if not isinstance(metadata, dict) or not metadata.get("name"):
        raise SettingsError(f"Setting '{key}' has no metadata.name; pass the whole FeatureSet.")
    try:
        spec = FeatureSetSpec.model_validate(data.get("spec") or {})
    except ValidationError as error:
        problems = "; ".join(
            f"spec.{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            for item in error.errors()
        )
        message = f"Setting '{key}' holds an invalid FeatureSet spec: {problems}."
        raise SettingsError(message) from error
    return str(metadata["name"]), str(metadata.get("namespace") or "default"), spec


def _index_from_env(env: Mapping[str, str]) -> int:
    raw = env.get("JOB_COMPLETION_INDEX")
    if raw is None:
        raise SettingsError(
            "Setting 'JOB_COMPLETION_INDEX' is missing: --phase partition runs in an Indexed "
            "Job, or pass --index."
        )
    try:
        return int(raw)
    except ValueError as error:
        raise SettingsError(
            f"Setting 'JOB_COMPLETION_INDEX' must be an integer, not {raw!r}."
        ) from error
