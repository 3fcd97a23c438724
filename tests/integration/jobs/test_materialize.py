"""`conveyor materialize` as a real process against a real S3 server (moto's)."""

from __future__ import annotations

import contextlib
import copy
import gzip
import io
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
import yaml

from conveyor.contracts.layouts import feedback_key, prediction_key
from conveyor.features.predictionlog import FeedbackRecord, PredictionRecord, encode_records
from conveyor.sandbox.datasets import render_csv, seed_datasets
from conveyor.sandbox.objectstore import ObjectStore, S3Client

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
IRIS = yaml.safe_load((ROOT / "examples" / "iris" / "featureset.yaml").read_text())
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "conveyor", "AWS_SECRET_ACCESS_KEY": "conveyor-secret"}
# The CLI wiring (`conveyor materialize`) may not exist yet; the program's own main() always does.
_MAIN = "import sys; from conveyor.jobs.materialize import main; sys.exit(main(sys.argv[1:]))"


@dataclass
class Result:
    code: int
    payload: dict[str, Any]
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStore]:
    tmp = tmp_path_factory.mktemp("s3")
    with ObjectStore(data_dir=tmp / "data", log_file=tmp / "s3.log", prefer="moto") as server:
        server.ensure_buckets("conveyor", "conveyor-raw")
        with closing(server.client()) as client:
            seed_datasets(client)
        yield server


@pytest.fixture
def s3(store: ObjectStore) -> Iterator[S3Client]:
    with closing(store.client()) as client:
        yield client


def _command() -> list[str]:
    """`conveyor materialize` once the CLI has the command, else the program's own main()."""
    from conveyor.cli import build_parser

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            build_parser().parse_args(["materialize", "--featureset-json-env", "X"])
    except SystemExit:
        return [sys.executable, "-c", _MAIN]
    return [sys.executable, "-m", "conveyor", "materialize"]


def materialize(
    endpoint: str,
    featureset: dict[str, Any],
    *args: str,
    env: dict[str, str] | None = None,
) -> Result:
    return materialize_concurrently(endpoint, [(featureset, args, env)])[0]


def materialize_concurrently(
    endpoint: str,
    runs: list[tuple[dict[str, Any], Sequence[str], dict[str, str] | None]],
    timeout: float = 120,
) -> list[Result]:
    """Run several programs at once (as an Indexed Job's pods do); results in `runs` order."""
    processes = []
    for document, args, env in runs:
        environment = {
            **os.environ,
            **CREDENTIALS,
            "CONVEYOR_S3_ENDPOINT": endpoint,
            "CONVEYOR_FEATURESET": json.dumps(document),
            **(env or {}),
        }
        processes.append(
            subprocess.Popen(
                [*_command(), "--featureset-json-env", "CONVEYOR_FEATURESET", *args],
                env=environment,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=timeout)
        lines = stdout.strip().splitlines()
        assert lines, f"no output; stderr:\n{stderr}"
        results.append(Result(process.returncode, json.loads(lines[-1]), stdout, stderr))
    return results


def featureset(name: str, **spec_changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(IRIS)
    document["metadata"] = {"name": name, "namespace": "ml"}
    document["spec"].update(spec_changes)
    return document


def with_source(name: str, uri: str, **source: Any) -> dict[str, Any]:
    return featureset(name, sources=[{"name": "flowers", "uri": uri, **source}])


def objects(s3: S3Client, prefix: str) -> dict[str, tuple[str, Any]]:
    """key → (ETag, LastModified) of every object under prefix."""
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="conveyor", Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = (item["ETag"], item["LastModified"])
    return found


def read_json(s3: S3Client, key: str) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket="conveyor", Key=key)["Body"].read())


def snapshot_table(s3: S3Client, manifest: dict[str, Any]) -> pa.Table:
    parts = []
    for item in manifest["data"]:
        body = s3.get_object(Bucket="conveyor", Key=item["key"])["Body"].read()
        parts.append(pq.read_table(io.BytesIO(body)))
    return pa.concat_tables(parts).sort_by("flower_id")


def ok(result: Result) -> dict[str, Any]:
    assert result.code == 0, f"{result.payload}\n{result.stderr[-3000:]}"
    assert result.payload["ok"] is True
    return result.payload


