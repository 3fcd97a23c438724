"""Reconcile a TrainingPipeline: check the spec, then its FeatureSet, then plan its runs.

`parse_trainingpipeline` refuses what the CRD schema cannot (an estimator not on the allowlist,
a parameter it does not take, a metric of the other task) before anything is observed;
`reconcile_trainingpipeline` checks the FeatureSet it observed and plans the runs (`runs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from ..api.v1alpha1 import FeatureSet, TrainingPipeline
from ..resources.workloads import JobSettings
from .canary import step_problems
from .common import Invalid, Outcome, describe_validation_error, invalid_spec
from .pipeline_world import PipelineWorld
from .runs import PipelinePlan, plan_runs
from .serving import plan_serving
from .shadow import shadow_problems

__all__ = ["parse_trainingpipeline", "reconcile_trainingpipeline"]


def _metric_problems(pipeline: TrainingPipeline, task: str, estimator: type | None) -> list[str]:
    from ..training.metrics import check_metric

    named = [("spec.metric", pipeline.spec.metric)] + [
        (f"spec.gates.thresholds[{i}].metric", gate.metric)
        for i, gate in enumerate(pipeline.spec.gates.thresholds)
    ]
    return [
        problem
        for field, metric in named
        if metric is not None
        for problem in check_metric(task, metric, estimator=estimator, field=field)
    ]


def _estimator_problems(
    pipeline: TrainingPipeline,
) -> tuple[str | None, type | None, list[str]]:
    """The task, the estimator class, and the problems of the estimator, its parameters and
    the search space."""
    from ..training.estimators import (  # scikit-learn is imported only when needed
        EstimatorError,
        check_params,
        check_search_space,
        infer_task,
        resolve_estimator,
    )

    try:
        info = resolve_estimator(pipeline.spec.model.estimator)
    except EstimatorError as error:
        return pipeline.spec.task, None, [f"{error.field}: {error}"]
    problems = check_params(info, pipeline.spec.model.params)
    search = pipeline.spec.search
    problems += check_search_space(info, search.strategy, search.space)
    inferred = infer_task(info)
    task = pipeline.spec.task or inferred
    if task != inferred:
        problems.append(f"spec.task: {task} does not fit {info.name}, a {inferred} estimator")
    return task, info.cls, problems


def _featureset_problems(pipeline: TrainingPipeline, featureset: FeatureSet) -> list[str]:
    from ..training.pipeline_checks import featureset_problems

    task = _resolved_task(pipeline)
    return featureset_problems(pipeline.spec, featureset.name, featureset.spec, task)


def parse_trainingpipeline(body: Mapping[str, Any]) -> TrainingPipeline | Invalid:
    """The pipeline, or why its spec cannot train."""
    try:
        pipeline = TrainingPipeline.from_body(body)
    except ValidationError as error:
        return Invalid(invalid_spec(describe_validation_error(error)))
    task, estimator, problems = _estimator_problems(pipeline)
    problems += step_problems(pipeline.spec.serving.rollout)
    problems += shadow_problems(pipeline)
    if task is not None:
        problems += _metric_problems(pipeline, task, estimator)
    if problems:
        return Invalid(invalid_spec("; ".join(problems)))
    return pipeline


def reconcile_trainingpipeline(
    pipeline: TrainingPipeline, world: PipelineWorld, settings: JobSettings
) -> PipelinePlan:
    """Nothing runs until the FeatureSet exists and can feed the pipeline; then the runs, and
    the serving of the model's Production version."""
    problem = _featureset_problem(pipeline, world.featureset)
    if problem is not None:
        return PipelinePlan(problem)
    featureset = FeatureSet.from_body(world.featureset)
    plan = plan_runs(pipeline, world, settings)
    plan.outcome.fields.update(
        target=featureset.spec.schema_.target, resolvedTask=_resolved_task(pipeline)
    )
    serving = plan_serving(pipeline, plan.registered, world.serving, settings, world.now)
    # Every key, None included: a merge patch keeps what it does not name (a finished rollout).
    state = serving.state.model_dump(mode="json", by_alias=True)
    plan.outcome.fields.update(serving=state, servingUrl=serving.state.url)
    plan.outcome.conditions.append(serving.condition)
    plan.outcome.events += serving.events
    plan.serving_writes = serving.writes
    pinned = pipeline.spec.promotion.version is not None  # Git decides, not the live policy
    if serving.promote is not None and serving.promote not in plan.promote and not pinned:
        plan.promote.append(serving.promote)
    plan.workloads |= world.serving.deployment is not None or bool(serving.writes)
    return plan


def _resolved_task(pipeline: TrainingPipeline) -> str:
    """The declared task, else the estimator's (parse_trainingpipeline checked both fit)."""
    from ..training.estimators import infer_task, resolve_estimator

    return pipeline.spec.task or infer_task(resolve_estimator(pipeline.spec.model.estimator))


def _featureset_problem(
    pipeline: TrainingPipeline, featureset_body: Mapping[str, Any] | None
) -> Outcome | None:
    """Why the referenced FeatureSet cannot feed the pipeline; None when it can."""
    if featureset_body is None:
        return invalid_spec(
            f'FeatureSet "{pipeline.spec.feature_set}" not found in namespace '
            f'"{pipeline.namespace}": create it, or fix spec.featureSet',
            reason="FeatureSetNotFound",
            stalled=False,  # Git may apply the FeatureSet after the pipeline
        )
    try:
        featureset = FeatureSet.from_body(featureset_body)
    except ValidationError:
        return invalid_spec(
            f'FeatureSet "{pipeline.spec.feature_set}" is invalid; see its Ready condition',
            reason="FeatureSetInvalid",
        )
    problems = _featureset_problems(pipeline, featureset)
    if problems:
        return invalid_spec("; ".join(problems), reason="FeatureSetIncompatible")
    return None
