"""Which ModelVersions the operator registered: the only ones it ever promotes, serves, or uses
as a champion.

A ModelVersion is an object anyone with write access can create, copying the labels of a real
one. The operator trusts a version only when the run it names vouches for it:

- its labels name the model, pipeline and run its spec names;
- that run's result.json — written last by the run's own Job under the run's path in the
  operator's bucket — exists and is readable;
- every registry field (artifact URI and digest, metrics, params, gates, lineage, task,
  metric) is what `registry_spec` builds from that result: a version whose artifact lies
  elsewhere, or whose digest or gates were rewritten, is not the run's;
- while the pipeline's status still lists the run, the version is the one it registered.

The admission policies in manifests/admission/ refuse such objects up front; this is the
check that holds where they are not installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..api.v1alpha1.modelversion import ModelVersionSpec
from ..contracts.labels import LABEL_MODEL, LABEL_PIPELINE, LABEL_RUN
from ..contracts.layouts import RunLayout
from ..contracts.results import RunResult
from ..resources.modelversion import registry_spec

__all__ = ["RunRecord", "recorded_version", "registration_problem"]

# What a person may change (ModelVersionSpec fields): everything else is the run's record.
_PEOPLE_FIELDS = {"stage", "delete_artifacts", "version"}


@dataclass(frozen=True)
class RunRecord:
    """What the operator knows of the run a version names."""

    run_prefix: str
    """The run's own path (s3://bucket/models/<ns>/<model>/runs/<run>/): its artifacts."""
    result_uri: str
    """Where that run's result.json is."""
    result: RunResult | None = None
    """The run's result; None while it does not exist."""
    unreadable: str = ""
    """Why the result exists but cannot be read."""
    recorded_version: str | None = None
    """The version the pipeline's status says the run registered; None when it says none
    (the run is past the history limit, or not registered yet)."""

    @classmethod
    def of(
        cls,
        layout: RunLayout,
        *,
        result: RunResult | None = None,
        unreadable: str = "",
        recorded_version: str | None = None,
    ) -> RunRecord:
        return cls(
            layout.uri(layout.prefix),
            layout.uri(layout.result),
            result,
            unreadable,
            recorded_version,
        )


def recorded_version(pipeline: Mapping[str, Any] | None, run: str) -> str | None:
    """The version the pipeline's status records for `run`, if it still lists the run."""
    runs = ((pipeline or {}).get("status") or {}).get("runs") or []
    entry = next((entry for entry in runs if entry.get("id") == run), None)
    return (entry or {}).get("modelVersion") or None


def registration_problem(body: Mapping[str, Any], record: RunRecord) -> str | None:
    """Why the operator did not register this ModelVersion; None when it did."""
    metadata, spec = body.get("metadata") or {}, body.get("spec") or {}
    name = metadata.get("name", "")
    lineage = spec.get("lineage") or {}
    run = lineage.get("run", "")
    labels = metadata.get("labels") or {}
    claimed = {
        LABEL_MODEL: spec.get("model"),
        LABEL_PIPELINE: lineage.get("pipeline"),
        LABEL_RUN: run,
    }
    wrong = sorted(label for label, value in claimed.items() if labels.get(label) != value)
    if wrong:
        return f"its labels {', '.join(wrong)} do not match its spec"
    if record.unreadable:
        return f"the result of run {run} cannot be read ({record.unreadable})"
    if record.result is None:
        return f"run {run} left no result at {record.result_uri}: Conveyor never trained it"
    artifact = (spec.get("artifact") or {}).get("uri", "")
    if not artifact.startswith(record.run_prefix):
        return f"its artifact {artifact} is not under the path of run {run} ({record.run_prefix})"
    differing = _differing_fields(spec, record.result)
    if differing:
        return (
            f"its {', '.join(differing)} differ from what run {run} recorded in {record.result_uri}"
        )
    if record.recorded_version is not None and record.recorded_version != name:
        return f"run {run} registered {record.recorded_version}, not {name}"
    return None


def _differing_fields(spec: Mapping[str, Any], result: RunResult) -> list[str]:
    """The registry fields (spec.x.y) where the version and its run's result disagree."""
    try:
        claimed = ModelVersionSpec.model_validate(spec)
        recorded = ModelVersionSpec.model_validate({**registry_spec(result), "version": 1})
    except ValidationError as error:
        return [f"spec ({error.error_count()} invalid field(s))"]
    return _paths(
        claimed.model_dump(exclude=_PEOPLE_FIELDS),
        recorded.model_dump(exclude=_PEOPLE_FIELDS),
        "spec",
    )


def _paths(claimed: Any, recorded: Any, path: str) -> list[str]:
    if claimed == recorded:
        return []
    if isinstance(claimed, dict) and isinstance(recorded, dict) and path.count(".") < 2:
        keys = sorted(set(claimed) | set(recorded))
        return [
            found
            for key in keys
            for found in _paths(claimed.get(key), recorded.get(key), f"{path}.{_camel(key)}")
        ]
    return [path]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