def put_raw(s3: S3Client, key: str, body: bytes) -> None:
    s3.put_object(Bucket="conveyor-raw", Key=key, Body=body)


def iris_table() -> pa.Table:
    return pcsv.read_csv(io.BytesIO(render_csv("iris")))


def csv_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pcsv.write_csv(table, sink, pcsv.WriteOptions(quoting_style="none"))
    return sink.getvalue()


def manifest_of(s3: S3Client, payload: dict[str, Any]) -> dict[str, Any]:
    uri = payload["snapshot"]["uri"]
    return read_json(s3, uri.removeprefix("s3://conveyor/"))


# The happy path -----------------------------------------------------------------------------------


def test_iris_snapshot_is_complete_and_a_rerun_rewrites_nothing(
    store: ObjectStore, s3: S3Client
) -> None:
    first = ok(materialize(store.endpoint, featureset("iris")))
    snapshot = first["snapshot"]
    prefix = f"features/ml/iris/snapshots/{snapshot['id']}/"
    assert snapshot["rows"] == 150
    assert snapshot["uri"] == f"s3://conveyor/{prefix}manifest.json"

    written = objects(s3, "features/ml/iris/")
    for name in ("manifest.json", "transforms.json", "profile.json", "report.html"):
        assert prefix + name in written
    manifest = read_json(s3, prefix + "manifest.json")
    assert manifest["rows"] == 150 and manifest["rejected"] == 0
    assert manifest["feature_columns"] == [
        "sepal_length_cm",
        "sepal_width_cm",
        "petal_length_cm",
        "petal_width_cm",
        "petal_area_cm2",
    ]
    assert (manifest["target"], manifest["entity_key"]) == ("species", "flower_id")
    assert [source["key"] for source in manifest["sources"]] == ["iris/iris.csv"]
    assert manifest["transforms_digest"].startswith("sha256:")

    table = snapshot_table(s3, manifest)
    assert table.num_rows == 150
    assert {"flower_id", "species", "petal_area_cm2"} <= set(table.column_names)
    scaled = table.column("petal_area_cm2").to_pylist()
    assert abs(sum(scaled) / len(scaled)) < 1e-9  # standardScale was fitted on this data
    # raw/ holds the conformed rows behind the features, row for row, before any transform.
    raw_keys = [
        item["Key"]
        for item in s3.list_objects_v2(Bucket="conveyor", Prefix=prefix + "raw/")["Contents"]
    ]
    raw = pa.concat_tables(
        pq.read_table(io.BytesIO(s3.get_object(Bucket="conveyor", Key=key)["Body"].read()))
        for key in raw_keys
    )
    data = pa.concat_tables(
        pq.read_table(io.BytesIO(s3.get_object(Bucket="conveyor", Key=item["key"])["Body"].read()))
        for item in manifest["data"]
    )
    assert raw.column("flower_id").to_pylist() == data.column("flower_id").to_pylist()
    assert "petal_area_cm2" not in raw.column_names
    assert 4.0 < sum(raw.column("sepal_length_cm").to_pylist()) / 150 < 7.0  # not scaled

    profile = read_json(s3, prefix + "profile.json")
    assert profile["rows"] == 150
    assert "sepal_length_cm" in {column["name"] for column in profile["columns"]}
    report = s3.get_object(Bucket="conveyor", Key=prefix + "report.html")["Body"].read()
    assert b"<html" in report.lower() and b"sepal_length_cm" in report

    again = materialize(store.endpoint, featureset("iris"))
    assert ok(again)["snapshot"]["id"] == snapshot["id"]
    assert f"snapshot {snapshot['id']} already exists" in again.stdout
    assert objects(s3, "features/ml/iris/") == written  # same ETags, same LastModified


