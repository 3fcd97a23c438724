"""Pass 2 of a materialize run: the spilled rows through the fitted transforms, and the profiles.

`transform_spill` scans the spill once: each batch goes through `FittedTransforms.apply_with_rows`
into the data/ parts; the features (the model's inputs) are profiled in a thread of their own,
in row order (the profile's sample is seeded by it); the raw rows are profiled, and the rows kept
are written to raw/, unless both were done while reading. Rows a transform gives a non-finite
result are rejects (features/transforms.py), counted and sampled with the schema's.

raw/ written while reading assumed every row is kept; when a transform rejected some,
`rewrite_raw` writes it again without them (a third pass, only then), so raw/ and data/ stay row
for row.

The features' drift: each snapshot fits its own transforms, so its features and the previous
snapshot's are on different scales (a refitted scaler moves every value a little, and on
discrete data that alone reads as strong drift). What the drift of the model's inputs means is
"what the model trained on the previous snapshot would read now": this snapshot's rows through
the previous snapshot's fitted transforms (`DriftView`), profiled beside the rest and compared
with the previous snapshot's features. Serving drift compares the same way: live rows through
the model's own transforms against its training snapshot's features.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from ...api.v1alpha1.featureset import FeatureSchema
from ...clients.s3 import ObjectStorage, StorageError
from ...features.profile import Profile, ProfileBuilder, drift_scores, feature_sample_size
from ...features.transforms import FittedTransforms
from .parts import InOrder, PartsWriter, prefetch
from .rejects import RejectTally
from .spill import scan_spill

__all__ = [
    "DriftView",
    "PassOutputs",
    "features_profile_builder",
    "raw_profile_builder",
    "rewrite_raw",
    "transform_spill",
]

logger = logging.getLogger(__name__)

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
class DriftView:
    """This snapshot's rows as the previous snapshot's transforms make them (module docstring)."""

    transforms: FittedTransforms
    """The previous snapshot's fitted transforms."""
    profile: ProfileBuilder
    failed: str | None = field(default=None, init=False)
    """Why the previous transforms could not take these rows (then there is no drift)."""

    @classmethod
    def load(
        cls,
        storage: ObjectStorage,
        bucket: str,
        key: str,
        schema: FeatureSchema,
        typed: pa.Schema,
    ) -> DriftView | None:
        """From the previous snapshot's transforms.json at `key`; None when they are unreadable
        or cannot take rows of this schema (a changed definition): then no drift is scored."""
        try:
            previous = FittedTransforms.from_json(json.loads(storage.get_bytes(bucket, key)))
            previous.apply(typed.empty_table())
        except (StorageError, ValueError, pa.ArrowException) as error:
            logger.warning("No drift of the model's inputs (%s): %s", key, error)
            return None
        return cls(previous, features_profile_builder(schema, previous))

    def add(self, batch: pa.RecordBatch) -> None:
        if self.failed:
            return
        try:
            seen = self.transforms.apply(batch)
        except (ValueError, pa.ArrowException) as error:
            self.failed = str(error)
            logger.warning("No drift of the model's inputs: %s", error)
            return
        self.profile.add(seen.select(_model_inputs(self.transforms, self.profile, seen)))

    def score(self, previous: Profile, features: Profile) -> None:
        """Set the drift score of each of `features` against the previous snapshot's."""
        if self.failed or previous.features is None:
            return
        for name, score in drift_scores(previous.features, self.profile.finish()).items():
            if name in features.columns:
                features.columns[name].drift_score = score


@dataclass
class PassOutputs:
    """Where pass 2 writes: None for what was built while reading, or is not wanted."""

    data: PartsWriter
    raw: PartsWriter | None
    raw_profile: ProfileBuilder | None
    features_profile: ProfileBuilder
    drift_view: DriftView | None = None


def transform_spill(
    spill_path: Path, fitted: FittedTransforms, outputs: PassOutputs, tally: RejectTally
) -> int:
    """Pass 2 over the spill into `outputs`; returns the rows the transforms rejected."""
    rejected = 0
    raw_profile, view = outputs.raw_profile, outputs.drift_view
    with (
        # In order, each in its own thread (a profile's sample is seeded by row order).
        InOrder(raw_profile.add if raw_profile else _ignore, name="conveyor-profile") as raw,
        InOrder(outputs.features_profile.add, name="conveyor-profile-features") as features,
        InOrder(view.add if view else _ignore, name="conveyor-profile-drift") as drift,
    ):
        for batch in prefetch(scan_spill(spill_path)):
            if raw_profile is not None:
                raw.submit(batch)
            if view is not None:
                drift.submit(batch)
            applied = fitted.apply_with_rows(batch, max_reasons=tally.room)
            if applied.rejected.count:
                tally.add_transform_rejects(batch, applied.rejected)
                rejected += applied.rejected.count
            outputs.data.write(applied.features)
            inputs = _model_inputs(fitted, outputs.features_profile, applied.features)
            features.submit(applied.features.select(inputs))
            if outputs.raw is not None:
                # Steps keep row order, so as many positions as rows means every row.
                kept = applied.kept
                outputs.raw.write(batch if len(kept) == batch.num_rows else batch.take(kept))
        raw.finish()
        features.finish()
        drift.finish()
    return rejected


def rewrite_raw(spill_path: Path, fitted: FittedTransforms, raw: PartsWriter) -> None:
    """raw/ again from the spill: the rows the transforms keep (the caller cleared raw/)."""
    with raw:
        for batch in prefetch(scan_spill(spill_path)):
            kept = fitted.apply_with_rows(batch, max_reasons=0).kept
            raw.write(batch if len(kept) == batch.num_rows else batch.take(kept))


def _model_inputs(
    fitted: FittedTransforms, builder: ProfileBuilder, features: pa.Table
) -> list[str]:
    """The feature columns, and the target when present (it feeds the correlations)."""
    wanted = [*fitted.feature_columns, *([builder.target] if builder.target else [])]
    return [name for name in wanted if name in features.column_names]


def _ignore(batch: object) -> None:
    """Nothing to build of this in pass 2."""
