"""Check a TrainingPipeline before any data is read: every problem, each naming its field.

The estimator comes from the allowlist only (conveyor.training.estimators); its parameters and
search space are checked with scikit-learn's own validation, so a typo fails here, in seconds,
instead of minutes into a search.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...api.v1alpha1 import FeatureSetSpec, TrainingPipelineSpec
from ...training.estimators import (
    EstimatorError,
    EstimatorInfo,
    build_estimator,
    check_params,
    check_search_space,
    resolve_estimator,
    resolve_task,
)
from ...training.metrics import check_metric
from ...training.pipeline_checks import featureset_problems
from .errors import InvalidSpec

__all__ = ["DEFAULT_METRIC", "Plan", "check_features", "plan_run"]

DEFAULT_METRIC = {"classification": "accuracy", "regression": "rmse"}


@dataclass(frozen=True)
class Plan:
    """What the spec resolves to: the run trains exactly this."""

    estimator: EstimatorInfo
    task: str
    metric: str
    target: str
    event_time: str | None


def plan_run(spec: TrainingPipelineSpec, featureset: str, fs_spec: FeatureSetSpec) -> Plan:
    """The resolved plan, or InvalidSpec listing every problem found."""
    problems: list[str] = []
    info: EstimatorInfo | None = None
    task: str | None = spec.task
    try:
        info = resolve_estimator(spec.model.estimator)
        task = resolve_task(info, spec.task)
    except EstimatorError as error:
        problems.append(_with_field(error))
    estimator: Any = None
    if info is not None:
        param_problems = check_params(info, spec.model.params)
        problems += param_problems
        problems += check_search_space(info, spec.search.strategy, spec.search.space)
        if not param_problems:
            estimator = build_estimator(info, spec.model.params)  # unfitted: metric checks
    metric: str | None = spec.metric
    if task is not None:
        metric = metric or DEFAULT_METRIC[task]
        problems += check_metric(task, metric, estimator=estimator)
        for position, threshold in enumerate(spec.gates.thresholds):
            field = f"spec.gates.thresholds[{position}].metric"
            problems += check_metric(task, threshold.metric, estimator=estimator, field=field)
    schema = fs_spec.schema_
    problems += featureset_problems(spec, featureset, fs_spec, task)
    if problems or info is None or task is None or metric is None or schema.target is None:
        raise InvalidSpec(problems)
    return Plan(info, task, metric, schema.target, schema.event_time)


def check_features(spec: TrainingPipelineSpec, available: Sequence[str], snapshot: str) -> None:
    """spec.features must name feature columns of the snapshot (checked with its manifest)."""
    problems = [
        f"spec.features[{position}]: {name} is not a feature column of snapshot {snapshot} "
        f"(it has: {', '.join(available)})"
        for position, name in enumerate(spec.features or [])
        if name not in available
    ]
    if spec.features is not None and not spec.features:
        problems.append("spec.features is empty; list feature columns, or omit it to use all")
    if problems:
        raise InvalidSpec(problems)


def _with_field(error: EstimatorError) -> str:
    text = str(error)
    return text if text.startswith(error.field) else f"{error.field}: {text}"