def test_a_changed_definition_or_source_gives_a_new_snapshot(
    store: ObjectStore, s3: S3Client
) -> None:
    base = ok(materialize(store.endpoint, featureset("iris-changes")))["snapshot"]
    fewer = featureset("iris-changes", transforms=IRIS["spec"]["transforms"][:2])
    changed = ok(materialize(store.endpoint, fewer))["snapshot"]
    assert changed["id"] != base["id"]
    assert "petal_area_cm2" in changed["featureColumns"]
    assert "petal_area_cm2" in base["featureColumns"]

    put_raw(s3, "iris-growing/a.csv", render_csv("iris"))
    growing = with_source("iris-growing", "s3://conveyor-raw/iris-growing/*.csv")
    before = ok(materialize(store.endpoint, growing))["snapshot"]
    extra = csv_bytes(
        iris_table().slice(0, 5).set_column(0, "flower_id", pa.array(range(900, 905)))
    )
    put_raw(s3, "iris-growing/b.csv", extra)
    after = ok(materialize(store.endpoint, growing, "--previous-snapshot", before["id"]))
    assert after["snapshot"]["id"] != before["id"]
    assert (before["rows"], after["snapshot"]["rows"]) == (150, 155)
    assert after["snapshot"]["profile"]["maxDriftScore"] is not None  # compared with `before`


def test_new_entities_are_not_drift_and_the_model_inputs_are_profiled(
    store: ObjectStore, s3: S3Client
) -> None:
    iris = iris_table()
    put_raw(s3, "iris-entities/a.csv", csv_bytes(iris))
    document = with_source("iris-entities", "s3://conveyor-raw/iris-entities/*.csv")
    before = ok(materialize(store.endpoint, document))["snapshot"]
    # The same flowers measured again later, as new entities: only the keys and times are new.
    later = pa.array([t.replace(year=t.year + 1) for t in iris.column("observed_at").to_pylist()])
    again = iris.set_column(0, "flower_id", pa.array(range(1001, 1151))).set_column(
        1, "observed_at", later
    )
    put_raw(s3, "iris-entities/b.csv", csv_bytes(again))
    payload = ok(materialize(store.endpoint, document, "--previous-snapshot", before["id"]))
    manifest = manifest_of(s3, payload)

    summary = manifest["profile_summary"]
    assert summary["maxDriftScore"] < 0.1  # the same measurements twice over
    assert summary["driftedColumns"] == []
    profile = read_json(s3, manifest["profile"].removeprefix("s3://conveyor/"))
    columns = {column["name"]: column for column in profile["columns"]}
    assert (columns["flower_id"]["role"], columns["observed_at"]["role"]) == (
        "entityKey",
        "eventTime",
    )
    assert (columns["flower_id"]["min"], columns["flower_id"]["max"]) == (1, 1150)
    assert columns["flower_id"]["drift_score"] is None and columns["flower_id"]["reference"] == {}
    inputs = profile["features"]["columns"]
    assert [column["name"] for column in inputs] == manifest["feature_columns"]
    assert profile["features"]["rows"] == manifest["rows"] == 300
    assert all(column["drift_score"] is not None for column in inputs)
    assert summary["columns"] == len(inputs)
    report = s3.get_object(Bucket="conveyor", Key=manifest["report"].removeprefix("s3://conveyor/"))
    page = report["Body"].read().decode()
    assert f"<th>Created</th><td>{manifest['created']}</td>" in page  # what status says
    assert "<h2>Model inputs after the transforms</h2>" in page


def _overflowing(name: str, max_reject_ratio: float) -> dict[str, Any]:
    """iris plus a derive that overflows for the 6 longest sepals (7.6 ** 350 > 1.8e308)."""
    document = featureset(name, deduplicate=False)  # raw/ goes up while the rows are read
    impute, area, scale = IRIS["spec"]["transforms"]
    big = {"op": "derive", "output": "big", "expression": "sepal_length_cm ** 350"}
    document["spec"]["transforms"] = [impute, area, big, scale]
    document["spec"]["validation"] = {"maxRejectRatio": max_reject_ratio}
    return document


