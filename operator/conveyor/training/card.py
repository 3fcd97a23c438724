"""The model card: everything known about one trained model, as JSON beside its file.

`build_card()` returns a JSON-ready dict whose keys come in a fixed order (the card of a model is
read by people and diffed between versions). NaN and infinite numbers become null, numpy values
plain Python, datetimes ISO 8601 text in UTC. Keys:

- format, kind: the card's own format (1) and "ModelCard";
- model, version, task, estimator, params: what was trained;
- metric, score, metrics, baseline: the pipeline metric and its holdout value, every holdout
  metric, and the same metrics of the dummy-estimator baseline;
- gates, passed: every gate outcome and whether all passed;
- pipeline, run, featureset, snapshot, image: lineage;
- feature_schema, feature_columns, target: what the model reads (the FeatureSet schema, wire form)
  and predicts;
- reference_profile: the snapshot's profile that drift checks compare live inputs against;
- training: seconds, search summary, started_at, finished_at;
- libraries: python, scikit-learn, numpy, scipy, pyarrow, skops, optuna and conveyor versions.
"""

from __future__ import annotations

import dataclasses
import math
import platform
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from importlib import metadata
from typing import Any

import numpy as np

from .gates import GateOutcome

__all__ = ["CARD_FORMAT", "LIBRARIES", "build_card", "json_safe", "library_versions"]

CARD_FORMAT = 1
LIBRARIES = ("scikit-learn", "numpy", "scipy", "pyarrow", "skops", "optuna", "conveyor")
"""Distributions whose versions every card records (besides Python)."""


def build_card(
    *,
    model: str,
    version: int | None,
    pipeline: str,
    run: str,
    featureset: str,
    snapshot: str,
    image: str,
    task: str,
    estimator: str,
    params: dict,
    metric: str,
    metrics: dict,
    baseline: dict,
    gates: list[GateOutcome],
    feature_schema: dict,
    feature_columns: list[str],
    target: str,
    reference_profile: dict,
    training_seconds: float,
    search: dict,
    started_at: datetime,
    finished_at: datetime,
) -> dict[str, Any]:
    """The model card of a trained model (see the module docstring for its keys)."""
    card = {
        "format": CARD_FORMAT,
        "kind": "ModelCard",
        "model": model,
        "version": version,
        "task": task,
        "estimator": estimator,
        "params": params,
        "metric": metric,
        "score": metrics.get(metric),
        "metrics": metrics,
        "baseline": baseline,
        "gates": [outcome.to_wire() for outcome in gates],
        "passed": all(outcome.passed for outcome in gates),
        "pipeline": pipeline,
        "run": run,
        "featureset": featureset,
        "snapshot": snapshot,
        "image": image,
        "feature_schema": feature_schema,
        "feature_columns": list(feature_columns),
        "target": target,
        "reference_profile": reference_profile,
        "training": {
            "seconds": training_seconds,
            "search": search,
            "started_at": started_at,
            "finished_at": finished_at,
        },
        "libraries": library_versions(),
    }
    return json_safe(card)


@cache
def library_versions() -> dict[str, str | None]:
    """Python and the LIBRARIES' installed versions (None for one not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def json_safe(value: Any) -> Any:
    """`value` with only JSON types: what json.dumps(..., allow_nan=False) accepts."""
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((json_safe(item) for item in value), key=str)
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, np.ndarray):
        return [json_safe(item) for item in value.tolist()]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_safe(dataclasses.asdict(value))
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)
