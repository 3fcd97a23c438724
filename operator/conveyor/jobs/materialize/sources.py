"""Reading a FeatureSet's sources from S3 as a stream of raw record batches, then conformed.

`conformed_batches` is what a run reads: each plan's raw batches, conformed by a few threads in
order, rejects counted in the run's tally.

Formats: CSV (every needed column read as text, so `conform()` decides what is valid), Parquet
(typed, by row group) and JSON Lines (typed fast path per chunk; a chunk pyarrow cannot type is
parsed line by line into text, so one bad value rejects one row, not the file). Compression
(gzip, bz2, zstd) is unwrapped as a stream. Nothing holds a whole object in memory: CSV and
JSON Lines are read in blocks, Parquet in row groups.

The listing and its fingerprint live in `conveyor.features.listing`: the operator calls them too.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq

from ...api.v1alpha1.featureset import FeatureSchema, FeatureSetSpec, Source
from ...clients.s3 import ObjectStorage, StorageError
from ...contracts.layouts import PredictionLogLayout
from ...features.conform import ConformResult, conform
from ...features.conform import SchemaMismatch as ConformSchemaMismatch
from ...features.listing import SourceObject, lookback_start
from ...features.predictionlog import read_labelled
from .errors import InvalidConfiguration, SchemaMismatch, SourceUnreadable
from .parts import ordered_map, prefetch
from .rejects import RejectTally

__all__ = [
    "CONFORM_WORKERS",
    "LogsToRead",
    "ReadPlan",
    "conformed_batches",
    "infer_format",
    "partition_plans",
    "prediction_log_batches",
    "read_plans",
    "source_columns",
    "stream_raw_batches",
]

logger = logging.getLogger(__name__)

_COMPRESSION_SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".bz2": "bz2", ".zst": "zstd"}
_FORMAT_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
# Text that means "no value" in CSV; "NA" is deliberately absent (a valid category in places).
_CSV_NULLS = ["", "NULL", "null", "NaN", "nan", "N/A"]
_JSON_TYPES = {"float": pa.float64(), "int": pa.int64(), "bool": pa.bool_()}
# Bytes per streamed CSV/JSON block: large enough for pyarrow's parallel parsing to pay off,
# small enough that a few blocks in flight stay far below any pod's memory limit.
_MIN_BLOCK_BYTES = 1 << 20
_MAX_BLOCK_BYTES = 16 << 20
_PROBE_BLOCK_BYTES = 1 << 20


@dataclass(frozen=True)
class ReadPlan:
    """One unit of reading: an object (or some of a Parquet object's row groups) of a source."""

    source: Source
    object: SourceObject
    format: str
    compression: str | None
    row_groups: tuple[int, ...] | None = None


CONFORM_WORKERS = 2
"""Batches conformed at once: pyarrow and numpy release the GIL, so threads use the cores."""


def conformed_batches(
    storage: ObjectStorage,
    spec: FeatureSetSpec,
    plans: Sequence[ReadPlan],
    tally: RejectTally,
    batch_rows: int,
    logs: LogsToRead | None,
) -> Iterator[pa.RecordBatch]:
    """The valid rows of `plans` (then of the prediction logs, when `logs` says where and up
    to when), typed by conform(), in read order; rejects and malformed rows go to `tally`."""
    for plan in plans:
        logger.info("Reading %s (%s, %d bytes)", plan.object.uri, plan.format, plan.object.size)
        raw_batches = prefetch(
            stream_raw_batches(storage, plan, spec.schema_, batch_rows=batch_rows, tally=tally)
        )
        yield from _conform_all(raw_batches, spec.schema_, tally, plan.object.uri)
    if logs is not None and spec.prediction_logs is not None:
        rows = prediction_log_batches(storage, spec, logs)
        yield from _conform_all(rows, spec.schema_, tally, "prediction logs")


def _conform_all(
    raw_batches: Iterator[pa.RecordBatch], schema: FeatureSchema, tally: RejectTally, origin: str
) -> Iterator[pa.RecordBatch]:
    def conform_one(raw: pa.RecordBatch) -> ConformResult:
        return conform(raw, schema, max_samples=tally.room)

    results = ordered_map(conform_one, raw_batches, workers=CONFORM_WORKERS)
    while True:
        try:
            result = next(results)
        except StopIteration:
            return
        except ConformSchemaMismatch as error:
            raise SchemaMismatch(f"{origin}: {error}") from error
        samples = [
            {"source": origin, "row": sample.row, "reason": sample.reason}
            for sample in result.samples
        ]
        tally.add(result.rejected, samples, result.reasons, result.examples)
        if result.batch.num_rows:
            yield result.batch


def infer_format(source: Source, key: str) -> tuple[str, str | None]:
    """(format, compression codec or None) from the spec, else from the key's extensions."""
    name = key.lower()
    compression: str | None
    if source.compression == "auto":
        compression = next(
            (codec for suffix, codec in _COMPRESSION_SUFFIXES.items() if name.endswith(suffix)),
            None,
        )
    else:
        compression = None if source.compression == "none" else source.compression
    for suffix in _COMPRESSION_SUFFIXES:
        name = name.removesuffix(suffix)
    if source.format is not None:
        return source.format, compression
    for suffix, kind in _FORMAT_SUFFIXES.items():
        if name.endswith(suffix):
            return kind, compression
    raise SourceUnreadable(
        f"Source {source.name!r}: cannot tell the format of s3://.../{key} from its extension; "
        "set spec.sources[].format to csv, parquet or jsonl."
    )


def source_columns(schema: FeatureSchema) -> list[str]:
    """The raw column names the schema reads (Column.sourceColumn or its name), in order."""
    return [column.source_column or column.name for column in schema.columns]


def read_plans(sources: Sequence[Source], listing: Sequence[SourceObject]) -> list[ReadPlan]:
    """One plan per listed object of the spec's sources (prediction logs are read separately)."""
    by_name = {source.name: source for source in sources}
    plans = []
    for item in listing:
        source = by_name.get(item.source)
        if source is None:
            continue
        kind, compression = infer_format(source, item.key)
        plans.append(ReadPlan(source, item, kind, compression))
    return plans


class LogsToRead(NamedTuple):
    """Where the FeatureSet's prediction logs are (its `namespace`'s, in `bucket`), and the
    bound of the snapshot's listing: the objects written by `until`."""

    bucket: str
    namespace: str
    until: datetime | None


def prediction_log_batches(
    storage: ObjectStorage, spec: FeatureSetSpec, logs_to_read: LogsToRead
) -> Iterator[pa.RecordBatch]:
    """Labelled production traffic (spec.predictionLogs), mapped onto the schema's raw
    columns."""
    bucket, namespace, until = logs_to_read
    logs, schema = spec.prediction_logs, spec.schema_
    assert logs is not None
    if schema.target is None:
        raise InvalidConfiguration(
            "spec.predictionLogs needs spec.schema.target: feedback labels fill the target."
        )
    where = f"the prediction logs of model {logs.model!r}"
    try:
        table = read_labelled(
            storage,
            bucket,
            PredictionLogLayout(namespace, logs.model),
            since=lookback_start(logs.lookback_days),
            target=schema.target,
            until=until,
        )
    except ValueError as error:
        raise SourceUnreadable(f"Cannot read {where}: {error}") from error
    if table.num_rows == 0:
        return
    arrays = []
    for column, name in zip(schema.columns, source_columns(schema), strict=True):
        if name in table.column_names:
            arrays.append(table.column(name))
        elif column.name == schema.event_time and "prediction_time" in table.column_names:
            arrays.append(table.column("prediction_time"))
        else:
            arrays.append(pa.nulls(table.num_rows, pa.string()))
    mapped = pa.Table.from_arrays(arrays, names=source_columns(schema))
    yield from mapped.to_batches(max_chunksize=spec.materialization.batch_rows)


def partition_plans(
    storage: ObjectStorage, plans: Sequence[ReadPlan], partitions: int, index: int
) -> list[ReadPlan]:
    """The plans partition `index` of `partitions` reads.

    Objects are spread by a stable hash of their key (sha256 mod N), so every pod agrees without
    talking to the others. When the whole input is one uncompressed Parquet object, its row
    groups are spread instead (group g goes to partition g mod N). A single CSV or JSON Lines
    object cannot be split this way and is read by one partition. A split object gives one plan
    per row group, so the rows of each can be put back in order (staging.py).
    """
    if partitions == 1:
        return list(plans)
    if len(plans) == 1 and plans[0].format == "parquet" and plans[0].compression is None:
        plan = plans[0]
        groups = _parquet_file(storage, plan).metadata.num_row_groups
        mine = [group for group in range(groups) if group % partitions == index]
        return [ReadPlan(plan.source, plan.object, plan.format, None, (group,)) for group in mine]
    return [plan for plan in plans if _stable_bucket(plan.object.key, partitions) == index]


def stream_raw_batches(
    storage: ObjectStorage,
    plan: ReadPlan,
    schema: FeatureSchema,
    *,
    batch_rows: int,
    tally: RejectTally,
) -> Iterator[pa.RecordBatch]:
    """The raw batches of one plan, each at most about `batch_rows` rows.

    Malformed rows (a CSV row with the wrong number of fields, a JSON line that is not an
    object) are counted in `tally` and skipped; anything the parser cannot get past raises
    SourceUnreadable naming the object.
    """
    readers: dict[str, Callable[..., Iterator[pa.RecordBatch]]] = {
        "csv": _csv_batches,
        "parquet": _parquet_batches,
        "jsonl": _jsonl_batches,
    }
    columns = source_columns(schema)
    try:
        for batch in readers[plan.format](storage, plan, schema, columns, batch_rows, tally):
            if batch.num_rows:
                yield batch
    except StorageError:
        raise
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, ValueError) as error:
        if isinstance(error, OSError):
            translated = storage.translate_arrow_error(f"read {plan.object.uri}", error)
            if isinstance(translated, StorageError):
                raise translated from error
        raise SourceUnreadable(
            f"Cannot read {plan.object.uri} as {plan.format}"
            f"{f' ({plan.compression})' if plan.compression else ''}: {error}"
        ) from error