def test_a_transform_that_overflows_rejects_those_rows_only(
    store: ObjectStore, s3: S3Client
) -> None:
    manifest = manifest_of(s3, ok(materialize(store.endpoint, _overflowing("iris-big", 0.05))))

    reason = (
        "spec.transforms[2] (derive 'big' = sepal_length_cm ** 350): inf is not a finite number"
    )
    assert (manifest["rows"], manifest["rejected"]) == (144, 6)
    data = snapshot_table(s3, manifest)
    assert max(data.column("big").to_pylist()) < float("inf")
    prefix = manifest["uri"].removeprefix("s3://conveyor/").removesuffix("manifest.json")
    raw = pa.concat_tables(
        pq.read_table(io.BytesIO(s3.get_object(Bucket="conveyor", Key=key)["Body"].read()))
        for key in objects(s3, prefix + "raw/")
    )
    assert sorted(raw.column("flower_id").to_pylist()) == data.column("flower_id").to_pylist()
    rejects = s3.get_object(Bucket="conveyor", Key=prefix + "rejects.jsonl")["Body"].read()
    samples = [json.loads(line) for line in rejects.decode().splitlines()]
    assert {sample["reason"] for sample in samples} == {reason}
    assert all(sample["row"]["sepal_length_cm"] >= 7.6 for sample in samples)
    profile = read_json(s3, prefix + "profile.json")
    assert profile["rejects"] == {
        "rows": 6,
        "reasons": [
            {
                "reason": "spec.transforms[2] (derive 'big'): not a finite number",
                "rows": 6,
                "example": "inf",
            }
        ],
    }
    report = s3.get_object(Bucket="conveyor", Key=prefix + "report.html")["Body"].read().decode()
    assert "spec.transforms[2] (derive &#x27;big&#x27;): not a finite number" in report

    strict = materialize(store.endpoint, _overflowing("iris-big-strict", 0.02))
    assert (strict.code, strict.payload["reason"]) == (2, "TooManyRejects")
    assert "6 of 150 rows" in strict.payload["message"]
    assert (
        "spec.transforms[2] (derive 'big'): not a finite number (6 rows, e.g. inf)"
        in (strict.payload["message"])
    )


# Formats ------------------------------------------------------------------------------------------


def test_compressed_csv_jsonl_and_parquet_give_the_same_features(
    store: ObjectStore, s3: S3Client
) -> None:
    iris = iris_table()
    put_raw(s3, "formats/iris.csv.gz", gzip.compress(render_csv("iris")))
    lines = "".join(json.dumps(row, default=datetime.isoformat) + "\n" for row in iris.to_pylist())
    put_raw(s3, "formats/iris.jsonl", lines.encode())
    put_raw(s3, "formats/iris.jsonl.gz", gzip.compress(lines.encode()))
    sink = io.BytesIO()
    pq.write_table(iris, sink, row_group_size=40)
    put_raw(s3, "formats/iris.parquet", sink.getvalue())

    keys = ["iris.csv.gz", "iris.jsonl", "iris.jsonl.gz", "iris.parquet"]
    runs = [(featureset("iris-csv"), (), None)] + [
        (with_source("iris-" + key.replace(".", "-"), f"s3://conveyor-raw/formats/{key}"), (), None)
        for key in keys
    ]
    reference, *others = [
        snapshot_table(s3, manifest_of(s3, ok(result)))
        for result in materialize_concurrently(store.endpoint, runs)
    ]
    for key, table in zip(keys, others, strict=True):
        assert table.equals(reference), key


def test_a_glob_reads_every_matching_object_and_nothing_else(
    store: ObjectStore, s3: S3Client
) -> None:
    iris = iris_table()
    for part in range(3):
        put_raw(s3, f"glob/2026-0{part + 1}/flowers.csv", csv_bytes(iris.slice(part * 50, 50)))
    put_raw(s3, "glob/2026-01/notes.txt", b"not data")
    put_raw(s3, "glob-other/flowers.csv", csv_bytes(iris.slice(0, 10)))

    payload = ok(
        materialize(store.endpoint, with_source("iris-glob", "s3://conveyor-raw/glob/*/*.csv"))
    )
    manifest = manifest_of(s3, payload)
    assert manifest["rows"] == 150
    assert [source["key"] for source in manifest["sources"]] == [
        "glob/2026-01/flowers.csv",
        "glob/2026-02/flowers.csv",
        "glob/2026-03/flowers.csv",
    ]


