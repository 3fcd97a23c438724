"""How the operator runs a program: its argument list and environment, and how it parses them.

The operator builds `MaterializeArgs`/`TrainArgs` and turns them into a container's `args`; the
program declares its flags from the same class and parses them back, so a flag cannot be
spelled two ways. Whole objects travel as JSON in environment variables (`object_json`, read
back by `object_from_env`), S3 settings and credentials in the variables named here.
"""

from __future__ import annotations

import argparse
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, Self

from ..errors import SettingsError
from .serving import CACHE_DIR

__all__ = [
    "CREDENTIAL_KEYS",
    "ENV_ACCESS_KEY",
    "ENV_FEATURESET",
    "ENV_IMAGE",
    "ENV_PIPELINE",
    "ENV_S3_BUCKET",
    "ENV_S3_ENDPOINT",
    "ENV_S3_REGION",
    "ENV_SECRET_KEY",
    "MaterializeArgs",
    "MaterializePhase",
    "ServeArgs",
    "TrainArgs",
    "TrainPhase",
    "object_from_env",
    "object_json",
]

ENV_S3_ENDPOINT = "CONVEYOR_S3_ENDPOINT"
ENV_S3_REGION = "CONVEYOR_S3_REGION"
ENV_S3_BUCKET = "CONVEYOR_S3_BUCKET"
ENV_IMAGE = "CONVEYOR_IMAGE"
"""The image the Job runs (recorded in a model's lineage)."""
ENV_ACCESS_KEY = "AWS_ACCESS_KEY_ID"
ENV_SECRET_KEY = "AWS_SECRET_ACCESS_KEY"
CREDENTIAL_KEYS = (ENV_ACCESS_KEY, ENV_SECRET_KEY)
"""The keys of the S3 credentials Secret, mounted as variables of the same names."""
ENV_FEATURESET = "CONVEYOR_FEATURESET"
"""The FeatureSet object as JSON (materialize and train)."""
ENV_PIPELINE = "CONVEYOR_PIPELINE"
"""The TrainingPipeline object as JSON (train)."""

MaterializePhase = Literal["all", "partition", "combine"]
TrainPhase = Literal["all", "trials", "final"]


def object_json(name: str, namespace: str, spec: Mapping[str, Any]) -> str:
    """An object as a program reads it from its environment: metadata and spec, compact."""
    payload = {"metadata": {"name": name, "namespace": namespace}, "spec": dict(spec)}
    return json.dumps(payload, separators=(",", ":"))


def object_from_env(env: Mapping[str, str], key: str, kind: str) -> tuple[str, str, Any]:
    """(name, namespace, spec data) of the whole `kind` object the variable `key` holds."""
    raw = env.get(key)
    if not raw:
        raise SettingsError(f"Setting '{key}' is missing: it must hold the {kind} object as JSON.")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise SettingsError(f"Setting '{key}' is not valid JSON: {error}.") from error
    metadata = data.get("metadata") if isinstance(data, dict) else None
    if not isinstance(metadata, dict) or not metadata.get("name"):
        raise SettingsError(f"Setting '{key}' has no metadata.name; pass the whole {kind}.")
    namespace = str(metadata.get("namespace") or "default")
    return str(metadata["name"]), namespace, data.get("spec") or {}


class _Invocation(ABC):
    """A program's arguments: declared by `add_arguments`, one dataclass field per flag."""

    @staticmethod
    @abstractmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """Declare the program's flags, each stored under its field's name."""

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> Self:
        """The invocation argparse parsed (flags not given are their defaults)."""
        values = {f.name: getattr(args, f.name) for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**values)

    @classmethod
    def parse(cls, argv: Sequence[str]) -> Self:
        """The arguments after the program's name (the round trip, tests)."""
        parser = argparse.ArgumentParser(exit_on_error=False)
        cls.add_arguments(parser)
        return cls.from_namespace(parser.parse_args(list(argv)))


@dataclass(frozen=True)
class MaterializeArgs(_Invocation):
    """`conveyor materialize ...`: the FeatureSet comes from the variable `featureset_env`."""

    featureset_env: str = ENV_FEATURESET
    phase: MaterializePhase = "all"
    partitions: int | None = None
    """Partitions of the Indexed Job (default: spec.materialization.parallelism)."""
    index: int | None = None
    """This partition's index (default: $JOB_COMPLETION_INDEX in the partition phase)."""
    previous_snapshot: str | None = None
    logs_until: str | None = None
    """RFC 3339: read the prediction logs written by then (the operator's listing's bound)."""
    output_json: Path | None = None

    def to_argv(self) -> list[str]:
        argv = ["materialize", "--featureset-json-env", self.featureset_env, "--phase", self.phase]
        argv += _optional("--partitions", self.partitions)
        argv += _optional("--index", self.index)
        argv += _optional("--previous-snapshot", self.previous_snapshot)
        argv += _optional("--logs-until", self.logs_until)
        return argv + _optional("--output-json", self.output_json)

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--featureset-json-env",
            dest="featureset_env",
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
            "--previous-snapshot",
            metavar="ID",
            help="snapshot whose profile drift is measured against",
        )
        parser.add_argument(
            "--logs-until",
            metavar="TIME",
            help="read the prediction logs written by this RFC 3339 time (default: all)",
        )
        parser.add_argument(
            "--output-json", type=Path, metavar="PATH", help="also write the result"
        )


