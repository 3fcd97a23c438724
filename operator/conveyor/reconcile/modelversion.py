"""Reconcile a ModelVersion: check the registry record; serving builds on this."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from ..api.v1alpha1 import ModelVersion
from ..resources.conditions import ConditionUpdate
from .common import Outcome, describe_validation_error, invalid_spec

__all__ = ["reconcile_modelversion"]


def reconcile_modelversion(body: Mapping[str, Any]) -> Outcome:
    try:
        version = ModelVersion.from_body(body)
    except ValidationError as error:
        return invalid_spec(describe_validation_error(error))
    expected = f"{version.spec.model}-v{version.spec.version}"
    if version.name != expected:
        return invalid_spec(
            f"metadata.name must be {expected!r} (<spec.model>-v<spec.version>), "
            f"not {version.name!r}",
        )
    return Outcome(
        conditions=[
            ConditionUpdate(
                "Ready",
                "True",
                "Registered",
                f"Version {version.spec.version} of model {version.spec.model} is registered",
            )
        ]
    )
