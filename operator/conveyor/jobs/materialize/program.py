"""The phases of `conveyor materialize`.

all (one pod)
    1. stream every source object → conform() → typed rows into a local spill file; count
       rejects and keep a sample (memory: a few record batches); unless de-duplicating, the
       profile and the raw/ parts (uploaded as they are finished) are built meanwhile;
    2. check the reject ratio — over `maxRejectRatio` the run fails, and what it uploaded
       is removed;
    3. de-duplicate by entity key (hash partitions on local disk, see spill.py);
    4. fit the transforms by scanning the spill (as many passes as the steps need);
    5. scan again: apply the transforms, stream Parquet parts to S3 (and profile the rows and
       write raw/ if step 1 could not), while the report is drawn;
    6. upload transforms.json, profile.json, report.html, rejects.jsonl — then manifest.json.
partition (Indexed Job pod i of N)
    steps 1 for the objects of partition i, staged as Parquet plus stats.json under
    staging/<id>/part-<i>/ (stats.json last: it marks the part complete).
combine (one pod, after the Indexed Job)
    sums the partitions' counts for step 2, copies the staged rows into a local spill, runs
    steps 3-6 and removes the staging prefix.

A snapshot is visible only through its manifest; a failure before the manifest removes what
this run wrote. An existing manifest means the snapshot is already complete: nothing is written.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ...api.v1alpha1 import FeatureSetSpec
from ...clients.s3 import ObjectStorage, StorageError
from ...contracts.layouts import SnapshotLayout
from ...contracts.manifest import SnapshotManifest
from ...features.conform import ConformResult, conform, raw_arrow_schema
from ...features.conform import SchemaMismatch as ConformSchemaMismatch
from ...features.listing import fingerprint, source_listing
from ...features.profile import Profile, ProfileBuilder
from ...features.snapshots import snapshot_id
from ...features.transforms import FittedTransforms, deduplicate_latest, fit_transforms
from .errors import (
    InvalidConfiguration,
    PartitionsIncomplete,
    SchemaMismatch,
    SourceNotFound,
    TooManyRejects,
    from_storage_error,
)
from .parts import InOrder, PartsWriter, ordered_map, prefetch
from .settings import JobSettings
from .snapshot import json_bytes, manifest_document
from .sources import (
    ReadPlan,
    RejectTally,
    partition_plans,
    prediction_log_batches,
    read_plans,
    stream_raw_batches,
)
from .spill import ReadAlong, SpillWriter, deduplicate_spill, scan_spill

__all__ = ["materialize"]

logger = logging.getLogger(__name__)

CONFORM_WORKERS = 2
"""Batches conformed at once: pyarrow and numpy release the GIL, so threads use the cores."""


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
        self.listing = source_listing(self.storage, self.spec)
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
        except BaseException:
            # raw/ parts go up while the rows are read, before the reject check: whatever
            # failed (too many rejects included), no object of this snapshot stays behind.
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
            self._check_rejects(spill.rows)
            return self._write_snapshot(spill_path, spill.rows, workdir, along)

    def _partition(self) -> dict[str, Any]:
        index, partitions = self.settings.index, self.settings.partitions
        plans = partition_plans(
            self.storage, read_plans(self.spec.sources, self.listing), partitions, index
        )
        prefix = self.layout.staging_part(index)
        bucket = self.layout.bucket
        with (
            tempfile.TemporaryDirectory(prefix="conveyor-materialize-") as spool,
            PartsWriter(
                self.storage, bucket, prefix + "data-", self.typed_schema, spool=Path(spool)
            ) as parts,
        ):
            for batch in self._conformed(plans, with_logs=index == 0):
                parts.write(batch)
        stats = {
            "index": index,
            "partitions": partitions,
            "rows": parts.rows,
            "rejected": self.tally.rejected,
            "samples": self.tally.samples,
            "objects": [plan.object.key for plan in plans],
        }
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
        for key in stats_keys:
            stats = json.loads(self.storage.get_bytes(bucket, key))
            rows_staged += int(stats["rows"])
            self.tally.add(int(stats["rejected"]), stats.get("samples", []))
        try:
            self._check_rejects(rows_staged)
        except TooManyRejects:
            self.storage.delete_prefix(bucket, self.layout.staging)
            raise
        spill_path = workdir / "typed.arrow"
        data_keys = sorted(item.key for item in staged if item.key.endswith(".parquet"))
        with self._read_along(workdir) as along:
            with SpillWriter(spill_path, self.typed_schema) as spill:
                for key in data_keys:
                    parquet = pq.ParquetFile(self.storage.open_input_file(bucket, key))
                    for batch in parquet.iter_batches(batch_size=self._batch_rows):
                        spill.write(typed := batch.cast(self.typed_schema))
                        along.add(typed)
                along.finish()
            result = self._write_snapshot(spill_path, spill.rows, workdir, along)
        self.storage.delete_prefix(bucket, self.layout.staging)
        return result

    # Reading -----------------------------------------------------------------------------------

    @property
    def _batch_rows(self) -> int:
        return self.spec.materialization.batch_rows

    def _conformed(self, plans: list[ReadPlan], *, with_logs: bool) -> Iterator[pa.RecordBatch]:
        for plan in plans:
            logger.info("Reading %s (%s, %d bytes)", plan.object.uri, plan.format, plan.object.size)
            raw_batches = prefetch(
                stream_raw_batches(
                    self.storage, plan, self.schema, batch_rows=self._batch_rows, tally=self.tally
                )
            )
            yield from self._conform_all(raw_batches, plan.object.uri)
        if with_logs and self.spec.prediction_logs is not None:
            logs = prediction_log_batches(self.storage, self.spec, self.settings.s3.bucket)
            yield from self._conform_all(logs, "prediction logs")

    def _conform_all(
        self, raw_batches: Iterator[pa.RecordBatch], origin: str
    ) -> Iterator[pa.RecordBatch]:
        def conform_one(raw: pa.RecordBatch) -> ConformResult:
            return conform(raw, self.schema, max_samples=self.tally.room)

        results = ordered_map(conform_one, raw_batches, workers=CONFORM_WORKERS)
        while True:
            try:
                result = next(results)
            except StopIteration:
                return
            except ConformSchemaMismatch as error:
                raise SchemaMismatch(f"{origin}: {error}") from error
            self.tally.add(
                result.rejected,
                [
                    {"source": origin, "row": sample.row, "reason": sample.reason}
                    for sample in result.samples
                ],
            )
            if result.batch.num_rows:
                yield result.batch

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

    def _check_rejects(self, valid_rows: int) -> None:
        total = valid_rows + self.tally.rejected
        if total == 0:
            raise SourceNotFound(
                f"The sources matched {len(self.listing)} object(s) but they hold no data rows; "
                "upload data, or fix spec.sources."
            )
        ratio = self.tally.rejected / total
        limit = self.spec.validation.max_reject_ratio
        if ratio > limit or valid_rows == 0:
            examples = "; ".join(
                f"{number}) {sample['reason']}"
                for number, sample in enumerate(self.tally.samples[:3], start=1)
            )
            raise TooManyRejects(
                f"{self.tally.rejected} of {total} rows ({ratio:.2%}) break the schema, more "
                f"than spec.validation.maxRejectRatio {limit:.2%}. Examples: {examples}. Fix "
                "the source data or spec.schema.columns, or raise maxRejectRatio."
            )
        if self.tally.rejected:
            logger.warning("Rejected %d of %d rows", self.tally.rejected, total)

    # Writing -----------------------------------------------------------------------------------

    def _read_along(self, workdir: Path) -> ReadAlong:
        """What can be built while the rows are spilled, so pass 2 has less to do.

        The profile, when pass 2 would see the same rows in the same batches (no de-duplication);
        the raw/ parts too when every row is kept (no filter step). Those go up as they are
        finished, before the reject check: the manifest, written last, is what makes a snapshot,
        and a failed run removes them (see `run`).
        """
        if self._deduplicates:
            return ReadAlong(None, None)
        raw_parts = None
        if not any(step.op == "filter" for step in self.spec.transforms):
            raw_parts = self._raw_parts_writer(workdir)
        return ReadAlong(self._profile_builder(), raw_parts)

    @property
    def _deduplicates(self) -> bool:
        return bool(self.spec.deduplicate and self.schema.entity_key)

    def _profile_builder(self) -> ProfileBuilder:
        kinds = ("category", "string", "bool")
        categorical = [column.name for column in self.schema.columns if column.type in kinds]
        return ProfileBuilder(target=self.schema.target, categorical=categorical)

    def _raw_parts_writer(self, workdir: Path) -> PartsWriter:
        # raw/ keeps the conformed rows behind the features, row for row: a champion trained
        # on another snapshot (other fitted transforms) is scored on them through its own.
        spool = workdir / "raw"
        spool.mkdir()
        return PartsWriter(
            storage=self.storage,
            bucket=self.layout.bucket,
            prefix=self.layout.raw + "part-",
            schema=self.typed_schema,
            spool=spool,
            always_one=True,
        )

    def _write_snapshot(
        self, spill_path: Path, rows: int, workdir: Path, along: ReadAlong
    ) -> dict[str, Any]:
        input_rows = rows + self.tally.rejected
        key = self.schema.entity_key
        if self._deduplicates and key is not None:
            spill_path, rows = deduplicate_spill(
                spill_path, self.typed_schema, key, self._deduplicate, workdir
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

    def _deduplicate(self, table: pa.Table) -> pa.Table:
        key, event_time = self.schema.entity_key, self.schema.event_time
        assert key is not None
        if event_time is not None:
            return deduplicate_latest(table, key, event_time)
        # No event time: the last row read of each key wins.
        numbered = table.append_column("__row", pa.array(np.arange(table.num_rows)))
        last = numbered.group_by(key, use_threads=False).aggregate([("__row", "max")])
        rows = last.column("__row_max")
        return table.take(pc.take(rows, pc.sort_indices(rows)))

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
        builder = along.builder or self._profile_builder()
        with ThreadPoolExecutor(1, thread_name_prefix="conveyor-report") as reporter:
            # A profile built while reading is complete already: its report renders beside pass 2.
            report = reporter.submit(self._report, builder, previous) if along.builder else None
            parts = self._write_parts(spill_path, fitted, output_schema, workdir, along, builder)
            profile, html = report.result() if report else self._report(builder, previous)
        transforms_json = json_bytes(fitted.to_json())
        summary = profile.summary()
        summary["rejectedRows"] = self.tally.rejected
        self.storage.put_bytes(bucket, layout.transforms, transforms_json, "application/json")
        self.storage.put_bytes(
            bucket, layout.profile, json_bytes(profile.to_json()), "application/json"
        )
        self.storage.put_bytes(bucket, layout.report, html.encode(), "text/html; charset=utf-8")
        rejects = b"".join(json_bytes(sample, indent=None) + b"\n" for sample in self.tally.samples)
        self.storage.put_bytes(bucket, layout.rejects, rejects, "application/x-ndjson")
        manifest = manifest_document(
            layout,
            self.spec,
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
        builder: ProfileBuilder,
    ) -> PartsWriter:
        """Pass 2: transform the spilled rows into data/ parts (raw/ and the profile too, unless
        they were built while reading); returns the closed data/ writer."""
        spool = workdir / "parts"
        spool.mkdir()
        raw_parts = along.raw_parts or self._raw_parts_writer(workdir)
        started = time.perf_counter()
        with (
            PartsWriter(
                storage=self.storage,
                bucket=self.layout.bucket,
                prefix=self.layout.data + "part-",
                schema=output_schema,
                spool=spool,
                always_one=True,
            ) as parts,
            raw_parts,
            # In order, in its own thread (the sample is seeded by row order).
            InOrder(builder.add, name="conveyor-profile") as profiler,
        ):
            for batch in prefetch(scan_spill(spill_path)):
                if along.builder is None:
                    profiler.submit(batch)
                features, kept = fitted.apply_with_rows(batch)
                parts.write(features)
                if along.raw_parts is None:
                    # Steps keep row order, so as many positions as rows means every row.
                    raw_parts.write(batch if len(kept) == batch.num_rows else batch.take(kept))
            profiler.finish()
        logger.info(
            "Profiled, transformed and wrote %d rows in %.1f s",
            parts.rows,
            time.perf_counter() - started,
        )
        return parts

    def _report(self, builder: ProfileBuilder, previous: Profile | None) -> tuple[Profile, str]:
        # Imported here: matplotlib takes a while, and the report is drawn beside pass 2.
        from ...features.report import render_report

        started = time.perf_counter()
        profile = builder.finish(previous=previous, snapshot_id=self.layout.id)
        html = render_report(
            profile,
            previous=previous,
            title=f"FeatureSet {self.settings.namespace}/{self.settings.name}",
            snapshot_id=self.layout.id,
            rejected=self.tally.rejected,
            reject_samples=self.tally.samples,
        )
        logger.info("Profile and report finished in %.1f s", time.perf_counter() - started)
        return profile, html

    def _remove_incomplete(self) -> None:
        """Best effort: a run that failed before the manifest leaves no objects behind."""
        try:
            if not self.storage.exists(self.layout.bucket, self.layout.manifest):
                self.storage.delete_prefix(self.layout.bucket, self.layout.prefix)
        except StorageError as error:
            logger.warning("Could not remove the incomplete snapshot %s: %s", self.layout.id, error)
