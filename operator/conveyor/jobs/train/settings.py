"""The train Job's configuration: arguments plus environment, read once; errors name keys."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ...api.v1alpha1 import FeatureSetSpec, TrainingPipelineSpec
from ...clients.s3 import S3Settings
from ...contracts.invocations import (
    ENV_FEATURESET,
    ENV_IMAGE,
    ENV_PIPELINE,
    TrainArgs,
    TrainPhase,
    object_from_env,
)
from ...errors import SettingsError
from ..common import partition_index, spec_problems
from .errors import InvalidSpec

__all__ = ["TrainSettings"]

_RUN_ID = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SNAPSHOT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_Model = TypeVar("_Model", bound=BaseModel)


@dataclass(frozen=True)
class TrainSettings:
    """Everything one run needs; built by `from_invocation`, never from a shell string."""

    run: str
    snapshot: str
    pipeline: str
    namespace: str
    spec: TrainingPipelineSpec
    featureset: str
    featureset_spec: FeatureSetSpec
    image: str
    s3: S3Settings
    phase: TrainPhase = "all"
    partitions: int = 1
    index: int = 0
    champion_uri: str | None = None
    champion_digest: str | None = None
    output_json: Path | None = None

    @classmethod
    def from_invocation(cls, env: Mapping[str, str], args: TrainArgs) -> TrainSettings:
        _require(_RUN_ID, args.run, "--run", "a run id of lowercase letters, digits and '-'")
        _require(_SNAPSHOT_ID, args.snapshot, "--snapshot", "a snapshot id")
        pipeline, namespace, spec_data = object_from_env(env, ENV_PIPELINE, "TrainingPipeline")
        spec = _validate(TrainingPipelineSpec, spec_data, "TrainingPipeline")
        featureset, _, featureset_data = object_from_env(env, ENV_FEATURESET, "FeatureSet")
        featureset_spec = _validate(FeatureSetSpec, featureset_data, "FeatureSet")
        count = args.partitions if args.partitions is not None else spec.search.parallelism
        position = partition_index(
            env, partitions=count, index=args.index, phase=args.phase, indexed_phase="trials"
        )
        champion_uri, champion_digest = _champion(args.champion_uri, args.champion_digest)
        return cls(
            run=args.run,
            snapshot=args.snapshot,
            pipeline=pipeline,
            namespace=namespace,
            spec=spec,
            featureset=featureset,
            featureset_spec=featureset_spec,
            image=env.get(ENV_IMAGE, "").strip() or "unknown",
            s3=S3Settings.from_env(env),
            phase=args.phase,
            partitions=count,
            index=position,
            champion_uri=champion_uri,
            champion_digest=champion_digest,
            output_json=args.output_json,
        )

    @property
    def model(self) -> str:
        return self.spec.model.name


def _require(pattern: re.Pattern[str], value: str, key: str, what: str) -> None:
    if not pattern.match(value or ""):
        raise SettingsError(f"Argument '{key}' must be {what}, not {value!r}.")


def _validate(model: type[_Model], data: Any, kind: str) -> _Model:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidSpec(spec_problems(error, prefix=f"{kind} ")) from error


def _champion(uri: str | None, digest: str | None) -> tuple[str | None, str | None]:
    uri, digest = uri or None, digest or None
    if (uri is None) != (digest is None):
        missing = "--champion-digest" if digest is None else "--champion-uri"
        raise SettingsError(
            f"Argument '{missing}' is missing: the Production model is loaded only with both "
            "its URI and the digest the registry recorded."
        )
    if uri is not None and not uri.startswith("s3://"):
        raise SettingsError(f"Argument '--champion-uri' must be an s3:// URI, not {uri!r}.")
    if digest is not None and not _DIGEST.match(digest):
        raise SettingsError(
            f"Argument '--champion-digest' must be sha256:<64 hex digits>, not {digest!r}."
        )
    return uri, digest
