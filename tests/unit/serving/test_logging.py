"""The server's prediction log and feedback, in-process against a real S3 server (moto's): what
a user finds in the log after predicting, being refused and sending ground truth."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.clients.s3 import ObjectStorage
from conveyor.features.logwriter import LogWriter
from conveyor.features.predictionlog import FeedbackRecord, PredictionRecord, decode_records
from conveyor.serving.app import create_app
from conveyor.serving.recorder import Recorder
from tests.models import TrainedModel, request_row
from tests.unit.serving.conftest import AsgiClient, served, settings_for
from tests.unit.serving.test_bad_requests import v2_body

BUCKET = "conveyor"
INFER = "/v2/models/flowers/infer"
FEEDBACK = "/v2/models/flowers/feedback"


@pytest.fixture
def storage(storage: ObjectStorage) -> ObjectStorage:
    """tests/unit/conftest.py's, without the logs earlier tests of this module wrote."""
    storage.delete_prefix(BUCKET, "logs/")
    return storage


class Logged:
    """The app with a recorder, and what its writer wrote."""

    def __init__(self, storage: ObjectStorage, model: TrainedModel, ratio: float = 1.0) -> None:
        self.storage = storage
        self.writer = LogWriter(storage, BUCKET, namespace="ml", writer="test-pod")
        self.recorder = Recorder(self.writer, "flowers", 3, sample_ratio=ratio)
        app = create_app(settings_for(model), served(model, onnx=True), self.recorder)
        self.client = AsgiClient(app)

    def predictions(self) -> list[PredictionRecord]:
        self.writer.flush()
        return self._read("logs/ml/predictions/model=flowers/", PredictionRecord)

    def feedback(self) -> list[FeedbackRecord]:
        self.writer.flush()
        return self._read("logs/ml/feedback/model=flowers/", FeedbackRecord)

    def _read(self, prefix: str, kind: Any) -> list[Any]:
        records = []
        for item in self.storage.list_objects(BUCKET, prefix):
            records += decode_records(self.storage.get_bytes(BUCKET, item.key), kind)
        return records


def test_every_prediction_is_logged_with_its_inputs_and_answers(
    storage: ObjectStorage, forest: TrainedModel
) -> None:
    logged = Logged(storage, forest)
    rows = [request_row(row) for row in forest.rows[:3]]
    one = logged.client.post(INFER, v2_body(rows[:1]), {"x-request-id": "one"})
    batch = logged.client.post(INFER, {**v2_body(rows), "id": "batch"})
    records = logged.client.post("/predict", {"instances": rows[1:2]}, {"x-request-id": "rec"})
    assert {one.status, batch.status, records.status} == {200}

    log = {record.request_id: record for record in logged.predictions()}
    assert sorted(log) == ["batch/0", "batch/1", "batch/2", "one", "rec"]
    assert log["one"].inputs == rows[0]  # the raw inputs, as sent
    assert log["batch/2"].inputs == rows[2]
    assert log["rec"].inputs == rows[1]
    answered = {o["name"]: o["data"] for o in batch.json()["outputs"]}
    assert [log[f"batch/{i}"].prediction for i in range(3)] == answered["predict"]
    scores = log["batch/1"].scores or {}
    assert list(scores) == ["setosa", "versicolor", "virginica"]
    assert scores["setosa"] == pytest.approx(answered["predict_proba"][3])
    assert {(r.model, r.version, r.error) for r in log.values()} == {("flowers", 3, None)}


def test_a_refused_request_is_logged_with_its_error(
    storage: ObjectStorage, forest: TrainedModel
) -> None:
    logged = Logged(storage, forest)
    body = v2_body()
    body["inputs"][0]["data"] = ["not a number"]
    refused = logged.client.post(INFER, body, {"x-request-id": "bad"})
    assert refused.status == 400
    [record] = logged.predictions()
    assert record.request_id == "bad" and record.prediction is None
    assert record.error == refused.error
    assert "not a number" in record.inputs["body"]


def test_the_sample_ratio_logs_a_share_of_predictions_and_all_feedback(
    storage: ObjectStorage, forest: TrainedModel
) -> None:
    logged = Logged(storage, forest, ratio=0.0)
    assert logged.client.post(INFER, v2_body(), {"x-request-id": "r1"}).status == 200
    answer = logged.client.post(FEEDBACK, {"request_id": "r1", "label": "setosa"})
    assert answer.status == 200
    assert logged.predictions() == []
    assert [(f.request_id, f.label) for f in logged.feedback()] == [("r1", "setosa")]


