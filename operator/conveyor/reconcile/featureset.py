"""Reconcile a FeatureSet: check the definition, then plan its materialization.

`parse_featureset` refuses what the CRD schema cannot (every problem names its field) before
anything is observed; `reconcile_featureset` plans over what was (`materialization`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from ..api.v1alpha1 import FeatureSet, FeatureSetSpec
from ..resources.workloads import JobSettings
from .common import Invalid, describe_validation_error, invalid_spec
from .materialization import FeatureSetWorld, MaterializationPlan, plan_materialization
from .schedules import cron_problem

__all__ = ["check_featureset_spec", "parse_featureset", "reconcile_featureset"]

# Which Transform fields each operation needs, for messages that say what is missing.
_REQUIRED_BY_OP: dict[str, tuple[str, ...]] = {
    "derive": ("output", "expression"),
    "filter": ("expression",),
    "impute": ("columns", "strategy"),
    "clip": ("columns",),
    "standardScale": ("columns",),
    "minMaxScale": ("columns",),
    "oneHot": ("columns",),
    "ordinal": ("columns",),
    "log": ("columns",),
}


def check_featureset_spec(spec: FeatureSetSpec) -> list[str]:
    """Problems the CRD schema cannot express, each naming its field."""
    problems: list[str] = []
    names = [column.name for column in spec.schema_.columns]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        problems.append(f"spec.schema.columns: duplicate column names {', '.join(duplicates)}")
    types = {column.name: column.type for column in spec.schema_.columns}
    for key in ("entity_key", "event_time", "target"):
        value = getattr(spec.schema_, key)
        if value is not None and value not in types:
            field = "spec.schema." + {"entity_key": "entityKey", "event_time": "eventTime"}.get(
                key, key
            )
            problems.append(f"{field}: {value!r} is not one of the columns ({', '.join(names)})")
    event_time = spec.schema_.event_time
    if event_time in types and types[event_time] != "timestamp":
        problems.append(f"spec.schema.eventTime: column {event_time!r} must have type timestamp")
    if spec.deduplicate and not spec.schema_.entity_key:
        problems.append("spec.deduplicate: needs spec.schema.entityKey to know which rows repeat")
    for index, column in enumerate(spec.schema_.columns):
        where = f"spec.schema.columns[{index}]"
        problems += _not_finite(where, min=column.min, max=column.max)
        if column.min is not None and column.max is not None and column.min > column.max:
            problems.append(f"{where}.min: {column.min} is greater than max {column.max}")
        if column.categories is not None and column.type not in ("category", "string"):
            problems.append(f"{where}.categories: only category and string columns have categories")
    problems += _check_transforms(spec)
    schedule = spec.materialization.schedule
    problem = None if schedule is None else cron_problem("spec.materialization.schedule", schedule)
    return problems + ([problem] if problem else [])


def _not_finite(where: str, **bounds: float | None) -> list[str]:
    """A bound that is NaN or infinite (YAML's .nan, .inf) bounds nothing: say so."""
    return [
        f"{where}.{name}: {value} is not a finite number"
        for name, value in bounds.items()
        if value is not None and not math.isfinite(value)
    ]


def _check_transforms(spec: FeatureSetSpec) -> list[str]:
    """Each step's required fields, then what fitting would refuse (expressions parsed and
    their columns checked, outputs that clash with the target or keys): a bad step never
    starts a Job."""
    problems = []
    for index, step in enumerate(spec.transforms):
        where = f"spec.transforms[{index}]"
        missing = [name for name in _REQUIRED_BY_OP[step.op] if getattr(step, name) in (None, [])]
        problems += [f"{where}.{name}: required by op {step.op}" for name in missing]
        if step.op == "impute" and step.strategy == "constant" and step.value is None:
            problems.append(f"{where}.value: required by the constant strategy")
        if step.op == "clip" and step.min is None and step.max is None:
            problems.append(f"{where}: clip needs min, max or both")
        problems += _not_finite(where, min=step.min, max=step.max)
    if problems:
        return problems
    from ..features.transform_checks import check_transforms  # pyarrow: only when needed

    return check_transforms(spec)


def parse_featureset(body: Mapping[str, Any]) -> FeatureSet | Invalid:
    """The FeatureSet, or why its definition cannot be materialized."""
    try:
        featureset = FeatureSet.from_body(body)
    except ValidationError as error:
        return Invalid(invalid_spec(describe_validation_error(error)))
    problems = check_featureset_spec(featureset.spec)
    if problems:
        return Invalid(invalid_spec("; ".join(problems)))
    return featureset


def reconcile_featureset(
    featureset: FeatureSet, world: FeatureSetWorld, settings: JobSettings
) -> MaterializationPlan:
    """Snapshot, follow, publish or retry: see `materialization`."""
    return plan_materialization(featureset, world, settings)
