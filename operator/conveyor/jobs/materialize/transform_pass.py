"""Pass 2 of a materialize run: the spilled rows through the fitted transforms, and the profiles.

`transform_spill` scans the spill once: each batch goes through `FittedTransforms.apply_with_rows`
into the data/ parts; the features (the model's inputs) are profiled in a thread of their own,
in row order (the profile's sample is seeded by it); the raw rows are profiled, and the rows kept
are written to raw/, unless both were done while reading. Rows a transform gives a non-finite
result are rejects (features/transforms.py), counted and sampled with the schema's.

raw/ written while reading assumed every row is kept; when a transform rejected some,
`rewrite_raw` writes it again without them (a third pass, only then), so raw/ and data/ stay row
for row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...api.v1alpha1.featureset import FeatureSchema
from ...features.profile import ProfileBuilder, feature_sample_size
from ...features.transforms import FittedTransforms
from .parts import InOrder, PartsWriter, prefetch
from .rejects import RejectTally
from .spill import scan_spill

__all__ = [
    "PassOutputs",
    "features_profile_builder",
    "raw_profile_builder",
    "rewrite_raw",
    "transform_spill",
]

_CATEGORICAL_TYPES = ("category", "string", "bool")


def raw_profile_builder(schema: FeatureSchema) -> ProfileBuilder:
    """The profile of the conformed rows, with the schema's roles."""
    categorical = [c.name for c in schema.columns if c.type in _CATEGORICAL_TYPES]
    return ProfileBuilder(
        target=schema.target,
        categorical=categorical,
        entity_key=schema.entity_key,
        event_time=schema.event_time,
    )


def features_profile_builder(schema: FeatureSchema, fitted: FittedTransforms) -> ProfileBuilder:
    """The profile of the model's inputs: the target feeds the correlations only, and the sample
    per column shrinks as the columns multiply (a oneHot may make thousands)."""
    target = next((c for c in schema.columns if c.name == schema.target), None)
    categorical = [target.name] if target and target.type in _CATEGORICAL_TYPES else []
    return ProfileBuilder(
        target=schema.target,
        categorical=categorical,
        include_target=False,
        sample_size=feature_sample_size(len(fitted.feature_columns)),
        seed=1,  # its own stream: the raw profile's sample stays what it was
    )


@dataclass
class PassOutputs:
    """Where pass 2 writes: None for what was built while reading."""

    data: PartsWriter
    raw: PartsWriter | None
    raw_profile: ProfileBuilder | None
    features_profile: ProfileBuilder


def transform_spill(
    spill_path: Path, fitted: FittedTransforms, outputs: PassOutputs, tally: RejectTally
) -> int:
    """Pass 2 over the spill into `outputs`; returns the rows the transforms rejected."""
    rejected = 0
    target = outputs.features_profile.target
    model_inputs = [*fitted.feature_columns, *([target] if target else [])]
    raw_profile = outputs.raw_profile
    with (
        # In order, each in its own thread (a profile's sample is seeded by row order).
        InOrder(raw_profile.add if raw_profile else _ignore, name="conveyor-profile") as raw,
        InOrder(outputs.features_profile.add, name="conveyor-profile-features") as features,
    ):
        for batch in prefetch(scan_spill(spill_path)):
            if raw_profile is not None:
                raw.submit(batch)
            applied = fitted.apply_with_rows(batch, max_reasons=tally.room)
            if applied.rejected.count:
                tally.add_transform_rejects(batch, applied.rejected)
                rejected += applied.rejected.count
            outputs.data.write(applied.features)
            present = [name for name in model_inputs if name in applied.features.column_names]
            features.submit(applied.features.select(present))
            if outputs.raw is not None:
                # Steps keep row order, so as many positions as rows means every row.
                kept = applied.kept
                outputs.raw.write(batch if len(kept) == batch.num_rows else batch.take(kept))
        raw.finish()
        features.finish()
    return rejected


def rewrite_raw(spill_path: Path, fitted: FittedTransforms, raw: PartsWriter) -> None:
    """raw/ again from the spill: the rows the transforms keep (the caller cleared raw/)."""
    with raw:
        for batch in prefetch(scan_spill(spill_path)):
            kept = fitted.apply_with_rows(batch, max_reasons=0).kept
            raw.write(batch if len(kept) == batch.num_rows else batch.take(kept))


def _ignore(batch: object) -> None:
    """No raw profile to build in pass 2."""
