"""Benchmark: `conveyor materialize` against the pyarrow CSV floor, on the local S3 server.

    .venv/bin/python bench/materialize.py [--rows 10000000] [--object-mb 64]

Generates ROWS x 20 columns of CSV (ids, floats, ints, categories; 1% nulls in one column),
written chunk by chunk into the sandbox S3 server, then measures in the same run:

  floor      pyarrow.csv.open_csv streaming every object from S3 and discarding the batches;
  1x         `conveyor materialize` over the same objects (impute, derive, standardScale,
             oneHot), as a subprocess: rows/s and peak RSS (ru_maxrss of that child, wait4);
  2x         the same FeatureSet over twice the input (every object plus a server-side copy),
             to show that peak memory does not grow with the input.

moto's server (used when no `minio` binary is on PATH) answers every ranged GET by reading the
whole object into memory and slicing it, so one multi-GB object would be re-read hundreds of
times. The input is therefore split into objects of --object-mb each (a glob source), which both
the floor and the program read the same way; the script prints which server it used.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from conveyor.sandbox.objectstore import ObjectStore

BUCKET = "conveyor"
RAW = "conveyor-raw"
PREFIX = "bench/rows-"
CATEGORIES = np.array(["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"])

FLOOR = """
import sys, time, resource
import pyarrow as pa, pyarrow.csv as pcsv, pyarrow.fs as pafs
endpoint, keys = sys.argv[1], sys.argv[2:]
fs = pafs.S3FileSystem(access_key="conveyor", secret_key="conveyor-secret", region="us-east-1",
                       endpoint_override=endpoint.removeprefix("http://"), scheme="http")
rows = 0
start = time.perf_counter()
for key in keys:
    with fs.open_input_stream(key, compression=None) as stream:
        reader = pcsv.open_csv(stream, read_options=pcsv.ReadOptions(block_size=16 << 20))
        for batch in reader:
            rows += batch.num_rows
