"""The phases of `conveyor materialize`.

all (one pod)
    1. stream every source object → conform() → typed rows into a local spill file; count
       rejects per reason and keep a sample (memory: a few record batches); unless
       de-duplicating, the raw profile and the raw/ parts (uploaded as they are finished) are
       built meanwhile;
    2. check the reject ratio — over `maxRejectRatio` the run fails (rejects.py);
    3. de-duplicate by entity key (hash partitions on local disk, see spill.py);
    4. fit the transforms by scanning the spill (as many passes as the steps need);
    5. scan again: apply the transforms, stream Parquet parts to S3, profile the features (and
       the raw rows, and write raw/, if step 1 could not), while the raw columns are drawn;
       rows a transform gives a non-finite result are rejects: the ratio is checked again, and
       a raw/ written in step 1 is written again without them;
    6. upload transforms.json, profile.json, report.html, rejects.jsonl — then manifest.json.
partition (Indexed Job pod i of N)
    steps 1 for the objects of partition i, staged as Parquet plus stats.json under
    staging/<id>/part-<i>/ (stats.json last: it marks the part complete).
combine (one pod, after the Indexed Job)
    sums the partitions' counts for step 2, copies the staged rows into a local spill, runs
    steps 3-6 and removes the staging prefix.

A snapshot is visible only through its manifest; a failure before the manifest removes what
this run wrote, except, after too many rejects, rejects.jsonl: the sample the failure's message
points to. An existing manifest means the snapshot is already complete: nothing is written.
"""

from __future__ import annotations

import functools
import json
import logging
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from ...api.v1alpha1 import FeatureSetSpec
from ...clients.s3 import ObjectStorage, S3Object, StorageError
from ...contracts.layouts import SnapshotLayout
from ...contracts.manifest import SnapshotManifest
from ...features.conform import raw_arrow_schema
from ...features.listing import fingerprint, source_listing
from ...features.profile import Profile, ProfileBuilder
from ...features.snapshots import snapshot_id
from ...features.transforms import FittedTransforms, fit_transforms
from .errors import (
    InvalidConfiguration,
    PartitionsIncomplete,
    SourceNotFound,
    TooManyRejects,
    from_storage_error,
)
from .parts import PartsWriter
from .rejects import RejectTally, check_rejects
from .reporting import draw_columns, rejects_jsonl, render
from .settings import JobSettings
from .snapshot import json_bytes, manifest_document
from .sources import (
    LogsToRead,
    ReadPlan,
    conformed_batches,
    partition_plans,
    read_plans,
)
from .spill import ReadAlong, SpillWriter, deduplicate_spill, keep_latest, scan_spill
from .staging import (
    Segment,
    in_read_order,
    partition_stats,
    read_partition_stats,
    staged_batches,
    staged_parts,
)
from .transform_pass import (
    DriftView,
    PassOutputs,
    features_profile_builder,
    raw_profile_builder,
    rewrite_raw,
    transform_spill,
)

__all__ = ["materialize"]

logger = logging.getLogger(__name__)


def materialize(settings: JobSettings) -> dict[str, Any]:
    """Run the phase `settings.phase`; returns the success payload, raises MaterializeError."""
    try:
        with ObjectStorage(settings.s3) as storage:
            return _Run(settings, storage).run()
    except StorageError as error:
        raise from_storage_error(error) from error


