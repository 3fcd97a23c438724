"""`kubectl get` tables: CRD printer columns and the built-in kinds' printers."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from conveyor.sandbox.apiserver.tables import human_duration, table_for_builtin, to_table

NOW = datetime.datetime(2026, 11, 27, 12, 0, 0, tzinfo=datetime.UTC)

PIPELINE_COLUMNS = [
    {"name": "FeatureSet", "type": "string", "jsonPath": ".spec.featureSet"},
    {"name": "Last Run", "type": "string", "jsonPath": ".status.runs[0].phase"},
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {
        "name": "Estimator",
        "type": "string",
        "jsonPath": ".spec.model.estimator",
        "priority": 1,
        "description": "The scikit-learn estimator.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def ago(**delta: float) -> str:
    return (NOW - datetime.timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pipeline(name: str, created: str, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "conveyor.dev/v1alpha1",
        "kind": "TrainingPipeline",
        "metadata": {
            "name": name,
            "namespace": "default",
            "creationTimestamp": created,
            "labels": {"app": "iris"},
        },
        "spec": {"featureSet": "iris", "model": {"estimator": "random_forest"}},
        "status": status,
    }


def test_printer_columns_follow_the_name_column_with_their_definitions() -> None:
    table = to_table(PIPELINE_COLUMNS, [], now=NOW)

    assert (table["kind"], table["apiVersion"], table["rows"]) == ("Table", "meta.k8s.io/v1", [])
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name",
        "FeatureSet",
        "Last Run",
        "Ready",
        "Estimator",
        "Age",
    ]
    assert table["columnDefinitions"][0]["format"] == "name"
    assert table["columnDefinitions"][4] == {
        "name": "Estimator",
        "type": "string",
        "format": "",
        "priority": 1,
        "description": "The scikit-learn estimator.",
    }
    assert table["columnDefinitions"][1]["description"] == (
        "Custom resource definition column (in JSONPath format): .spec.featureSet"
    )


def test_cells_come_from_filters_indexes_and_dates_and_missing_ones_are_null() -> None:
    trained = pipeline(
        "iris",
        ago(minutes=5),
        runs=[{"phase": "Succeeded"}, {"phase": "Failed"}],
        conditions=[
            {"type": "Progressing", "status": "False"},
            {"type": "Ready", "status": "True"},
        ],
    )
    fresh = pipeline("wine", ago(hours=3, minutes=12))

    table = to_table(PIPELINE_COLUMNS, [trained, fresh], now=NOW)

    assert [row["cells"] for row in table["rows"]] == [
        ["iris", "iris", "Succeeded", "True", "random_forest", "5m"],
        ["wine", "iris", None, None, "random_forest", "3h12m"],
    ]


def test_typed_columns_keep_their_type_and_drop_mismatches() -> None:
    columns = [
        {"name": "Generation", "type": "integer", "jsonPath": ".status.observedGeneration"},
        {"name": "Accuracy", "type": "number", "jsonPath": ".status.metrics.accuracy"},
        {"name": "Serving", "type": "boolean", "jsonPath": ".status.serving"},
        {"name": "Metrics", "type": "string", "jsonPath": ".status.metrics"},
        {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas"},
        {"name": "Since", "type": "date", "jsonPath": ".status.since"},
    ]
    obj = pipeline(
        "iris",
        ago(days=2),
        observedGeneration=4.0,
        serving="yes",
        since="soon",
        metrics={"f1": 0.5, "accuracy": 1},
        replicas="two",
    )

    cells = to_table(columns, [obj], now=NOW)["rows"][0]["cells"]

    assert cells == ["iris", 4, 1.0, None, '{"accuracy":1,"f1":0.5}', None, "<invalid>"]
    assert isinstance(cells[1], int) and isinstance(cells[2], float)


def test_string_columns_print_scalars_as_kubectl_does() -> None:
    columns = [{"name": n, "type": "string", "jsonPath": f".status.{n}"} for n in "abcd"]
    obj = pipeline("iris", ago(seconds=1), a=3, b=0.95, c=True, d=1e6)

    cells = to_table(columns, [obj], now=NOW)["rows"][0]["cells"]

    assert cells[1:] == ["3", "0.95", "true", "1e+06"]


def test_row_objects_follow_include_object() -> None:
    obj = pipeline("iris", ago(seconds=30))

    metadata_row = to_table(PIPELINE_COLUMNS, [obj], now=NOW)["rows"][0]
    object_row = to_table(PIPELINE_COLUMNS, [obj], include_object="Object", now=NOW)["rows"][0]
    bare_row = to_table(PIPELINE_COLUMNS, [obj], include_object="None", now=NOW)["rows"][0]

    assert metadata_row["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    }
    assert object_row["object"] == obj and object_row["object"] is not obj
    assert "object" not in bare_row
    with pytest.raises(ValueError, match="includeObject must be one of None, Metadata, Object"):
        to_table(PIPELINE_COLUMNS, [obj], include_object="Everything")


def test_a_crd_without_printer_columns_gets_an_age_column() -> None:
    table = to_table([], [pipeline("iris", ago(seconds=45))], now=NOW)

    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]
    assert table["rows"][0]["cells"] == ["iris", "45s"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".spec.steps[-1].name", "last"),
        (".spec.steps[*].name", "first"),
        (".spec.steps[1:3].name", "middle"),
        (".metadata.labels['app.kubernetes.io/name']", "conveyor"),
        (".spec.steps[?(@.weight>=2)].name", "middle"),
        (".spec.steps[?(@.weight!=1)].name", "middle"),
        (".spec.steps[?(@.optional)].name", "last"),
        ("{.spec.steps[0].name}", "first"),
        ('.spec.steps[?(@.weight=="2")].name', None),
        (".spec.steps[7].name", None),
        (".spec.steps.name", None),
    ],
)
def test_jsonpath_forms_used_by_printer_columns(path: str, expected: str | None) -> None:
    obj = {
        "metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "conveyor"}},
        "spec": {
            "steps": [
                {"name": "first", "weight": 1},
                {"name": "middle", "weight": 2},
                {"name": "last", "weight": 3, "optional": True},
            ]
        },
    }

    cells = to_table([{"name": "C", "type": "string", "jsonPath": path}], [obj], now=NOW)

    assert cells["rows"][0]["cells"][1] == expected


def test_an_unsupported_jsonpath_names_the_column() -> None:
    column = {"name": "Deep", "type": "string", "jsonPath": "..name"}

    with pytest.raises(ValueError, match="printer column 'Deep' has an unsupported jsonPath"):
        to_table([column], [], now=NOW)


@pytest.mark.parametrize(
    ("delta", "age"),
    [
        (datetime.timedelta(seconds=-1), "0s"),
        (datetime.timedelta(seconds=-5), "<invalid>"),
        (datetime.timedelta(seconds=45), "45s"),
        (datetime.timedelta(seconds=119), "119s"),
        (datetime.timedelta(minutes=5), "5m"),
        (datetime.timedelta(minutes=5, seconds=3), "5m3s"),
        (datetime.timedelta(minutes=42, seconds=59), "42m"),
        (datetime.timedelta(hours=3), "3h"),
        (datetime.timedelta(hours=3, minutes=12), "3h12m"),
        (datetime.timedelta(hours=20, minutes=5), "20h"),
        (datetime.timedelta(days=2), "2d"),
        (datetime.timedelta(days=2, hours=4), "2d4h"),
        (datetime.timedelta(days=30, hours=4), "30d"),
        (datetime.timedelta(days=3 * 365), "3y"),
        (datetime.timedelta(days=3 * 365 + 10), "3y10d"),
        (datetime.timedelta(days=9 * 365), "9y"),
    ],
)
def test_ages_read_as_kubectl_prints_them(delta: datetime.timedelta, age: str) -> None:
    assert human_duration(delta) == age


# --- built-in kinds --------------------------------------------------------------------------


def pod(name: str, phase: str, *statuses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    containers = [{"name": s["name"], "image": "conveyor:1"} for s in statuses]
    return {
        "metadata": {"name": name, "creationTimestamp": ago(minutes=7)},
        "spec": {"containers": containers, **extra},
        "status": {"phase": phase, "containerStatuses": list(statuses), "podIP": "10.0.0.5"},
    }


def test_pods_show_readiness_status_restarts_and_age() -> None:
    running = pod(
        "serve",
        "Running",
        {"name": "model", "ready": True, "restartCount": 0, "state": {"running": {}}},
    )
    crashing = pod(
        "train",
        "Running",
        {
            "name": "train",
            "ready": False,
            "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(minutes=2)}},
        },
    )
    failed = pod(
        "materialize",
        "Failed",
        {
            "name": "m",
            "ready": False,
            "restartCount": 0,
            "state": {"terminated": {"exitCode": 137}},
        },
    )
    done = pod(
        "once",
        "Succeeded",
        {
            "name": "m",
            "ready": False,
            "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
        },
    )

    table = table_for_builtin("Pod", [running, crashing, failed, done], now=NOW)

    assert [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
    ]
    assert [row["cells"][:5] for row in table["rows"]] == [
        ["serve", "1/1", "Running", "0", "7m"],
        ["train", "0/1", "CrashLoopBackOff", "3 (2m ago)", "7m"],
        ["materialize", "0/1", "ExitCode:137", "0", "7m"],
        ["once", "0/1", "Completed", "0", "7m"],
    ]
    assert table["rows"][0]["cells"][5:7] == ["10.0.0.5", "<none>"]


def test_pods_being_initialized_or_deleted() -> None:
    initializing = pod(
        "init",
        "Pending",
        {
            "name": "main",
            "ready": False,
            "restartCount": 0,
            "state": {"waiting": {"reason": "PodInitializing"}},
        },
        initContainers=[{"name": "fetch"}, {"name": "unpack"}],
    )
    initializing["status"]["initContainerStatuses"] = [
        {"name": "fetch", "restartCount": 0, "state": {"terminated": {"exitCode": 0}}},
        {"name": "unpack", "restartCount": 0, "state": {"running": {}}},
    ]
    deleting = pod(
        "old", "Running", {"name": "m", "ready": True, "restartCount": 0, "state": {"running": {}}}
    )
    deleting["metadata"]["deletionTimestamp"] = ago(seconds=3)

    rows = table_for_builtin("Pod", [initializing, deleting], now=NOW)["rows"]

    assert [row["cells"][2] for row in rows] == ["Init:1/2", "Terminating"]


def job(name: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": ago(minutes=30)},
        "spec": {
            "completions": 1,
            "parallelism": 1,
            "selector": {"matchLabels": {"job-name": name}},
            "template": {"spec": {"containers": [{"name": "train", "image": "c:1"}]}},
        },
        "status": status,
    }


def test_jobs_show_status_completions_duration_and_age() -> None:
    complete = job(
        "train-1",
        succeeded=1,
        startTime=ago(minutes=20),
        completionTime=ago(minutes=17),
        conditions=[{"type": "Complete", "status": "True"}],
    )
    failed = job(
        "train-2",
        failed=1,
        startTime=ago(minutes=10),
        conditions=[{"type": "Failed", "status": "True"}],
    )
    running = job("train-3", active=1, startTime=ago(seconds=30))
    indexed = job("trials")
    indexed["spec"] = {"parallelism": 4}

    table = table_for_builtin("Job", [complete, failed, running, indexed], now=NOW)

    assert [c["name"] for c in table["columnDefinitions"]][:5] == [
        "Name",
        "Status",
        "Completions",
        "Duration",
        "Age",
    ]
    assert [row["cells"][:5] for row in table["rows"]] == [
        ["train-1", "Complete", "1/1", "3m", "30m"],
        ["train-2", "Failed", "0/1", "10m", "30m"],
        ["train-3", "Running", "0/1", "30s", "30m"],
        ["trials", "Running", "0/1 of 4", "", "30m"],
    ]
    assert table["rows"][0]["cells"][5:] == ["train", "c:1", "job-name=train-1"]


def test_deployments_show_ready_up_to_date_available_and_age() -> None:
    deployment = {
        "metadata": {"name": "iris-serving", "creationTimestamp": ago(hours=2)},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "iris"}},
            "template": {"spec": {"containers": [{"name": "s", "image": "c:2"}]}},
        },
        "status": {"readyReplicas": 1, "updatedReplicas": 2, "availableReplicas": 1},
    }

    row = table_for_builtin("Deployment", [deployment], now=NOW)["rows"][0]

    assert row["cells"] == ["iris-serving", "1/2", 2, 1, "120m", "s", "c:2", "app=iris"]


def test_other_kinds_show_name_and_age() -> None:
    config = {"metadata": {"name": "settings", "creationTimestamp": ago(days=3)}, "data": {}}

    table = table_for_builtin(
        "ConfigMap", [config, {"metadata": {"name": "new"}}], now=NOW, include_object="None"
    )

    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]
    assert [row["cells"] for row in table["rows"]] == [["settings", "3d"], ["new", "<unknown>"]]
    assert "object" not in table["rows"][0]
