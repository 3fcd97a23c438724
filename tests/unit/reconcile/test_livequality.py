"""The monitor's decisions: which versions it watches, and its report as status and gauges."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from conveyor.api.v1alpha1.modelversion import LiveMetrics
from conveyor.cli.models import live_cells, same_requests_lines
from conveyor.features.livequality import VersionReport
from conveyor.reconcile.livequality import gauge_drift, live_metrics_status, watched_versions

NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)


def version(n: int, stage: str, history: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": f"iris-v{n}"},
        "spec": {
            "version": n,
            "stage": stage,
            "task": "classification",
            "artifact": {"cardUri": f"s3://conveyor/models/iris/{n}/card.json"},
        },
        "status": {"stage": stage, "stageHistory": history or []},
    }


def report() -> VersionReport:
    return VersionReport(
        version=3,
        window_seconds=3600.0,
        served=120,
        labelled=40,
        metrics={"accuracy": 0.9, "log_loss": math.inf},
        drift={
            "width": {"psi": 0.3, "ks": 0.2},
            "colour": {"chi2": 5.0, "p_value": 0.02, "cramers_v": 0.1},
        },
        updated=NOW,
    )


def test_watches_production_candidates_and_recently_archived_versions() -> None:
    recently = [
        {"stage": "Production", "time": "2026-03-14T08:00:00Z"},
        {"stage": "Archived", "time": "2026-03-14T11:00:00Z"},
    ]
    long_ago = [
        {"stage": "Production", "time": "2026-03-01T08:00:00Z"},
        {"stage": "Archived", "time": "2026-03-02T08:00:00Z"},
    ]
    items = [
        version(4, "Candidate"),
        version(3, "Production"),
        version(2, "Archived", recently),
        version(1, "Archived", long_ago),
        version(5, "Rejected"),
    ]
    watched = watched_versions(items, NOW, window_seconds=3600 * 6)
    assert [w.version for w in watched] == [2, 3, 4]
    assert watched[1].card_uri == "s3://conveyor/models/iris/3/card.json"


def test_status_block_is_the_api_model_without_non_finite_figures() -> None:
    block = live_metrics_status(report(), read=7, unreadable=1)
    assert block["labelledSamples"] == 40 and block["windowSeconds"] == 3600.0
    assert block["metrics"] == {"accuracy": 0.9}
    assert block["drift"]["colour"] == {"chi2": 5.0, "pValue": 0.02, "cramersV": 0.1}
    assert block["observedObjects"] == 7 and block["unreadableObjects"] == 1
    assert LiveMetrics.model_validate(block).predictions == 120


def test_gauges_export_the_effect_sizes_not_the_p_value() -> None:
    assert gauge_drift(report()) == {
        ("width", "psi"): 0.3,
        ("width", "ks"): 0.2,
        ("colour", "chi2"): 5.0,
        ("colour", "cramers_v"): 0.1,
    }


def test_models_table_shows_the_live_metric_and_labelled_samples() -> None:
    status = {"liveMetrics": {"metrics": {"accuracy": 0.91, "f1": 0.9}, "labelledSamples": 40}}
    assert live_cells({"metric": "f1"}, status) == ["f1 0.9000", "40"]
    assert live_cells({"metric": "roc_auc"}, status) == ["accuracy 0.9100", "40"]
    assert live_cells({"metric": "f1"}, {}) == ["-", "-"]


def test_models_shows_a_shadow_beside_its_champion_on_the_same_requests() -> None:
    same = {
        "version": 1,
        "labelledSamples": 60,
        "metrics": {"f1": 0.9},
        "otherMetrics": {"f1": 0.7},
    }
    versions = [
        {"metadata": {"name": "iris-v1"}, "spec": {"version": 1, "metric": "f1"}},
        {
            "metadata": {"name": "iris-v2"},
            "spec": {"version": 2, "metric": "f1"},
            "status": {"liveMetrics": {"sameRequests": [same]}},
        },
    ]
    assert same_requests_lines(versions) == [
        "  iris-v2 f1 0.9000 against iris-v1 0.7000 on 60 labelled requests both answered"
    ]
