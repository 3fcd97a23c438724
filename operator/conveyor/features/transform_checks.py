"""What a FeatureSet's transform steps may do, checked from the definition alone: the columns
each step reads and writes at its place in the order, the types it accepts, the columns it may
not touch. Fitting (transforms.py) walks the steps with these; the operator runs
`check_transforms` before it starts a Job, so a bad step never costs a pod."""

from __future__ import annotations

from typing import Any

from conveyor.api.v1alpha1.featureset import FeatureSetSpec, Transform

from .conform import parse_value
from .expressions import ExpressionError, compile_expression
from .transform_steps import TransformError

__all__ = ["advance", "check_step", "check_transforms", "protected_columns", "step_reads"]

_NUMERIC = ("float", "int")
_CATEGORICAL = ("category", "string", "int", "bool")
_COLUMN_OPS = ("impute", "clip", "standardScale", "minMaxScale", "oneHot", "ordinal", "log")


def check_transforms(spec: FeatureSetSpec) -> list[str]:
    """What fitting would refuse, found before any data is read: each step's problem as
    "<field>: <what to fix>". The operator runs this before it starts a Job.

    A step after a oneHot may name columns that only the data decides (`color_red`): its
    expression's grammar is checked, its columns when the Job fits."""
    problems: list[str] = []
    types: dict[str, str] = {column.name: column.type for column in spec.schema_.columns}
    pending = False  # an unfitted oneHot: the columns it creates are not known yet
    for index, step in enumerate(spec.transforms):
        try:
            if step_reads(index, step, types, unknown_ok=pending) is not None:
                check_step(index, step, types, spec)
            elif step.expression:
                compile_expression(step.expression, None)
        except TransformError as error:
            problems.append(str(error))
        except ExpressionError as error:
            problems.append(f"spec.transforms[{index}].expression: {error}")
        pending |= step.op == "oneHot"
        types = advance(step, None, types)
    return problems


def step_reads(
    index: int, step: Transform, types: dict[str, str], *, unknown_ok: bool
) -> set[str] | None:
    """The columns a step reads; None when unknown (a column an unfitted oneHot will create)."""
    where = f"spec.transforms[{index}]"
    if step.op in ("derive", "filter"):
        if not step.expression:
            raise TransformError(f"{where}.expression", f"{step.op} needs an expression")
        try:
            return set(compile_expression(step.expression, list(types)).columns)
        except ExpressionError as error:
            if unknown_ok:
                return None
            raise TransformError(f"{where}.expression", str(error)) from error
    if not step.columns:
        raise TransformError(f"{where}.columns", f"{step.op} needs at least one column")
    unknown = [name for name in step.columns if name not in types]
    if unknown and unknown_ok:
        return None
    if unknown:
        raise TransformError(
            f"{where}.columns",
            f"column(s) {', '.join(unknown)} not defined at this step "
            f"(columns: {', '.join(types)})",
        )
    return set(step.columns)


def check_step(index: int, step: Transform, types: dict[str, str], spec: FeatureSetSpec) -> None:
    where = f"spec.transforms[{index}]"
    schema = spec.schema_
    protected = protected_columns(spec)
    if step.op == "derive":
        if not step.output:
            raise TransformError(f"{where}.output", "derive needs the name of its output column")
        if step.output in protected:
            raise TransformError(
                f"{where}.output",
                f"{step.output!r} is the {_role(spec, step.output)} and cannot be derived; "
                "name the output otherwise",
            )
        expression = compile_expression(step.expression or "", list(types))
        if schema.target and schema.target in expression.columns:
            raise TransformError(
                f"{where}.expression",
                f"a derived feature cannot read the target "
                f"{schema.target!r}: serving does not have it",
            )
        return
    if step.op not in _COLUMN_OPS:
        return
    for name in step.columns or []:
        if name in protected:
            raise TransformError(
                f"{where}.columns",
                f"{name!r} is the {_role(spec, name)}, which passes through untransformed",
            )
        column_type = types[name]
        allowed = _allowed_types(step)
        if column_type not in allowed:
            raise TransformError(
                f"{where}.columns",
                f"{step.op} cannot take {name!r} of type "
                f"{column_type} (it takes {', '.join(allowed)})",
            )
    if step.op == "impute":
        _check_impute(where, step, types)
    if step.op == "clip" and step.min is None and step.max is None:
        raise TransformError(f"{where}.min", "clip needs min, max or both")


def _allowed_types(step: Transform) -> tuple[str, ...]:
    if step.op in ("oneHot", "ordinal"):
        return _CATEGORICAL
    if step.op == "impute" and step.strategy in ("mostFrequent", "constant"):
        return ("float", "int", "bool", "category", "string")
    return _NUMERIC


def _check_impute(where: str, step: Transform, types: dict[str, str]) -> None:
    if step.strategy is None:
        raise TransformError(
            f"{where}.strategy", "impute needs a strategy: mean, median, mostFrequent or constant"
        )
    if step.strategy != "constant":
        return
    if step.value is None:
        raise TransformError(f"{where}.value", "the constant strategy needs a value")
    for name in step.columns or []:
        try:
            parse_value(step.value, types[name])
        except ValueError as error:
            raise TransformError(f"{where}.value", f"{error} (column {name!r})") from error


def advance(
    step: Transform, fitted: dict[str, Any] | None, types: dict[str, str]
) -> dict[str, str]:
    """The columns after `step` (before fitting, a oneHot only removes its columns)."""
    if step.op == "derive":
        return {**types, step.output or "": step.output_type or "float"}
    if step.op == "filter":
        return types
    columns = set(step.columns or [])
    if step.op == "oneHot":
        outputs = (fitted or {}).get("outputs", {})
        result: dict[str, str] = {}
        for name, kind in types.items():
            if name in columns:
                result.update(dict.fromkeys(outputs.get(name, []), "float"))
            else:
                result[name] = kind
        return result
    if step.op == "ordinal":
        return {name: "int" if name in columns else kind for name, kind in types.items()}
    if step.op == "impute" and step.strategy in ("mostFrequent", "constant"):
        return types
    return {name: "float" if name in columns else kind for name, kind in types.items()}


def protected_columns(spec: FeatureSetSpec) -> list[str]:
    schema = spec.schema_
    return [name for name in (schema.entity_key, schema.event_time, schema.target) if name]


def _role(spec: FeatureSetSpec, column: str) -> str:
    schema = spec.schema_
    roles = {
        schema.entity_key: "entity key (spec.schema.entityKey)",
        schema.event_time: "event time (spec.schema.eventTime)",
        schema.target: "target (spec.schema.target)",
    }
    return roles.get(column, "a protected column")