# CSV ---------------------------------------------------------------------------------------------


def _csv_batches(
    storage: ObjectStorage,
    plan: ReadPlan,
    schema: FeatureSchema,
    columns: list[str],
    batch_rows: int,
    tally: RejectTally,
) -> Iterator[pa.RecordBatch]:
    header = _csv_header(storage, plan)
    _require_columns(plan, columns, header)
    parse_options = pcsv.ParseOptions(
        delimiter=plan.source.delimiter, invalid_row_handler=_malformed_csv_rows(plan, tally)
    )
    convert_options = pcsv.ConvertOptions(
        include_columns=columns,
        column_types=dict.fromkeys(columns, pa.string()),
        null_values=_CSV_NULLS,
        strings_can_be_null=True,
    )
    block = min(max(batch_rows * 64, _MIN_BLOCK_BYTES), _MAX_BLOCK_BYTES)
    with _open_stream(storage, plan) as stream:
        reader = pcsv.open_csv(
            stream,
            read_options=pcsv.ReadOptions(block_size=block, use_threads=True),
            parse_options=parse_options,
            convert_options=convert_options,
        )
        for batch in reader:
            yield from _slices(batch, batch_rows)


def _csv_header(storage: ObjectStorage, plan: ReadPlan) -> list[str]:
    """The column names, from the first block only (one small ranged read)."""
    with _open_stream(storage, plan) as stream:
        reader = pcsv.open_csv(
            stream,
            read_options=pcsv.ReadOptions(block_size=_PROBE_BLOCK_BYTES, use_threads=False),
            parse_options=pcsv.ParseOptions(
                delimiter=plan.source.delimiter, invalid_row_handler=lambda row: "skip"
            ),
        )
        names = list(reader.schema.names)
        reader.close()
    return names


