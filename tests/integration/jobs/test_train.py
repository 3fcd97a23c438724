"""`conveyor train` as a real process against a real S3 server (moto's), on real snapshots
written by `conveyor materialize` from the sandbox's iris and diabetes data."""

from __future__ import annotations

import copy
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
import yaml

from conveyor.api.v1alpha1 import FeatureSetSpec
from conveyor.features.conform import conform
from conveyor.sandbox.datasets import render_csv, seed_datasets
from conveyor.sandbox.objectstore import ObjectStore, S3Client
from conveyor.sandbox.processes import free_port
from conveyor.training.artifacts import digest, load_model
from conveyor.training.onnx_file import load_onnx

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "conveyor", "AWS_SECRET_ACCESS_KEY": "conveyor-secret"}
IMAGE = "ghcr.io/conveyor/conveyor:test"
# Until `conveyor train` / `conveyor materialize` are wired into the CLI, the programs' main().
_MAIN = "import sys; from conveyor.jobs.{} import main; sys.exit(main(sys.argv[1:]))"


@dataclass
class Result:
    code: int
    payload: dict[str, Any]
    stdout: str
    stderr: str

    @property
    def result(self) -> dict[str, Any]:
        assert self.code == 0, f"{self.payload}\n{self.stderr[-3000:]}"
        assert self.payload["ok"] is True
        value: dict[str, Any] = self.payload["result"]
        return value


def _command(program: str) -> list[str]:
    from conveyor.cli import build_parser

    subparsers = build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    if program in (subparsers.choices or {}):
        return [sys.executable, "-m", "conveyor", program]
    return [sys.executable, "-c", _MAIN.format(program)]


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command,
        env={**os.environ, **CREDENTIALS, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str], timeout: float = 120) -> Result:
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    lines = stdout.strip().splitlines()
    assert lines, f"no output; stderr:\n{stderr}"
    return Result(process.returncode, json.loads(lines[-1]), stdout, stderr)


def _run(command: list[str], env: dict[str, str]) -> Result:
    return _finish(_start(command, env))


