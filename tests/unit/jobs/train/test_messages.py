"""The training program's failures send a person to the field that fixes them."""

from __future__ import annotations

import pytest

from conveyor.jobs.train.program import what_to_fix


@pytest.mark.parametrize(
    ("complaint", "field"),
    [
        (
            "Cannot have number of splits n_splits=5 greater than the number of samples: 1.",
            "spec.split",
        ),
        ("n_splits=5 cannot be greater than the number of members in each class.", "spec.split"),
        (
            "This solver needs samples of at least 2 classes, but the data contains only one class",
            "spec.split",
        ),
        ("Input X contains infinity or a value too large for dtype('float64').", "spec.transforms"),
        ("Input X contains NaN.", "spec.transforms"),
        ("The 'max_depth' parameter of DecisionTreeClassifier must be an int", "spec.model.params"),
        ("financial nanoseconds", "spec.model.params"),
    ],
)
def test_an_estimators_complaint_points_at_the_field_to_fix(complaint: str, field: str) -> None:
    assert field in what_to_fix(complaint)