def test_feedback_takes_one_many_or_a_batchs_rows_and_counts_unknown_ids(
    storage: ObjectStorage, forest: TrainedModel
) -> None:
    logged = Logged(storage, forest)
    rows = [request_row(row) for row in forest.rows[:2]]
    logged.client.post(INFER, v2_body(rows[:1]), {"x-request-id": "single"})
    logged.client.post(INFER, v2_body(rows), {"x-request-id": "pair"})

    one = logged.client.post(FEEDBACK, {"request_id": "single", "label": "setosa"})
    assert one.json() == {"accepted": 1, "unknown": 0}
    many = logged.client.post(
        FEEDBACK,
        {
            "feedback": [
                {"request_id": "pair", "labels": ["setosa", "virginica"]},
                {"request_id": "not-flushed-yet", "label": "versicolor"},
            ]
        },
    )
    assert many.json() == {"accepted": 3, "unknown": 1}
    labels = {f.request_id: f.label for f in logged.feedback()}
    assert labels == {
        "single": "setosa",
        "pair/0": "setosa",
        "pair/1": "virginica",
        "not-flushed-yet": "versicolor",
    }
    metrics = logged.client.get("/metrics").text
    assert 'conveyor_serving_feedback_total{match="known"} 3.0' in metrics
    assert 'conveyor_serving_feedback_total{match="unknown"} 1.0' in metrics
    assert "conveyor_serving_log_records_written_total 7.0" in metrics
    assert 'conveyor_serving_log_records_dropped_total{reason="buffer_full"} 0.0' in metrics


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"label": "setosa"}, 400, 'needs a "request_id"'),
        ({"request_id": "r"}, 400, 'has no "label"'),
        ({"request_id": "r", "label": "tulip"}, 422, "not one of the model's classes"),
        ({"request_id": "r", "labels": []}, 400, "non-empty list"),
        ([], 400, "Send feedback as"),
        (
            {"feedback": [{"request_id": "r", "label": "setosa"}, {"request_id": 5, "label": 1}]},
            400,
            "feedback[1] needs",
        ),
    ],
)
def test_bad_feedback_is_refused_whole_naming_what_to_fix(
    storage: ObjectStorage, forest: TrainedModel, body: Any, status: int, message: str
) -> None:
    logged = Logged(storage, forest)
    answer = logged.client.post(FEEDBACK, body)
    assert (answer.status, message in answer.error) == (status, True), answer.error
    assert logged.feedback() == []


def test_a_regressors_feedback_is_a_number(storage: ObjectStorage, ridge: TrainedModel) -> None:
    writer = LogWriter(storage, BUCKET, namespace="ml", writer="ridge")
    app = create_app(settings_for(ridge), served(ridge, onnx=True), Recorder(writer, "flowers", 3))
    client = AsgiClient(app)
    assert client.post(FEEDBACK, {"request_id": "r", "label": 2.5}).status == 200
    refused = client.post(FEEDBACK, {"request_id": "r", "label": "tall"})
    assert (refused.status, "must be a number" in refused.error) == (422, True)
    writer.close()


def test_feedback_for_another_model_is_not_found(
    storage: ObjectStorage, forest: TrainedModel
) -> None:
    logged = Logged(storage, forest)
    answer = logged.client.post("/v2/models/tulips/feedback", {"request_id": "r", "label": 1})
    assert answer.status == 404


def test_a_shadow_predicts_a_copy_logged_under_its_own_version(
    storage: ObjectStorage, forest: TrainedModel, logistic: TrainedModel
) -> None:
    logged = Logged(storage, forest)
    app = logged.client.app
    app.shadow_with(served(logistic, onnx=True), Recorder(logged.writer, "flowers", 4), 1.0)
    rows = [request_row(row) for row in forest.rows[:2]]
    answer = logged.client.post(INFER, v2_body(rows), {"x-request-id": "both"})
    assert answer.status == 200
    assert logged.client.post("/predict", {"instances": rows[:1]}, {"x-request-id": "one"})

    by_version: dict[int, dict[str, Any]] = {3: {}, 4: {}}
    for record in logged.predictions():
        by_version[record.version][record.request_id] = record.prediction
    assert sorted(by_version[3]) == sorted(by_version[4]) == ["both/0", "both/1", "one"]
    expected = served(logistic, onnx=True).predict(rows).labels.tolist()
    assert [by_version[4][f"both/{i}"] for i in range(2)] == expected
    answered = {o["name"]: o["data"] for o in answer.json()["outputs"]}["predict"]
    assert [by_version[3][f"both/{i}"] for i in range(2)] == answered  # the answer is v3's
    metrics = logged.client.get("/metrics").text
    assert 'conveyor_serving_shadow_predictions_total{outcome="ok",version="4"} 2.0' in metrics
    assert 'conveyor_serving_shadow_ready{version="4"} 1.0' in metrics


def test_a_failing_shadow_never_touches_the_answer(
    storage: ObjectStorage, forest: TrainedModel, ridge: TrainedModel
) -> None:
    logged = Logged(storage, forest)
    app = logged.client.app
    app.shadow_with(served(ridge, onnx=True), Recorder(logged.writer, "flowers", 4), 1.0)
    answer = logged.client.post(INFER, v2_body(), {"x-request-id": "r"})
    assert answer.status == 200
    assert [r.version for r in logged.predictions()] == [3]  # the plants model cannot read it
    metrics = logged.client.get("/metrics").text
    assert 'conveyor_serving_shadow_predictions_total{outcome="error",version="4"} 1.0' in metrics
