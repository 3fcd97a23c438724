"""Rejected rows: what a person reads when there are too many, and what the run keeps of them."""

from __future__ import annotations

import pyarrow as pa
import pytest

from conveyor.api.v1alpha1.featureset import FeatureSchema, FeatureSetSpec
from conveyor.features.conform import conform
from conveyor.features.transforms import fit_transforms
from conveyor.jobs.materialize.errors import SourceNotFound, TooManyRejects
from conveyor.jobs.materialize.rejects import TRANSFORMS_ORIGIN, RejectTally, check_rejects

URI = "s3://conveyor/features/ml/iris/snapshots/abc/rejects.jsonl"
SCHEMA = FeatureSchema.model_validate(
    {"columns": [{"name": "x", "type": "float", "max": 5}, {"name": "y", "type": "float"}]}
)


def tally_of(*texts: str) -> RejectTally:
    """A tally of conformed batches, as the read phase keeps it."""
    tally = RejectTally(limit=3)
    for text in texts:
        values = text.split(",")
        result = conform(pa.table({"x": values, "y": ["1"] * len(values)}), SCHEMA, max_samples=3)
        samples = [
            {"source": "s3://raw/a.csv", "row": s.row, "reason": s.reason} for s in result.samples
        ]
        tally.add(result.rejected, samples, result.reasons, result.examples)
    return tally


def test_too_many_rejects_list_each_distinct_reason_with_its_count_and_point_to_the_sample() -> (
    None
):
    tally = tally_of("7,8,9,1", "6,abc,2,10")

    with pytest.raises(TooManyRejects) as failed:
        check_rejects(tally, 8, 0.1, objects=1, rejects_uri=URI)

    message = str(failed.value)
    assert message.startswith("6 of 8 rows (75.00%) were rejected, more than ")
    assert "spec.validation.maxRejectRatio 10.00%" in message
    assert (
        "By reason: x: above max 5 (5 rows, e.g. 7.0); x: not a valid float (1 row, e.g. 'abc')."
        in message
    )
    assert message.count("above max 5") == 1  # one line per reason, not one per sampled row
    assert f"The first 3 rejected rows, with their reasons: {URI}." in message
    assert [sample["reason"] for sample in tally.samples] == [
        "x: 7.0 is above max 5",
        "x: 8.0 is above max 5",
        "x: 9.0 is above max 5",
    ]


def test_rejects_within_the_ratio_pass_and_all_rows_rejected_never_do() -> None:
    check_rejects(tally_of("7,1,2,3,4,5,1,2,3,4"), 10, 0.1, objects=1, rejects_uri=URI)
    with pytest.raises(TooManyRejects):
        check_rejects(tally_of("7,8"), 2, 1.0, objects=1, rejects_uri=URI)
    with pytest.raises(SourceNotFound, match="2 object"):
        check_rejects(RejectTally(limit=3), 0, 0.1, objects=2, rejects_uri=URI)


def test_rows_a_transform_rejects_join_the_tally_with_their_conformed_values() -> None:
    spec = FeatureSetSpec.model_validate(
        {
            "sources": [{"name": "raw", "uri": "s3://raw/x.csv"}],
            "schema": SCHEMA.to_wire(),
            "transforms": [{"op": "derive", "output": "big", "expression": "y ** 10 ** 10"}],
        }
    )
    batch = conform(pa.table({"x": ["1", "2", "3"], "y": ["1", "2", "3"]}), SCHEMA).batch
    fitted = fit_transforms(spec, lambda: [batch])
    tally = tally_of("7")

    tally.add_transform_rejects(batch, fitted.apply_with_rows(batch).rejected)

    assert tally.rejected == 3
    assert tally.samples[1:] == [
        {
            "source": TRANSFORMS_ORIGIN,
            "row": {"x": 2.0, "y": 2.0},
            "reason": "spec.transforms[0] (derive 'big' = y ** 10 ** 10): inf is not a finite number",
        },
        {
            "source": TRANSFORMS_ORIGIN,
            "row": {"x": 3.0, "y": 3.0},
            "reason": "spec.transforms[0] (derive 'big' = y ** 10 ** 10): inf is not a finite number",
        },
    ]
    assert tally.by_reason() == [
        {
            "reason": "spec.transforms[0] (derive 'big'): not a finite number",
            "rows": 2,
            "example": "inf",
        },
        {"reason": "x: above max 5", "rows": 1, "example": "7.0"},
    ]