def test_deduplicate_keeps_the_latest_row_of_each_entity(store: ObjectStore, s3: S3Client) -> None:
    put_raw(s3, "dupes/a.csv", render_csv("iris"))
    later = "1,2027-01-01T00:00:00Z,7.5,3.0,6.5,2.0,virginica\n"
    earlier = "2,2020-01-01T00:00:00Z,7.5,3.0,6.5,2.0,virginica\n"
    header = render_csv("iris").split(b"\n", 1)[0] + b"\n"
    put_raw(s3, "dupes/b.csv", header + (later + earlier).encode())

    manifest = manifest_of(
        s3, ok(materialize(store.endpoint, with_source("iris-dupes", "s3://conveyor-raw/dupes/*")))
    )
    assert (manifest["rows"], manifest["input_rows"]) == (150, 152)
    rows = {row["flower_id"]: row for row in snapshot_table(s3, manifest).to_pylist()}
    assert rows[1]["species"] == "virginica"  # the 2027 row replaced flower 1
    assert rows[2]["species"] == "setosa"  # the 2020 row was older than flower 2's


def test_prediction_logs_add_labelled_production_rows(store: ObjectStore, s3: S3Client) -> None:
    now = datetime.now(UTC)
    predictions = [
        PredictionRecord(
            request_id=f"r{index}",
            time=now,
            model="iris-model",
            version=1,
            inputs={
                "flower_id": 5000 + index,
                "sepal_length_cm": 5.0,
                "sepal_width_cm": 3.0,
                "petal_length_cm": 1.5,
                "petal_width_cm": 0.2,
            },
            prediction="setosa",
        )
        for index in range(3)
    ]
    feedback = [
        FeedbackRecord(request_id=f"r{index}", time=now, model="iris-model", label="setosa")
        for index in range(2)  # the third prediction has no label yet
    ]
    s3.put_object(
        Bucket="conveyor",
        Key=prediction_key("ml", "iris-model", 1, now, "pod-a", 1),
        Body=encode_records(predictions),
    )
    s3.put_object(
        Bucket="conveyor",
        Key=feedback_key("ml", "iris-model", now, "pod-a", 1),
        Body=encode_records(feedback),
    )

    document = featureset("iris-feedback", predictionLogs={"model": "iris-model"})
    manifest = manifest_of(s3, ok(materialize(store.endpoint, document)))
    assert manifest["rows"] == 152
    assert sum(source["kind"] == "predictionLogs" for source in manifest["sources"]) == 2
    labelled = [row for row in snapshot_table(s3, manifest).to_pylist() if row["flower_id"] >= 5000]
    assert [row["flower_id"] for row in labelled] == [5000, 5001]
    assert labelled[0]["observed_at"] == now.replace(microsecond=now.microsecond)


# Validation ---------------------------------------------------------------------------------------


def _with_bad_rows() -> bytes:
    bad = (
        "9001,2026-03-01T00:00:00Z,-3.0,3.0,1.0,0.2,setosa\n"
        "9002,2026-03-01T01:00:00Z,5.0,3.0,1.0,0.2,tulip\n"
    )
    return render_csv("iris") + bad.encode()


def test_rejects_under_the_threshold_are_counted_and_sampled(
    store: ObjectStore, s3: S3Client
) -> None:
    put_raw(s3, "dirty/iris.csv", _with_bad_rows())
    document = with_source("iris-dirty", "s3://conveyor-raw/dirty/iris.csv")
    document["spec"]["validation"] = {"maxRejectRatio": 0.02}
    snapshot = ok(materialize(store.endpoint, document))["snapshot"]
    assert (snapshot["rows"], snapshot["rejected"]) == (150, 2)
    key = snapshot["uri"].removeprefix("s3://conveyor/").replace("manifest.json", "rejects.jsonl")
    rejects = s3.get_object(Bucket="conveyor", Key=key)["Body"].read().decode().splitlines()
    reasons = [json.loads(line)["reason"] for line in rejects]
    assert len(reasons) == 2
    assert "sepal_length_cm" in reasons[0] and "tulip" in reasons[1]