def _example(path: str, name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((EXAMPLES / path).read_text())
    document["metadata"] = {"name": name, "namespace": "ml"}
    return document


def materialize(endpoint: str, featureset: dict[str, Any]) -> str:
    """The snapshot id of a fresh materialization of `featureset`."""
    result = _run(
        [*_command("materialize"), "--featureset-json-env", "CONVEYOR_FEATURESET"],
        {"CONVEYOR_S3_ENDPOINT": endpoint, "CONVEYOR_FEATURESET": json.dumps(featureset)},
    )
    assert result.code == 0, f"{result.payload}\n{result.stderr[-3000:]}"
    return str(result.payload["snapshot"]["id"])


@dataclass
class Snapshot:
    featureset: dict[str, Any]
    id: str


def start_training(
    endpoint: str,
    pipeline: dict[str, Any],
    snapshot: Snapshot,
    run: str,
    *args: str,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """A training pod; it runs alongside others until `_finish` collects its result."""
    environment = {
        "CONVEYOR_S3_ENDPOINT": endpoint,
        "CONVEYOR_PIPELINE": json.dumps(pipeline),
        "CONVEYOR_FEATURESET": json.dumps(snapshot.featureset),
        "CONVEYOR_IMAGE": IMAGE,
        **(env or {}),
    }
    command = [*_command("train"), "--run", run, "--snapshot", snapshot.id, *args]
    return _start(command, environment)


def train(
    endpoint: str,
    pipeline: dict[str, Any],
    snapshot: Snapshot,
    run: str,
    *args: str,
    env: dict[str, str] | None = None,
) -> Result:
    return _finish(start_training(endpoint, pipeline, snapshot, run, *args, env=env))


def iris_pipeline(featureset: str = "iris", **spec: Any) -> dict[str, Any]:
    """The iris example, made quick: a small forest, four random trials, three folds."""
    document = _example("iris/trainingpipeline.yaml", "iris")
    document["spec"]["featureSet"] = featureset
    document["spec"]["model"]["params"]["n_estimators"] = 10
    document["spec"]["search"]["trials"] = 4
    document["spec"]["split"]["folds"] = 3
    document["spec"].update(copy.deepcopy(spec))
    return document


def diabetes_pipeline() -> dict[str, Any]:
    document = _example("diabetes/trainingpipeline.yaml", "diabetes")
    document["spec"]["search"].update(trials=6, timeoutSeconds=60)
    document["spec"]["split"]["folds"] = 3
    return document


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


@pytest.fixture(scope="module")
def iris(store: ObjectStore) -> Snapshot:
    featureset = _example("iris/featureset.yaml", "iris")
    return Snapshot(featureset, materialize(store.endpoint, featureset))


@pytest.fixture(scope="module")
def diabetes(store: ObjectStore) -> Snapshot:
    featureset = _example("diabetes/featureset.yaml", "diabetes")
    return Snapshot(featureset, materialize(store.endpoint, featureset))


def get(s3: S3Client, uri: str) -> bytes:
    body: bytes = s3.get_object(Bucket="conveyor", Key=uri.removeprefix("s3://conveyor/"))[
        "Body"
    ].read()
    return body


def objects(s3: S3Client, prefix: str) -> dict[str, tuple[str, Any]]:
    """key → (ETag, LastModified) of every object under prefix."""
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="conveyor", Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = (item["ETag"], item["LastModified"])
    return found


def raw_iris_rows() -> list[dict[str, Any]]:
    """The raw CSV rows as a client would send them: strings and numbers, no target."""
    rows = pcsv.read_csv(io.BytesIO(render_csv("iris"))).to_pylist()
    return [
        {key: value for key, value in row.items() if key not in ("species", "observed_at")}
        for row in rows
    ]


def write_raw_rows(s3: S3Client, snapshot: Snapshot) -> None:
    """Give a snapshot its raw/ part: the conformed raw rows (in CSV order; the trainer aligns
    them with the features by entity key)."""
    spec = FeatureSetSpec.model_validate(snapshot.featureset["spec"])
    table = pcsv.read_csv(
        io.BytesIO(render_csv("iris")),
        convert_options=pcsv.ConvertOptions(
            column_types={name: pa.string() for name in ("observed_at", "species")}
        ),
    )
    conformed = pa.Table.from_batches([conform(table, spec.schema_).batch])
    sink = io.BytesIO()
    pq.write_table(conformed, sink)
    key = f"features/ml/{snapshot.featureset['metadata']['name']}/snapshots/{snapshot.id}/raw/"
    s3.put_object(Bucket="conveyor", Key=key + "part-00000.parquet", Body=sink.getvalue())


# The happy path -----------------------------------------------------------------------------------


def test_iris_random_search_registers_a_verified_model_that_answers_raw_rows(
    store: ObjectStore, s3: S3Client, iris: Snapshot, tmp_path: Path
) -> None:
    output = tmp_path / "result.json"
    first = train(store.endpoint, iris_pipeline(), iris, "iris-run-1", "--output-json", str(output))
    result = first.result
    assert json.loads(output.read_text()) == first.payload
    assert (result["run"], result["snapshot"], result["task"]) == (
        "iris-run-1",
        iris.id,
        "classification",
    )
    assert (result["estimator"], result["metric"]) == ("RandomForestClassifier", "f1_macro")
    assert result["passed"] is True and result["rejection_reasons"] == []
    assert {gate["name"] for gate in result["gates"]} == {
        "threshold:accuracy:min",
        "beatProduction",
        "maxTrainingSeconds",
    }
    assert result["metrics"]["accuracy"] >= 0.85
    assert result["score"] == result["metrics"]["f1_macro"]
    assert result["baseline"]["accuracy"] < result["metrics"]["accuracy"]
    assert set(result["params"]) >= {"max_depth", "min_samples_leaf", "n_estimators"}
    assert result["trainingSeconds"] > 0

    artifact = result["artifact"]
    prefix = "s3://conveyor/models/ml/iris-classifier/runs/iris-run-1/"
    assert artifact["uri"] == prefix + "model.skops" and artifact["format"] == "skops"
    model_file = get(s3, artifact["uri"])
    assert digest(model_file) == artifact["digest"] and len(model_file) == artifact["sizeBytes"]
    model = load_model(model_file, expected_digest=artifact["digest"])
    rows = raw_iris_rows()
    predictions = model.predict(rows)
    species = pcsv.read_csv(io.BytesIO(render_csv("iris"))).column("species").to_pylist()
    assert set(predictions) <= {"setosa", "versicolor", "virginica"}
    assert sum(map(str.__eq__, predictions, species)) / len(rows) > 0.9

    card = json.loads(get(s3, artifact["cardUri"]))
    profile_key = f"features/ml/iris/snapshots/{iris.id}/profile.json"
    assert card["reference_profile"] == json.loads(get(s3, f"s3://conveyor/{profile_key}"))
    # Serving drift compares live inputs with what this model read: its inputs are profiled too.
    inputs = card["reference_profile"]["features"]["columns"]
    assert [column["name"] for column in inputs] == card["feature_columns"]
    assert all(column["reference"]["kind"] == "numeric" for column in inputs)
    assert (card["snapshot"], card["image"], card["target"]) == (iris.id, IMAGE, "species")
    assert card["training"]["search"]["trials"] == 4
    assert_card_has_what_a_comparison_weighs(card, artifact, classes=3)
    report = get(s3, artifact["reportUri"]).decode()
    assert "<svg" in report and "iris-classifier" in report
    assert json.loads(get(s3, prefix + "result.json")) == result
    assert_onnx_answers_the_sample_row_as_skops(s3, artifact, card, model)

    written = objects(s3, "models/ml/iris-classifier/runs/iris-run-1/")
    again = train(store.endpoint, iris_pipeline(), iris, "iris-run-1")
    assert again.result == result and again.payload["existing"] is True
    assert objects(s3, "models/ml/iris-classifier/runs/iris-run-1/") == written


def assert_card_has_what_a_comparison_weighs(
    card: dict[str, Any], artifact: dict[str, Any], *, classes: int | None
) -> None:
    """The holdout it was judged on, what it costs to serve, and the curves a comparison plots."""
    holdout = card["holdout"]
    assert len(holdout["fingerprint"]) == 16 and holdout["rows"] > 0
    footprint = card["footprint"]
    assert footprint["model_bytes"] == artifact["sizeBytes"]
    assert footprint["features"] == len(card["feature_columns"])
    assert footprint["runtime"] == ("onnx" if artifact.get("onnx") else "sklearn")
    assert footprint["latency_input"] == "raw"
    assert 0 < footprint["latency_one_row_seconds"] < footprint["latency_1000_rows_seconds"]
    evaluation = card["evaluation"]
    assert set(evaluation["feature_importance"]) == set(card["feature_columns"])
    if classes is None:
        residuals = evaluation["residuals"]
        assert len(residuals["predicted"]) == len(residuals["actual"]) == min(holdout["rows"], 1000)
        return
    assert len(evaluation["confusion_matrix"]["labels"]) == classes
    assert len(evaluation["roc"]) == len(evaluation["precision_recall"]) == classes
    assert all(0.5 < curve["auc"] <= 1 for curve in evaluation["roc"])


def assert_onnx_answers_the_sample_row_as_skops(
    s3: S3Client, artifact: dict[str, Any], card: dict[str, Any], model: Any
) -> None:
    """The ONNX file lies beside the skops file with its own digest, the card records its
    check and a raw holdout row, and onnxruntime answers that row as the skops pipeline does."""
    onnx = artifact["onnx"]
    assert onnx["uri"] == artifact["uri"].replace("model.skops", "model.onnx")
    onnx_file = get(s3, onnx["uri"])
    assert digest(onnx_file) == onnx["digest"] and len(onnx_file) == onnx["sizeBytes"]
    block = card["onnx"]
    assert block["exported"] is True and block["reason"] is None
    assert block["input"] == {
        "name": "features",
        "type": "double",
        "shape": [None, len(card["feature_columns"])],
    }
    assert block["parity"]["passed"] is True and block["parity"]["rows"] > 0

    row = card["sample_row"]
    schema = card["feature_schema"]
    assert card["target"] not in row
    assert set(row) == {column["name"] for column in schema["columns"]} - {card["target"]}
    session = load_onnx(onnx_file, expected_digest=onnx["digest"])
    features = model.named_steps["features"].transform([row])
    answers = dict(
        zip(
            [output.name for output in session.get_outputs()],
            session.run(None, {"features": features}),
            strict=True,
        )
    )
    expected = card["sample_prediction"]
    if "label" in block["outputs"]:
        assert answers["label"].tolist() == [expected["label"]] == model.predict([row]).tolist()
        assert answers["probabilities"][0] == pytest.approx(expected["probabilities"], abs=1e-4)
    else:
        assert answers["prediction"][0][0] == pytest.approx(expected["prediction"], rel=1e-4)
        assert expected["prediction"] == model.predict([row])[0]


def test_diabetes_regression_with_bayesian_search_and_a_time_split(
    store: ObjectStore, s3: S3Client, diabetes: Snapshot
) -> None:
    result = train(store.endpoint, diabetes_pipeline(), diabetes, "diabetes-run-1").result
    assert (result["task"], result["estimator"], result["metric"]) == (
        "regression",
        "Ridge",
        "rmse",
    )
    assert result["passed"] is True, result["rejection_reasons"]
    assert result["score"] == result["metrics"]["rmse"] > 0
    assert result["metrics"]["r2"] >= 0.3
    assert result["baseline"]["rmse"] > result["metrics"]["rmse"]
    assert 0.001 <= result["params"]["alpha"] <= 100.0
    card = json.loads(get(s3, result["artifact"]["cardUri"]))
    search = card["training"]["search"]
    assert search["strategy"] == "bayesian" and search["complete"] >= 1
    assert {gate["name"] for gate in result["gates"]} == {"threshold:r2:min", "maxModelBytes"}
    artifact = result["artifact"]
    assert_card_has_what_a_comparison_weighs(card, artifact, classes=None)
    assert (card["holdout"]["strategy"], card["holdout"]["assigned_by"]) == ("time", "observed_at")
    model = load_model(get(s3, artifact["uri"]), expected_digest=artifact["digest"])
    assert_onnx_answers_the_sample_row_as_skops(s3, artifact, card, model)


def test_an_estimator_without_an_onnx_converter_is_served_from_skops_alone(
    store: ObjectStore, s3: S3Client, iris: Snapshot
) -> None:
    pipeline = iris_pipeline(search={"strategy": "none"})
    pipeline["spec"]["model"].update(estimator="NearestCentroid", params={})
    result = train(store.endpoint, pipeline, iris, "iris-centroid").result
    assert result["passed"] is True and result["artifact"]["onnx"] is None
    assert "model.onnx" not in " ".join(
        objects(s3, "models/ml/iris-classifier/runs/iris-centroid/")
    )
    card = json.loads(get(s3, result["artifact"]["cardUri"]))
    assert card["onnx"]["exported"] is False and card["onnx"]["file"] is None
    assert card["onnx"]["reason"] == "skl2onnx 1.20.0 has no converter for NearestCentroid"
    # The skops pipeline still answers the warm-up row.
    model = load_model(
        get(s3, result["artifact"]["uri"]), expected_digest=result["artifact"]["digest"]
    )
    assert model.predict([card["sample_row"]]).tolist() == [card["sample_prediction"]["label"]]


def test_swapping_the_estimator_is_a_one_line_change(
    store: ObjectStore, s3: S3Client, iris: Snapshot
) -> None:
    """...and the models, trained on the same snapshot with the same split, are judged on
    exactly the same holdout rows: their cards carry one fingerprint."""
    swaps = {
        "RandomForestClassifier": {"n_estimators": 10, "random_state": 1},
        "GradientBoostingClassifier": {"n_estimators": 10, "random_state": 1},
        "LogisticRegression": {"max_iter": 500},
    }
    pods = {}
    for estimator, params in swaps.items():
        pipeline = iris_pipeline(search={"strategy": "none"})
        pipeline["spec"]["model"].update(estimator=estimator, params=params)
        run = "swap-" + estimator.lower()
        pods[estimator] = start_training(store.endpoint, pipeline, iris, run)
    cards = []
    for estimator, pod in pods.items():
        result = _finish(pod).result
        assert result["estimator"] == estimator and result["passed"] is True
        assert result["metrics"]["accuracy"] >= 0.85
        assert result["params"] == swaps[estimator]
        cards.append(json.loads(get(s3, result["artifact"]["cardUri"])))
    assert len({card["holdout"]["fingerprint"] for card in cards}) == 1
    assert {card["holdout"]["assigned_by"] for card in cards} == {"flower_id"}


# Gates --------------------------------------------------------------------------------------------


def test_a_failing_gate_rejects_the_model_with_the_reason(
    store: ObjectStore, s3: S3Client, iris: Snapshot
) -> None:
    pipeline = iris_pipeline(
        search={"strategy": "none"}, gates={"thresholds": [{"metric": "accuracy", "min": 0.999}]}
    )
    pipeline["spec"]["model"]["params"]["max_depth"] = 1  # a stump cannot separate three species
    result = train(store.endpoint, pipeline, iris, "iris-strict").result
    assert result["passed"] is False
    [reason] = result["rejection_reasons"]
    assert reason.startswith("threshold:accuracy:min: accuracy") and "0.999" in reason
    assert get(s3, result["artifact"]["uri"])  # kept for inspection; the operator never serves it


def test_beat_production_compares_both_models_on_the_same_holdout_rows(
    store: ObjectStore, s3: S3Client
) -> None:
    featureset = _example("iris/featureset.yaml", "iris-champion")
    snapshot = Snapshot(featureset, materialize(store.endpoint, featureset))
    write_raw_rows(s3, snapshot)
    champion = train(store.endpoint, iris_pipeline("iris-champion"), snapshot, "champion-v1").result
    challenger = iris_pipeline("iris-champion", gates={"beatProductionBy": 0.5})

    def challenge(run: str, digest: str) -> subprocess.Popen[str]:
        uri = champion["artifact"]["uri"]
        arguments = ("--champion-uri", uri, "--champion-digest", digest)
        return start_training(store.endpoint, challenger, snapshot, run, *arguments)

    honest = challenge("champion-v2", champion["artifact"]["digest"])
    tampered = challenge("champion-v3", "sha256:" + "0" * 64)
    result = _finish(honest).result
    # Production answered the raw holdout rows through its own transforms: same rows, same score.
    assert result["championScore"] == pytest.approx(champion["score"])
    assert result["championInput"] == "raw"
    assert result["passed"] is False
    [gate] = [gate for gate in result["gates"] if gate["name"] == "beatProduction"]
    assert gate["passed"] is False
    shown = re.fullmatch(r"f1_macro (\S+) does not beat Production (\S+) by 0\.5", gate["message"])
    assert shown is not None, gate["message"]
    assert float(shown[1]) == pytest.approx(result["score"], abs=1e-3)
    assert float(shown[2]) == pytest.approx(champion["score"], abs=1e-3)

    wrong = _finish(tampered)
    assert wrong.code == 10 and wrong.payload["reason"] == "ChampionUnavailable"
    assert "does not match" in wrong.payload["message"]


def test_a_production_model_with_other_transforms_is_scored_on_raw_rows(
    store: ObjectStore, iris: Snapshot
) -> None:
    unscaled = _example("iris/featureset.yaml", "iris-unscaled")
    unscaled["spec"]["transforms"] = unscaled["spec"]["transforms"][:2]
    other = Snapshot(unscaled, materialize(store.endpoint, unscaled))
    champion = train(store.endpoint, iris_pipeline("iris-unscaled"), other, "unscaled-v1").result
    champion_args = (
        "--champion-uri",
        champion["artifact"]["uri"],
        "--champion-digest",
        champion["artifact"]["digest"],
    )
    pipeline = iris_pipeline(gates={"beatProductionBy": 0.0})
    result = train(store.endpoint, pipeline, iris, "iris-vs-unscaled", *champion_args).result
    assert result["championInput"] == "raw"
    assert result["championScore"] is not None
    [gate] = result["gates"]
    assert gate["name"] == "beatProduction" and "Production" in gate["message"]

    # A snapshot written before raw/ existed: the comparison is skipped, and says so.
    prefix = f"features/ml/iris/snapshots/{iris.id}/raw/"
    client = store.client()
    for item in client.list_objects_v2(Bucket="conveyor", Prefix=prefix).get("Contents", []):
        client.delete_object(Bucket="conveyor", Key=item["Key"])
    result = train(store.endpoint, pipeline, iris, "iris-no-raw", *champion_args).result
    [gate] = result["gates"]
    assert gate == {
        "name": "beatProduction",
        "passed": True,
        "message": "cannot compare with Production: snapshot has no raw rows",
    }


# Bad input ----------------------------------------------------------------------------------------


def test_an_invalid_spec_is_rejected_before_any_data_is_read(iris: Snapshot) -> None:
    pipeline = iris_pipeline(metric="rmse")
    pipeline["spec"]["model"]["estimator"] = "RandomForrestClassifier"
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens: reading data would fail
    result = train(down, pipeline, Snapshot(iris.featureset, "no-such-snapshot"), "bad-1")
    assert result.code == 2 and result.payload["reason"] == "InvalidSpec"
    message = result.payload["message"]
    assert "spec.model.estimator" in message and '"RandomForestClassifier"' in message

    pipeline = iris_pipeline(metric="rmse")
    pipeline["spec"]["model"]["params"]["n_estimators"] = "many"
    pipeline["spec"]["search"]["space"]["max_depht"] = [2, 3]
    result = train(down, pipeline, Snapshot(iris.featureset, "no-such-snapshot"), "bad-2")
    assert result.code == 2 and result.payload["reason"] == "InvalidSpec"
    message = result.payload["message"]
    for field in ("spec.model.params.n_estimators", "spec.search.space.max_depht", "spec.metric"):
        assert field in message


def test_a_split_that_leaves_too_few_rows_names_spec_split(
    store: ObjectStore, iris: Snapshot
) -> None:
    # 0.99 of iris's 150 rows leaves one row for five folds: once an error about n_splits
    # that sent people to spec.model.params.
    pipeline = iris_pipeline()
    pipeline["spec"]["split"]["testSize"] = 0.99
    result = train(store.endpoint, pipeline, iris, "split-1")
    assert result.code == 2 and result.payload["reason"] == "InvalidSpec"
    message = result.payload["message"]
    assert "spec.split.testSize: 0.99 of 150 rows leaves 1 rows to train on" in message
    assert "spec.model.params" not in message


def test_max_training_seconds_stops_a_training_that_would_run_for_hours(
    store: ObjectStore, iris: Snapshot
) -> None:
    # 100,000 trees on each of three folds: hours. The deadline stops it within a tree.
    pipeline = iris_pipeline(gates={"maxTrainingSeconds": 2}, search={"strategy": "none"})
    pipeline["spec"]["model"]["params"]["n_estimators"] = 100_000
    started = time.monotonic()
    result = train(store.endpoint, pipeline, iris, "slow-1")
    assert result.code == 11 and result.payload["reason"] == "TrainingTimeExceeded"
    assert "spec.gates.maxTrainingSeconds (2 s)" in result.payload["message"]
    assert result.payload["retryable"] is False
    assert time.monotonic() - started < 60  # seconds past the deadline, not hours


def test_a_missing_snapshot_is_named(store: ObjectStore, iris: Snapshot) -> None:
    result = train(store.endpoint, iris_pipeline(), Snapshot(iris.featureset, "0123abcd"), "gone")
    assert result.code == 3 and result.payload["reason"] == "SnapshotNotFound"
    assert "features/ml/iris/snapshots/0123abcd/manifest.json" in result.payload["message"]


def test_text_features_are_refused_with_the_transform_that_fixes_them(store: ObjectStore) -> None:
    featureset = _example("diabetes/featureset.yaml", "diabetes-text")
    featureset["spec"]["transforms"] = [
        step for step in featureset["spec"]["transforms"] if step["op"] != "oneHot"
    ]
    snapshot = Snapshot(featureset, materialize(store.endpoint, featureset))
    pipeline = diabetes_pipeline()
    pipeline["spec"]["featureSet"] = "diabetes-text"
    result = train(store.endpoint, pipeline, snapshot, "text-features")
    assert result.code == 4 and result.payload["reason"] == "NonNumericFeatures"
    message = result.payload["message"]
    assert "sex (string)" in message and "oneHot" in message and "diabetes-text" in message


def test_settings_errors_name_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    from conveyor.jobs.train import main

    code = main(["--run", "r1", "--snapshot", "s1"], env={})
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 8 and payload["reason"] == "InvalidConfiguration"
    assert "'CONVEYOR_PIPELINE'" in payload["message"]

    env = {
        "CONVEYOR_PIPELINE": json.dumps(iris_pipeline()),
        "CONVEYOR_FEATURESET": json.dumps(_example("iris/featureset.yaml", "iris")),
    }
    code = main(["--run", "r1", "--snapshot", "s1", "--champion-uri", "s3://conveyor/m"], env=env)
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 8 and "'--champion-digest'" in payload["message"]


# Trials across the pods of an Indexed Job ---------------------------------------------------------


def test_trials_over_three_pods_then_final_equal_a_single_pod_search(
    store: ObjectStore, s3: S3Client, iris: Snapshot
) -> None:
    pipeline = iris_pipeline()
    pipeline["spec"]["search"].update(trials=6, parallelism=3)
    early = train(store.endpoint, pipeline, iris, "three-pods", "--phase", "final")
    assert early.code == 9 and early.payload["reason"] == "TrialsIncomplete"
    assert "three-pods/trials/part-00000.json" in early.payload["message"]

    single_pod = start_training(store.endpoint, pipeline, iris, "single-pod", "--partitions", "1")
    pods = [
        start_training(
            store.endpoint,
            pipeline,
            iris,
            "three-pods",
            "--phase",
            "trials",
            env={"JOB_COMPLETION_INDEX": str(index)},
        )
        for index in range(3)
    ]
    for index, pod in enumerate(pods):
        part = _finish(pod).result
        assert (part["index"], part["partitions"], part["trials"]) == (index, 3, 2)
    single = _finish(single_pod).result
    retried = train(
        store.endpoint, pipeline, iris, "three-pods", "--phase", "trials", "--index", "1"
    )
    assert retried.payload["existing"] is True and retried.result["trials"] == 2
    final = train(store.endpoint, pipeline, iris, "three-pods", "--phase", "final").result

    def trials(result: dict[str, Any]) -> list[tuple[int, str]]:
        card = json.loads(get(s3, result["artifact"]["cardUri"]))
        listed = card["training"]["search"]["trialList"]
        return sorted((t["number"], json.dumps(t["params"], sort_keys=True)) for t in listed)

    assert trials(final) == trials(single) and len(trials(final)) == 6
    assert final["params"] == single["params"]
    assert final["score"] == pytest.approx(single["score"])