def _malformed_csv_rows(plan: ReadPlan, tally: RejectTally) -> Callable[[Any], str]:
    def skip(row: Any) -> str:
        tally.add(
            1,
            [
                {
                    "source": plan.object.uri,
                    "row": {"line": row.number, "text": (row.text or "")[:500]},
                    "reason": f"malformed CSV row: expected {row.expected_columns} fields, "
                    f"got {row.actual_columns}",
                }
            ],
            {"malformed CSV row (wrong number of fields)": 1},
        )
        return "skip"

    return skip


# Parquet -----------------------------------------------------------------------------------------


def _parquet_batches(
    storage: ObjectStorage,
    plan: ReadPlan,
    schema: FeatureSchema,
    columns: list[str],
    batch_rows: int,
    tally: RejectTally,
) -> Iterator[pa.RecordBatch]:
    if plan.compression is not None:
        # Parquet compresses inside the file; an outer codec leaves no random access.
        with _open_stream(storage, plan) as stream:
            parquet = pq.ParquetFile(pa.BufferReader(stream.read()))
    else:
        parquet = _parquet_file(storage, plan)
    _require_columns(plan, columns, parquet.schema_arrow.names)
    yield from parquet.iter_batches(
        batch_size=batch_rows, row_groups=plan.row_groups, columns=columns, use_threads=True
    )


def _parquet_file(storage: ObjectStorage, plan: ReadPlan) -> pq.ParquetFile:
    handle = storage.open_input_file(plan.object.bucket, plan.object.key)
    return pq.ParquetFile(handle)