def test_too_many_rejects_keep_only_their_sample_and_say_where_it_is(
    store: ObjectStore, s3: S3Client
) -> None:
    put_raw(s3, "dirty-strict/iris.csv", _with_bad_rows())
    document = with_source("iris-strict", "s3://conveyor-raw/dirty-strict/iris.csv")
    document["spec"]["validation"] = {"maxRejectRatio": 0.01}
    result = materialize(store.endpoint, document)
    assert result.code == 2
    assert result.payload["reason"] == "TooManyRejects"
    message = result.payload["message"]
    assert "2 of 152 rows" in message and "maxRejectRatio" in message
    assert "sepal_length_cm: below min 0 (1 row, e.g. -3.0)" in message
    assert "species: not one of the categories setosa, versicolor, virginica (1 row, e.g. " in (
        message
    )
    (kept,) = objects(s3, "features/ml/iris-strict/")  # nothing else of the failed snapshot
    assert kept.endswith("/rejects.jsonl") and f"s3://conveyor/{kept}" in message
    lines = s3.get_object(Bucket="conveyor", Key=kept)["Body"].read().decode().splitlines()
    assert [json.loads(line)["row"]["flower_id"] for line in lines] == ["9001", "9002"]
    assert "tulip" in json.loads(lines[1])["reason"]


# raw/ parts of 50 rows: some are uploaded while the rows are read, before the reject check.
_SMALL_PARTS_MAIN = (
    "import sys; from conveyor.jobs.materialize import main, parts; "
    "parts.PartsWriter.__init__.__kwdefaults__['part_rows'] = 50; sys.exit(main(sys.argv[1:]))"
)