print(rows, time.perf_counter() - start)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--object-mb", type=int, default=64, help="size of each CSV object")
    parser.add_argument("--skip-2x", action="store_true", help="skip the 2x memory run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        workdir = Path(tmp)
        store = ObjectStore(data_dir=workdir / "s3", log_file=workdir / "s3.log")
        with store:
            store.ensure_buckets(BUCKET, RAW)
            print(f"# {store.describe()}")
            keys, size = upload_input(store, args.rows, args.object_mb << 20)
            print(
                f"# input: {args.rows:,} rows x 20 columns, {size / 1e9:.2f} GB CSV "
                f"in {len(keys)} objects of ~{args.object_mb} MB"
            )
            results = [("pyarrow.csv floor", *floor(store, keys), args.rows)]
            rows, seconds, peak = materialize(store, featureset("bench-1x", [f"{PREFIX}*.csv"]))
            results.append(("materialize 1x", seconds, peak, rows))
            if not args.skip_2x:
                copy_input(store, keys)
                sources = [f"{PREFIX}*.csv", "bench-copy/rows-*.csv"]
                rows, seconds, peak = materialize(store, featureset("bench-2x", sources))
                results.append(("materialize 2x input", seconds, peak, rows))
    print_table(results)


def upload_input(store: ObjectStore, rows: int, object_bytes: int) -> tuple[list[str], int]:
    """Write the CSV in chunks of ~object_bytes; never holds more than one chunk."""
    rng = np.random.default_rng(7)
    keys, total, written, number = [], 0, 0, 0
    rows_per_object = max(1000, object_bytes // 150)  # ~150 bytes per row
    start = time.perf_counter()
    with closing(store.client()) as client:
        while written < rows:
            count = min(rows_per_object, rows - written)
            body = csv_chunk(rng, written, count)
            key = f"{PREFIX}{number:05d}.csv"
            client.put_object(Bucket=RAW, Key=key, Body=body)
            keys.append(key)
            total += len(body)
            written += count
            number += 1
    print(f"# generated and uploaded in {time.perf_counter() - start:.1f} s")
    return keys, total


def csv_chunk(rng: np.random.Generator, first_id: int, rows: int) -> bytes:
    columns: dict[str, Any] = {"id": np.arange(first_id, first_id + rows)}
    for index in range(11):
        values = np.round(rng.normal(index, 1 + index, rows), 3)
        if index == 0:
            columns[f"f{index}"] = pa.array(values, mask=rng.random(rows) < 0.01)
        else:
            columns[f"f{index}"] = values
    for index in range(5):
        columns[f"i{index}"] = rng.integers(0, 1000 * (index + 1), rows)
    for index in range(3):
        columns[f"c{index}"] = CATEGORIES[rng.integers(0, len(CATEGORIES), rows)]
    sink = pa.BufferOutputStream()
    pcsv.write_csv(pa.table(columns), sink, pcsv.WriteOptions(quoting_style="none"))
    body: bytes = sink.getvalue().to_pybytes()
    return body  # every object is a whole CSV file with its header


def copy_input(store: ObjectStore, keys: list[str]) -> None:
    with closing(store.client()) as client:
        for key in keys:
            target = key.replace(PREFIX, "bench-copy/rows-")
            client.copy_object(Bucket=RAW, Key=target, CopySource={"Bucket": RAW, "Key": key})


def featureset(name: str, globs: list[str]) -> dict[str, Any]:
    columns = [{"name": "id", "type": "int", "nullable": False}]
    columns += [{"name": f"f{i}", "type": "float"} for i in range(11)]
    columns += [{"name": f"i{i}", "type": "int", "min": 0} for i in range(5)]
    columns += [
        {"name": f"c{i}", "type": "category", "categories": CATEGORIES.tolist()} for i in range(3)
    ]
    return {
        "metadata": {"name": name, "namespace": "bench"},
        "spec": {
            "sources": [
                {"name": f"part{i}", "uri": f"s3://{RAW}/{glob}", "format": "csv"}
                for i, glob in enumerate(globs)
            ],
            "schema": {"entityKey": "id", "target": "f10", "columns": columns},
            "transforms": [
                {"op": "impute", "columns": ["f0"], "strategy": "mean"},
                {"op": "derive", "output": "f1_x_f2", "expression": "f1 * f2 + i0 / 100"},
                {"op": "standardScale", "columns": ["f0", "f1", "f2", "f3", "f1_x_f2"]},
                {"op": "oneHot", "columns": ["c0"]},
            ],
            "validation": {"maxRejectRatio": 0.01},
            "materialization": {"batchRows": 262144},
        },
    }


def floor(store: ObjectStore, keys: list[str]) -> tuple[float, int]:
    """(seconds, peak RSS bytes) of pyarrow alone streaming the CSV objects from S3."""
    argv = [sys.executable, "-c", FLOOR, store.endpoint, *[f"{RAW}/{key}" for key in keys]]
    output, seconds, peak = run_measured(argv, os.environ.copy())
    rows, inner = output.split()
    print(f"# floor read {int(rows):,} rows ({float(inner):.1f} s inside the reader)")
    return seconds, peak


def materialize(store: ObjectStore, document: dict[str, Any]) -> tuple[int, float, int]:
    """(rows, seconds, peak RSS bytes) of one `conveyor materialize` process."""
    env = {
        **os.environ,
        "CONVEYOR_S3_ENDPOINT": store.endpoint,
        "AWS_ACCESS_KEY_ID": store.credentials.access_key,
        "AWS_SECRET_ACCESS_KEY": store.credentials.secret_key,
        "CONVEYOR_FEATURESET": json.dumps(document),
    }
    program = "import sys; from conveyor.jobs.materialize import main; sys.exit(main(sys.argv[1:]))"
    argv = [sys.executable, "-c", program, "--featureset-json-env", "CONVEYOR_FEATURESET"]
    output, seconds, peak = run_measured(argv, env)
    result = json.loads(output.strip().splitlines()[-1])
    if not result["ok"]:
        raise SystemExit(f"materialize failed: {result}")
    snapshot = result["snapshot"]
    input_rows = snapshot["rows"] + snapshot["rejected"]
    print(f"# {document['metadata']['name']}: snapshot {snapshot['id']}, {snapshot['rows']:,} rows")
    return input_rows, seconds, peak


def run_measured(argv: list[str], env: dict[str, str]) -> tuple[str, float, int]:
    """Run a child; its stdout, wall seconds and peak RSS (this child only, via wait4)."""
    with tempfile.TemporaryFile() as stdout:
        start = time.perf_counter()
        process = subprocess.Popen(argv, env=env, stdout=stdout)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        output = stdout.read().decode()
    if process.returncode not in (0,):
        raise SystemExit(f"{argv[:3]} exited with {process.returncode}:\n{output[-2000:]}")
    return output, seconds, usage.ru_maxrss * 1024


def print_table(results: list[tuple[str, float, int, int]]) -> None:
    floor_seconds = results[0][1]
    print()
    header = ("run", "rows", "seconds", "rows/s", "peak RSS MB", "vs floor")
    print(
        f"{header[0]:<24}{header[1]:>14}{header[2]:>10}{header[3]:>14}{header[4]:>14}{header[5]:>10}"
    )
    for name, seconds, peak, rows in results:
        ratio = seconds / floor_seconds * (results[0][3] / rows)
        print(
            f"{name:<24}{rows:>14,}{seconds:>10.1f}{rows / seconds:>14,.0f}"
            f"{peak / 2**20:>14.0f}{ratio:>9.2f}x"
        )
    print("\nvs floor: seconds per row relative to the pyarrow.csv floor (1.00x = as fast).")


if __name__ == "__main__":
    main()