class _Run:
    def __init__(self, settings: JobSettings, storage: ObjectStorage) -> None:
        self.settings = settings
        self.spec: FeatureSetSpec = settings.spec
        self.schema = settings.spec.schema_
        self.storage = storage
        self.tally = RejectTally(limit=settings.spec.validation.reject_sample_size)
        self.typed_schema = raw_arrow_schema(self.schema)

    def run(self) -> dict[str, Any]:
        self.listing = source_listing(
            self.storage, self.spec, self.settings.namespace, logs_until=self.settings.logs_until
        )
        self._require_sources()
        self.fingerprint = fingerprint(self.listing)
        sid = snapshot_id(self.spec, self.fingerprint)
        self.layout = SnapshotLayout(
            self.settings.s3.bucket, self.settings.namespace, self.settings.name, sid
        )
        existing = self._existing_manifest()
        if existing is not None:
            print(f"snapshot {sid} already exists", flush=True)
            if self.settings.phase == "combine":
                self.storage.delete_prefix(self.layout.bucket, self.layout.staging)
            return {"snapshot": existing.summary(), "existing": True}
        logger.info(
            "Materializing FeatureSet %s/%s into snapshot %s (phase %s, %d source objects)",
            self.settings.namespace,
            self.settings.name,
            sid,
            self.settings.phase,
            len(self.listing),
        )
        if self.settings.phase == "partition":
            return self._partition()
        try:
            with tempfile.TemporaryDirectory(prefix="conveyor-materialize-") as workdir:
                if self.settings.phase == "combine":
                    return self._combine(Path(workdir))
                return self._all(Path(workdir))
        except TooManyRejects:
            self._remove_incomplete()
            self._keep_rejects()  # the sample the failure's message points to
            raise
        except BaseException:
            # raw/ parts go up while the rows are read, before the reject check: whatever
            # failed, no object of this snapshot stays behind.
            self._remove_incomplete()
            raise

    # Phases ------------------------------------------------------------------------------------

    def _all(self, workdir: Path) -> dict[str, Any]:
        spill_path = workdir / "typed.arrow"
        plans = read_plans(self.spec.sources, self.listing)
        started = time.perf_counter()
        with self._read_along(workdir) as along:
            with SpillWriter(spill_path, self.typed_schema) as spill:
                for batch in self._conformed(plans, with_logs=True):
                    spill.write(batch)
                    along.add(batch)
                along.finish()
            logger.info(
                "Read and conformed %d rows (%d rejected) in %.1f s",
                spill.rows,
                self.tally.rejected,
                time.perf_counter() - started,
            )
            self._check_rejects(spill.rows + self.tally.rejected)
            return self._write_snapshot(spill_path, spill.rows, workdir, along)

    def _partition(self) -> dict[str, Any]:
        index, partitions = self.settings.index, self.settings.partitions
        every_plan = read_plans(self.spec.sources, self.listing)
        plans = partition_plans(self.storage, every_plan, partitions, index)
        prefix = self.layout.staging_part(index)
        bucket = self.layout.bucket
        segments: list[Segment] = []
        with (
            tempfile.TemporaryDirectory(prefix="conveyor-materialize-") as spool,
            PartsWriter(
                self.storage, bucket, prefix + "data-", self.typed_schema, spool=Path(spool)
            ) as parts,
        ):
            places = {plan.object.key: place for place, plan in enumerate(every_plan)}
            for plan in [*plans, None]:  # None: the prediction logs, read last by partition 0
                if plan is None and index != 0:
                    break
                rows = 0
                for batch in self._conformed([plan] if plan else [], with_logs=plan is None):
                    parts.write(batch)
                    rows += batch.num_rows
                place = places[plan.object.key] if plan else len(every_plan)
                group = plan.row_groups[0] if plan and plan.row_groups else 0
                segments.append(Segment(place, group, index, rows))
        stats = partition_stats(
            index=index,
            partitions=partitions,
            rows=parts.rows,
            tally=self.tally,
            objects=[plan.object.key for plan in plans],
            segments=segments,
        )
        self.storage.put_bytes(
            self.layout.bucket, prefix + "stats.json", json_bytes(stats), "application/json"
        )
        logger.info(
            "Staged partition %d/%d: %d rows, %d rejected",
            index,
            partitions,
            parts.rows,
            self.tally.rejected,
        )
        return {
            "partition": {
                "index": index,
                "partitions": partitions,
                "rows": parts.rows,
                "rejected": self.tally.rejected,
                "snapshot": self.layout.id,
            }
        }

    def _combine(self, workdir: Path) -> dict[str, Any]:
        bucket, partitions = self.layout.bucket, self.settings.partitions
        staged = self.storage.list_objects(bucket, self.layout.staging)
        stats_keys = [self.layout.staging_part(i) + "stats.json" for i in range(partitions)]
        present = {item.key for item in staged}
        missing = [i for i, key in enumerate(stats_keys) if key not in present]
        if missing:
            raise PartitionsIncomplete(
                f"Partitions {', '.join(map(str, missing))} of {partitions} have not staged their "
                f"rows under {self.layout.uri(self.layout.staging)}; run the partition Indexed "
                "Job to completion (with the same --partitions) before combine."
            )
        rows_staged = 0
        staged_segments: dict[int, list[list[int]]] = {}
        for index, key in enumerate(stats_keys):
            stats = json.loads(self.storage.get_bytes(bucket, key))
            rows, staged_segments[index] = read_partition_stats(stats, index, self.tally)
            rows_staged += rows
        try:
            self._check_rejects(rows_staged + self.tally.rejected)
            result = self._combine_staged(workdir, staged, staged_segments)
        except TooManyRejects:  # no retry can help: the staged rows are of no further use
            self.storage.delete_prefix(bucket, self.layout.staging)
            raise
        self.storage.delete_prefix(bucket, self.layout.staging)
        return result

    def _combine_staged(
        self, workdir: Path, staged: list[S3Object], segments: dict[int, list[list[int]]]
    ) -> dict[str, Any]:
        """Steps 3-6 over the staged rows, read back in the order a single Job reads them."""
        parts = staged_parts(staged, {i: self.layout.staging_part(i) for i in segments})
        in_order = in_read_order(segments)
        spill_path = workdir / "typed.arrow"
        with self._read_along(workdir) as along:
            with SpillWriter(spill_path, self.typed_schema) as spill:
                for batch in staged_batches(
                    self.storage, self.layout.bucket, parts, in_order, self._batch_rows
                ):
                    spill.write(typed := batch.cast(self.typed_schema))
                    along.add(typed)
                along.finish()
            return self._write_snapshot(spill_path, spill.rows, workdir, along)

    # Reading -----------------------------------------------------------------------------------

    @property
    def _batch_rows(self) -> int:
        return self.spec.materialization.batch_rows

    def _conformed(self, plans: list[ReadPlan], *, with_logs: bool) -> Iterator[pa.RecordBatch]:
        settings = self.settings
        logs = (
            LogsToRead(settings.s3.bucket, settings.namespace, settings.logs_until)
            if with_logs
            else None
        )
        return conformed_batches(self.storage, self.spec, plans, self.tally, self._batch_rows, logs)

    def _require_sources(self) -> None:
        matched = {item.source for item in self.listing}
        for index, source in enumerate(self.spec.sources):
            if source.name not in matched:
                raise SourceNotFound(
                    f"No object matches source {source.name!r} ({source.uri}) at "
                    f"{self.storage.describe()}: upload the data, or fix "
                    f"spec.sources[{index}].uri."
                )

    def _existing_manifest(self) -> SnapshotManifest | None:
        layout = self.layout
        if not self.storage.exists(layout.bucket, layout.manifest):
            return None
        data = json.loads(self.storage.get_bytes(layout.bucket, layout.manifest))
        return SnapshotManifest.from_json(data, source=layout.uri(layout.manifest))

    def _check_rejects(self, total: int) -> None:
        """Fail when more than maxRejectRatio of the `total` rows read were rejected."""
        check_rejects(
            self.tally,
            total,
            self.spec.validation.max_reject_ratio,
            objects=len(self.listing),
            rejects_uri=self.layout.uri(self.layout.rejects),
        )
        if self.tally.rejected:
            logger.warning("Rejected %d of %d rows", self.tally.rejected, total)

    # Writing -----------------------------------------------------------------------------------

    def _read_along(self, workdir: Path) -> ReadAlong:
        """What can be built while the rows are spilled, so pass 2 has less to do.

        The profile, when pass 2 would see the same rows in the same batches (no de-duplication);
        the raw/ parts too when every row should be kept (no filter step; should a transform
        reject rows after all, pass 2 has raw/ written again). Those go up as they are finished,
        before the reject check: the manifest, written last, is what makes a snapshot, and a
        failed run removes them (see `run`).
        """
        if self._deduplicates:
            return ReadAlong(None, None)
        raw_parts = None
        if not any(step.op == "filter" for step in self.spec.transforms):
            raw_parts = self._raw_parts_writer(workdir)
        return ReadAlong(raw_profile_builder(self.schema), raw_parts)

    @property
    def _deduplicates(self) -> bool:
        return bool(self.spec.deduplicate and self.schema.entity_key)

    def _raw_parts_writer(self, workdir: Path, spool_name: str = "raw") -> PartsWriter:
        # raw/ keeps the conformed rows behind the features, row for row: a champion trained
        # on another snapshot (other fitted transforms) is scored on them through its own.
        return self._parts_writer(workdir / spool_name, self.layout.raw, self.typed_schema)

    def _parts_writer(self, spool: Path, prefix: str, schema: pa.Schema) -> PartsWriter:
        spool.mkdir()
        return PartsWriter(
            storage=self.storage,
            bucket=self.layout.bucket,
            prefix=prefix + "part-",
            schema=schema,
            spool=spool,
            always_one=True,
        )

    def _write_snapshot(
        self, spill_path: Path, rows: int, workdir: Path, along: ReadAlong
    ) -> dict[str, Any]:
        input_rows = rows + self.tally.rejected
        key = self.schema.entity_key
        if self._deduplicates and key is not None:
            event_time = self.schema.event_time
            spill_path, rows = deduplicate_spill(
                spill_path,
                self.typed_schema,
                key,
                lambda table: keep_latest(table, key, event_time),
                workdir,
            )
            logger.info("De-duplicated by %s: %d rows remain", self.schema.entity_key, rows)
        started = time.perf_counter()
        fitted = self._fit(spill_path)
        logger.info(
            "Fitted %d transforms in %.1f s",
            len(self.spec.transforms),
            time.perf_counter() - started,
        )
        previous = self._previous_profile()
        manifest = self._upload(spill_path, fitted, previous, input_rows, workdir, along)
        logger.info(
            "Snapshot %s complete: %d rows at %s", self.layout.id, manifest.rows, manifest.uri
        )
        return {"snapshot": manifest.summary()}

    def _fit(self, spill_path: Path) -> FittedTransforms:
        try:
            return fit_transforms(self.spec, lambda: scan_spill(spill_path))
        except ValueError as error:
            raise InvalidConfiguration(f"Cannot fit spec.transforms: {error}") from error

    def _previous_profile(self) -> Profile | None:
        previous = self.settings.previous_snapshot
        if not previous or previous == self.layout.id:
            return None
        key = self.layout.sibling(previous).profile
        try:
            return Profile.from_json(json.loads(self.storage.get_bytes(self.layout.bucket, key)))
        except StorageError as error:
            logger.warning("No drift scores: previous profile %s unreadable: %s", key, error)
            return None

    def _upload(
        self,
        spill_path: Path,
        fitted: FittedTransforms,
        previous: Profile | None,
        input_rows: int,
        workdir: Path,
        along: ReadAlong,
    ) -> SnapshotManifest:
        layout, bucket = self.layout, self.layout.bucket
        output_schema = fitted.apply(self.typed_schema.empty_table()).schema
        created = datetime.now(UTC).replace(microsecond=0)  # one time: manifest and report
        builder = along.builder or raw_profile_builder(self.schema)
        features = features_profile_builder(self.schema, fitted)
        view = None
        if previous is not None and self.settings.previous_snapshot:
            key = layout.sibling(self.settings.previous_snapshot).transforms
            view = DriftView.load(self.storage, bucket, key, self.schema, self.typed_schema)
        with ThreadPoolExecutor(1, thread_name_prefix="conveyor-report") as reporter:
            # A raw profile built while reading is complete: its columns are drawn beside pass 2.
            draw = functools.partial(draw_columns, builder, previous, layout.id)
            drawing = reporter.submit(draw) if along.builder else None
            parts, rejected = self._write_parts(
                spill_path, fitted, output_schema, workdir, along, builder, features, view
            )
            profile, drawn = drawing.result() if drawing else draw()
        if rejected:
            logger.warning("The transforms gave %d rows a non-finite result", rejected)
            self._check_rejects(input_rows)
            if along.raw_parts is not None:  # written while reading, with every row
                self.storage.delete_prefix(bucket, layout.raw)
                rewrite_raw(spill_path, fitted, self._raw_parts_writer(workdir, "raw-again"))
        profile.features = features.finish()
        if view is not None and previous is not None:
            view.score(previous, profile.features)
        profile.rejected, profile.reject_reasons = self.tally.rejected, self.tally.by_reason()
        title = f"FeatureSet {self.settings.namespace}/{self.settings.name}"
        html = render(
            profile, previous, drawn, title=title, samples=self.tally.samples, created=created
        )
        transforms_json = json_bytes(fitted.to_json())
        summary = profile.summary()
        summary["rejectedRows"] = self.tally.rejected
        for key, body, content_type in (
            (layout.transforms, transforms_json, "application/json"),
            (layout.profile, json_bytes(profile.to_json()), "application/json"),
            (layout.report, html.encode(), "text/html; charset=utf-8"),
            (layout.rejects, rejects_jsonl(self.tally.samples), "application/x-ndjson"),
        ):
            self.storage.put_bytes(bucket, key, body, content_type)
        manifest = manifest_document(
            layout,
            self.spec,
            created=created,
            listing=self.listing,
            source_fingerprint=self.fingerprint,
            output_schema=output_schema,
            feature_columns=fitted.feature_columns,
            rows=parts.rows,
            input_rows=input_rows,
            rejected=self.tally.rejected,
            transforms_json=transforms_json,
            profile_summary=summary,
            previous_snapshot=self.settings.previous_snapshot if previous else None,
            data_files=parts.files,
        )
        document = json_bytes(manifest.to_json())
        self.storage.put_bytes(bucket, layout.manifest, document, "application/json")
        return manifest

    def _write_parts(
        self,
        spill_path: Path,
        fitted: FittedTransforms,
        output_schema: pa.Schema,
        workdir: Path,
        along: ReadAlong,
        raw_profile: ProfileBuilder,
        features: ProfileBuilder,
        view: DriftView | None,
    ) -> tuple[PartsWriter, int]:
        """Pass 2 (transform_pass.py); the closed data/ writer and the rows rejected."""
        started = time.perf_counter()
        raw_parts = along.raw_parts or self._raw_parts_writer(workdir)
        with (
            self._parts_writer(workdir / "parts", self.layout.data, output_schema) as parts,
            raw_parts,  # written while reading or now, it is complete when pass 2 is
        ):
            outputs = PassOutputs(
                data=parts,
                raw=None if along.raw_parts else raw_parts,
                raw_profile=None if along.builder else raw_profile,
                features_profile=features,
                drift_view=view,
            )
            rejected = transform_spill(spill_path, fitted, outputs, self.tally)
        logger.info(
            "Profiled, transformed and wrote %d rows in %.1f s",
            parts.rows,
            time.perf_counter() - started,
        )
        return parts, rejected

    def _keep_rejects(self) -> None:
        """Best effort, after too many rejects: the sample the failure's message points to."""
        body, key = rejects_jsonl(self.tally.samples), self.layout.rejects
        try:
            self.storage.put_bytes(self.layout.bucket, key, body, "application/x-ndjson")
        except StorageError as error:
            logger.warning("Could not keep the rejected rows at %s: %s", key, error)

    def _remove_incomplete(self) -> None:
        """Best effort: a run that failed before the manifest leaves no objects behind."""
        try:
            if not self.storage.exists(self.layout.bucket, self.layout.manifest):
                self.storage.delete_prefix(self.layout.bucket, self.layout.prefix)
        except StorageError as error:
            logger.warning("Could not remove the incomplete snapshot %s: %s", self.layout.id, error)
