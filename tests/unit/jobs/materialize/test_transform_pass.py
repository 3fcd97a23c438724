"""The drift of the model's inputs: what the previous snapshot's model would read now."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from conveyor.api.v1alpha1.featureset import FeatureSetSpec
from conveyor.features.profile import Profile
from conveyor.features.transforms import FittedTransforms, fit_transforms
from conveyor.jobs.materialize.transform_pass import (
    DriftView,
    features_profile_builder,
    raw_profile_builder,
)

SPEC = FeatureSetSpec.model_validate(
    {
        "sources": [{"name": "raw", "uri": "s3://raw/x.csv"}],
        "schema": {
            "entityKey": "id",
            "columns": [{"name": "id", "type": "int"}, {"name": "width", "type": "float"}],
        },
        "transforms": [{"op": "standardScale", "columns": ["width"]}],
    }
)


def rows(count: int, seed: int) -> pa.RecordBatch:
    """Widths in steps of 0.1, as iris's petals: many rows share each value."""
    rng = np.random.default_rng(seed)
    widths = np.round(rng.choice([0.2, 0.3, 1.3, 1.5, 1.8, 2.3], count), 1)
    return pa.record_batch({"id": np.arange(count), "width": widths})


def snapshot(batch: pa.RecordBatch) -> tuple[FittedTransforms, Profile]:
    fitted = fit_transforms(SPEC, lambda: [batch])
    raw, features = (
        raw_profile_builder(SPEC.schema_),
        features_profile_builder(SPEC.schema_, fitted),
    )
    raw.add(batch)
    features.add(fitted.apply(batch).select(fitted.feature_columns))
    return fitted, raw.finish(features=features)


def test_inputs_drift_as_the_previous_model_would_see_them_not_as_each_refit_makes_them() -> None:
    first_rows, second_rows = rows(400, seed=1), rows(600, seed=2)  # the same distribution
    first_fit, first = snapshot(first_rows)
    _, second = snapshot(second_rows)
    own_scale = features_profile_builder(SPEC.schema_, first_fit)
    own_scale.add(fit_transforms(SPEC, lambda: [second_rows]).apply(second_rows).select(["width"]))
    assert first.features is not None and second.features is not None
    refit = own_scale.finish(previous=first.features).columns["width"].drift_score
    assert refit > 0.2  # each snapshot's own scaling: ties cross the deciles, a false alarm

    view = DriftView(first_fit, features_profile_builder(SPEC.schema_, first_fit))
    view.add(second_rows)
    view.score(first, second.features)

    raw = raw_profile_builder(SPEC.schema_)
    raw.add(second_rows)
    raw_drift = raw.finish(previous=first).columns["width"].drift_score
    assert second.features.columns["width"].drift_score == raw_drift < 0.05


def test_rows_the_previous_transforms_cannot_read_give_no_drift() -> None:
    first_fit, first = snapshot(rows(100, seed=1))
    view = DriftView(first_fit, features_profile_builder(SPEC.schema_, first_fit))
    _, second = snapshot(rows(100, seed=2))
    assert second.features is not None

    view.add(pa.record_batch({"id": [1, 2], "length": [0.5, 0.7]}))  # the schema changed
    view.score(first, second.features)

    assert view.failed and "width" in view.failed
    assert second.features.columns["width"].drift_score is None