def test_too_many_rejects_remove_the_parts_uploaded_while_reading(
    store: ObjectStore, s3: S3Client
) -> None:
    put_raw(s3, "dirty-small-parts/iris.csv", _with_bad_rows())
    document = with_source("iris-small-parts", "s3://conveyor-raw/dirty-small-parts/iris.csv")
    document["spec"]["validation"] = {"maxRejectRatio": 0.01}
    document["spec"]["deduplicate"] = False  # so raw/ is written while the rows are read
    process = subprocess.run(
        [sys.executable, "-c", _SMALL_PARTS_MAIN, "--featureset-json-env", "CONVEYOR_FEATURESET"],
        env={
            **os.environ,
            **CREDENTIALS,
            "CONVEYOR_S3_ENDPOINT": store.endpoint,
            "CONVEYOR_FEATURESET": json.dumps(document),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 2, process.stderr
    assert json.loads(process.stdout.strip().splitlines()[-1])["reason"] == "TooManyRejects"
    assert [key.rsplit("/", 1)[1] for key in objects(s3, "features/ml/iris-small-parts/")] == [
        "rejects.jsonl"
    ]


# Failures a person can act on ---------------------------------------------------------------------


def test_a_source_glob_matching_nothing_names_the_uri(store: ObjectStore, s3: S3Client) -> None:
    result = materialize(
        store.endpoint, with_source("iris-missing", "s3://conveyor-raw/nope/*.csv")
    )
    assert result.code == 3
    assert result.payload["reason"] == "SourceNotFound"
    assert "s3://conveyor-raw/nope/*.csv" in result.payload["message"]
    assert objects(s3, "features/ml/iris-missing/") == {}


def test_an_unreadable_file_names_the_object(store: ObjectStore, s3: S3Client) -> None:
    put_raw(s3, "broken/iris.parquet", b"this is not parquet at all")
    result = materialize(store.endpoint, with_source("iris-broken", "s3://conveyor-raw/broken/*"))
    assert result.code == 4
    assert result.payload["reason"] == "SourceUnreadable"
    assert "s3://conveyor-raw/broken/iris.parquet" in result.payload["message"]


def test_a_schema_that_names_a_missing_column_says_which(store: ObjectStore) -> None:
    document = featureset("iris-renamed")
    document["spec"]["schema"]["columns"][2]["sourceColumn"] = "sepal_len"
    result = materialize(store.endpoint, document)
    assert result.code == 5
    assert result.payload["reason"] == "SchemaMismatch"
    assert "'sepal_len'" in result.payload["message"]
    assert "sepal_length_cm" in result.payload["message"]  # what the file has


def test_wrong_credentials_are_reported_as_access_denied(tmp_path: Path) -> None:
    with ObjectStore(data_dir=tmp_path, log_file=tmp_path / "s3.log", prefer="moto") as server:
        server.ensure_buckets("conveyor", "conveyor-raw")
        with closing(server.client()) as client:
            seed_datasets(client)
        # moto accepts any key until authentication is switched on; then unknown keys fail.
        request = urllib.request.Request(
            f"{server.endpoint}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request) as response:
            assert response.status == 200
        result = materialize(server.endpoint, featureset("iris"))
    assert result.code == 6
    assert result.payload["reason"] == "StorageAccessDenied"
    assert "AWS_ACCESS_KEY_ID" in result.payload["message"]


def test_storage_down_is_reported_as_unavailable_and_retryable(tmp_path: Path) -> None:
    server = ObjectStore(data_dir=tmp_path, log_file=tmp_path / "s3.log", prefer="moto")
    output = tmp_path / "result.json"
    result = materialize(server.endpoint, featureset("iris"), "--output-json", str(output))
    assert result.code == 7
    assert result.payload["reason"] == "StorageUnavailable"
    assert result.payload["retryable"] is True
    assert server.endpoint in result.payload["message"]
    assert json.loads(output.read_text()) == result.payload


# Partitioned materialization ----------------------------------------------------------------------


def test_partition_and_combine_equal_a_single_pass(store: ObjectStore, s3: S3Client) -> None:
    iris = iris_table()
    for part in range(6):
        put_raw(s3, f"parts/flowers-{part}.csv", csv_bytes(iris.slice(part * 25, 25)))
    single = with_source("iris-single", "s3://conveyor-raw/parts/*.csv")
    parallel = with_source("iris-parallel", "s3://conveyor-raw/parts/*.csv")
    reference = manifest_of(s3, ok(materialize(store.endpoint, single)))

    early = materialize(store.endpoint, parallel, "--phase", "combine", "--partitions", "3")
    assert early.code == 9 and early.payload["reason"] == "PartitionsIncomplete"
    pods = [
        (parallel, ("--phase", "partition", "--partitions", "3"), {"JOB_COMPLETION_INDEX": str(i)})
        for i in range(3)
    ]
    staged = [ok(result)["partition"] for result in materialize_concurrently(store.endpoint, pods)]
    assert [part["index"] for part in staged] == [0, 1, 2]
    assert sum(part["rows"] for part in staged) == 150
    combined = ok(materialize(store.endpoint, parallel, "--phase", "combine", "--partitions", "3"))
    manifest = manifest_of(s3, combined)

    assert manifest["id"] == reference["id"]
    mine = read_json(s3, manifest["profile"].removeprefix("s3://conveyor/"))
    theirs = read_json(s3, reference["profile"].removeprefix("s3://conveyor/"))
    assert mine["features"] and _close(mine, theirs)  # raw and features profiles alike
    # The staged rows were put back in the order one pod reads them (profiles sample by it).
    in_order = [_in_file_order(s3, m)["flower_id"].to_pylist() for m in (manifest, reference)]
    assert in_order[0] == in_order[1]
    combined_rows = snapshot_table(s3, manifest).to_pylist()
    assert _close(combined_rows, snapshot_table(s3, reference).to_pylist())
    assert objects(s3, "features/ml/iris-parallel/staging/") == {}
    mine = read_json(s3, manifest["transforms"].removeprefix("s3://conveyor/"))
    theirs = read_json(s3, reference["transforms"].removeprefix("s3://conveyor/"))
    assert _close(mine, theirs)


def _in_file_order(s3: S3Client, manifest: dict[str, Any]) -> pa.Table:
    return pa.concat_tables(
        pq.read_table(io.BytesIO(s3.get_object(Bucket="conveyor", Key=item["key"])["Body"].read()))
        for item in manifest["data"]
    )


def _close(left: Any, right: Any) -> bool:
    """Equal, floats within 1e-9 relative: streaming sums over rows in another order differ in
    the last bits."""
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_close(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_close, left, right))
    if isinstance(left, float) and isinstance(right, float):
        return abs(left - right) <= 1e-9 * max(1.0, abs(left), abs(right))
    return bool(left == right)