# JSON Lines --------------------------------------------------------------------------------------


def _jsonl_batches(
    storage: ObjectStorage,
    plan: ReadPlan,
    schema: FeatureSchema,
    columns: list[str],
    batch_rows: int,
    tally: RejectTally,
) -> Iterator[pa.RecordBatch]:
    typed = pa.schema(
        [
            (name, _JSON_TYPES.get(column.type, pa.string()))
            for name, column in zip(columns, schema.columns, strict=True)
        ]
    )
    block = min(max(batch_rows * 64, _MIN_BLOCK_BYTES), _MAX_BLOCK_BYTES)
    checked = False
    with _open_stream(storage, plan) as stream:
        for chunk, first_line in _line_chunks(stream, block):
            if not checked:
                _require_json_columns(plan, columns, chunk)
                checked = True
            for batch in _json_chunk(chunk, typed, plan, first_line, tally).to_batches():
                yield from _slices(batch, batch_rows)


def _line_chunks(stream: pa.NativeFile, block: int) -> Iterator[tuple[bytes, int]]:
    """Blocks of whole lines, with the 1-based number of each block's first line."""
    rest = b""
    line = 1
    while True:
        data = stream.read(block)
        if not data:
            break
        data = rest + data
        cut = data.rfind(b"\n")
        if cut < 0:
            rest = data
            continue
        chunk, rest = data[: cut + 1], data[cut + 1 :]
        yield chunk, line
        line += chunk.count(b"\n")
    if rest.strip():
        yield rest + b"\n", line


def _json_chunk(
    chunk: bytes, typed: pa.Schema, plan: ReadPlan, first_line: int, tally: RejectTally
) -> pa.Table:
    try:
        table = pjson.read_json(
            pa.BufferReader(chunk),
            read_options=pjson.ReadOptions(use_threads=True, block_size=len(chunk) + 1),
            parse_options=pjson.ParseOptions(
                explicit_schema=typed, unexpected_field_behavior="ignore"
            ),
        )
        return table.select(typed.names)
    except pa.ArrowInvalid:
        return _json_chunk_as_text(chunk, typed.names, plan, first_line, tally)


def _json_chunk_as_text(
    chunk: bytes, names: list[str], plan: ReadPlan, first_line: int, tally: RejectTally
) -> pa.Table:
    """Line by line, every value as text: a bad value becomes a reject in conform(), not a crash."""
    values: dict[str, list[str | None]] = {name: [] for name in names}
    for number, line in enumerate(chunk.splitlines(), start=first_line):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError(f"a JSON {type(row).__name__}, not an object")
        except ValueError as error:
            text = line[:500].decode("utf-8", "replace")
            reason = f"malformed JSON line: {error}"
            tally.add(
                1,
                [
                    {
                        "source": plan.object.uri,
                        "row": {"line": number, "text": text},
                        "reason": reason,
                    }
                ],
                {"malformed JSON line": 1},
            )
            continue
        for name in names:
            values[name].append(_as_text(row.get(name)))
    return pa.table({name: pa.array(column, pa.string()) for name, column in values.items()})


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _require_json_columns(plan: ReadPlan, columns: list[str], chunk: bytes) -> None:
    for line in chunk.splitlines():
        if line.strip():
            try:
                first = json.loads(line)
            except ValueError:
                return  # a broken first line is a reject, not a schema problem
            if isinstance(first, dict):
                _require_columns(plan, columns, list(first))
            return


# Shared ------------------------------------------------------------------------------------------


def _open_stream(storage: ObjectStorage, plan: ReadPlan) -> pa.NativeFile:
    raw = storage.open_input_stream(plan.object.bucket, plan.object.key)
    if plan.compression is None:
        return raw
    return pa.CompressedInputStream(raw, plan.compression)


def _require_columns(plan: ReadPlan, columns: list[str], available: Sequence[str]) -> None:
    missing = [name for name in columns if name not in set(available)]
    if missing:
        raise SchemaMismatch(
            f"Source {plan.source.name!r} object {plan.object.uri} has no column "
            f"{', '.join(repr(name) for name in missing)}; it has: {', '.join(available)}. "
            "Fix spec.schema.columns (name or sourceColumn) or the source."
        )


def _slices(batch: pa.RecordBatch, rows: int) -> Iterator[pa.RecordBatch]:
    for start in range(0, batch.num_rows, rows):
        yield batch.slice(start, rows)


def _stable_bucket(key: str, buckets: int) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % buckets