@dataclass(frozen=True)
class TrainArgs(_Invocation):
    """`conveyor train ...`: the pipeline and FeatureSet come from ENV_PIPELINE/ENV_FEATURESET."""

    run: str
    snapshot: str
    phase: TrainPhase = "all"
    partitions: int | None = None
    """Pods of the trials Indexed Job (default: spec.search.parallelism)."""
    index: int | None = None
    champion_uri: str | None = None
    """The Production model file, scored on the same holdout."""
    champion_digest: str | None = None
    """Its digest as the registry recorded it."""
    output_json: Path | None = None

    def to_argv(self) -> list[str]:
        argv = ["train", "--run", self.run, "--snapshot", self.snapshot, "--phase", self.phase]
        argv += _optional("--partitions", self.partitions)
        argv += _optional("--index", self.index)
        argv += _optional("--champion-uri", self.champion_uri)
        argv += _optional("--champion-digest", self.champion_digest)
        return argv + _optional("--output-json", self.output_json)

    @staticmethod
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
        parser.add_argument(
            "--output-json", type=Path, metavar="PATH", help="also write the result"
        )


@dataclass(frozen=True)
class ServeArgs(_Invocation):
    """`conveyor serve ...`: one ModelVersion, by the registry's record of its files. S3
    settings and credentials come from the environment, as for the Jobs."""

    model: str
    version: int
    artifact_uri: str
    artifact_digest: str
    """The skops pipeline (feature step and estimator) and its sha256 digest."""
    onnx_uri: str | None = None
    onnx_digest: str | None = None
    """The estimator exported to ONNX and verified at training, when there is one."""
    card_uri: str | None = None
    """The model card: the warm-up row the server answers before it reports ready."""
    cache_dir: Path = Path(CACHE_DIR)
    shadow_version: int | None = None
    shadow_artifact_uri: str | None = None
    shadow_artifact_digest: str | None = None
    shadow_onnx_uri: str | None = None
    shadow_onnx_digest: str | None = None
    """A candidate version of the same model that predicts a copy of the requests (never
    answered; logged under its own version), by the registry's record of its files."""
    shadow_share: float = 1.0
    """The share of requests the candidate predicts too."""

    def to_argv(self) -> list[str]:
        argv = ["serve", "--model", self.model, "--version", str(self.version)]
        argv += ["--artifact-uri", self.artifact_uri, "--artifact-digest", self.artifact_digest]
        argv += _optional("--onnx-uri", self.onnx_uri)
        argv += _optional("--onnx-digest", self.onnx_digest)
        argv += _optional("--card-uri", self.card_uri)
        argv += _optional("--shadow-version", self.shadow_version)
        argv += _optional("--shadow-artifact-uri", self.shadow_artifact_uri)
        argv += _optional("--shadow-artifact-digest", self.shadow_artifact_digest)
        argv += _optional("--shadow-onnx-uri", self.shadow_onnx_uri)
        argv += _optional("--shadow-onnx-digest", self.shadow_onnx_digest)
        if self.shadow_version is not None:
            argv += ["--shadow-share", repr(self.shadow_share)]
        return [*argv, "--cache-dir", str(self.cache_dir)]

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--model", required=True, help="the registry model name")
        parser.add_argument("--version", type=int, required=True, help="the version number")
        parser.add_argument("--artifact-uri", required=True, metavar="S3_URI")
        parser.add_argument("--artifact-digest", required=True, metavar="SHA256")
        parser.add_argument("--onnx-uri", metavar="S3_URI", help="the verified ONNX estimator")
        parser.add_argument("--onnx-digest", metavar="SHA256")
        parser.add_argument("--card-uri", metavar="S3_URI", help="the model card (warm-up row)")
        shadow = parser.add_argument_group(
            "shadow", "a candidate version predicting a copy of the requests, never answered"
        )
        shadow.add_argument("--shadow-version", type=int, metavar="N")
        shadow.add_argument("--shadow-artifact-uri", metavar="S3_URI")
        shadow.add_argument("--shadow-artifact-digest", metavar="SHA256")
        shadow.add_argument("--shadow-onnx-uri", metavar="S3_URI")
        shadow.add_argument("--shadow-onnx-digest", metavar="SHA256")
        shadow.add_argument("--shadow-share", type=float, default=1.0, metavar="0-1")
        parser.add_argument(
            "--cache-dir",
            type=Path,
            default=Path(CACHE_DIR),
            metavar="DIR",
            help="a writable directory for the downloaded files",
        )


def _optional(flag: str, value: object) -> list[str]:
    return [] if value is None else [flag, str(value)]
