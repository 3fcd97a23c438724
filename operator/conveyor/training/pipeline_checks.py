"""What a TrainingPipeline asks of its FeatureSet, checked from the two definitions alone:
the operator runs this before a run's Job exists, the trainer again before it reads data."""

from __future__ import annotations

from ..api.v1alpha1 import FeatureSetSpec, TrainingPipelineSpec

__all__ = ["featureset_problems"]

_NUMERIC_TYPES = ("float", "int", "bool")


def featureset_problems(
    spec: TrainingPipelineSpec, featureset: str, fs_spec: FeatureSetSpec, task: str | None
) -> list[str]:
    """Every problem of the pipeline against FeatureSet `featureset`, each naming its field."""
    schema = fs_spec.schema_
    problems = _target_problems(featureset, schema.target, task, fs_spec)
    if spec.split.strategy == "time" and not schema.event_time:
        problems.append(
            f"spec.split.strategy: time needs an event time, but FeatureSet {featureset} has no "
            "spec.schema.eventTime; set it there, or use holdout or kfold"
        )
    protected = {schema.target, schema.entity_key, schema.event_time} - {None}
    declared = _declared_columns(fs_spec)
    encoded = _one_hot_prefixes(fs_spec)
    for position, name in enumerate(spec.features or []):
        if name in protected:
            problems.append(
                f"spec.features[{position}]: {name} is the FeatureSet's target, entity key or "
                "event time, not a feature"
            )
        elif name not in declared and not name.startswith(encoded):
            problems.append(
                f"spec.features[{position}]: {name} is not a column of FeatureSet {featureset} "
                f"(it declares: {', '.join(sorted(declared - protected))})"
            )
    return problems


def _declared_columns(fs_spec: FeatureSetSpec) -> set[str]:
    """The schema's columns and the derived ones."""
    columns = {column.name for column in fs_spec.schema_.columns}
    return columns | {step.output for step in fs_spec.transforms if step.output}


def _one_hot_prefixes(fs_spec: FeatureSetSpec) -> tuple[str, ...]:
    """`<column>_` of each one-hot encoded column: its outputs are named from the data."""
    return tuple(
        f"{column}_"
        for step in fs_spec.transforms
        if step.op == "oneHot"
        for column in step.columns or []
    )


def _target_problems(
    featureset: str, target: str | None, task: str | None, fs_spec: FeatureSetSpec
) -> list[str]:
    if target is None:
        return [
            f"spec.featureSet: FeatureSet {featureset} has no spec.schema.target; a model needs "
            "a target column to learn"
        ]
    column = next((c for c in fs_spec.schema_.columns if c.name == target), None)
    if column is None:
        return [
            f"spec.featureSet: the target {target} of FeatureSet {featureset} is not one of its "
            "spec.schema.columns"
        ]
    if task == "regression" and column.type not in _NUMERIC_TYPES:
        return [
            f"spec.task: regression needs a numeric target, but {target} of FeatureSet "
            f"{featureset} is of type {column.type}; use a classification estimator"
        ]
    return []
