"""The page of one ModelVersion: its metrics against the baseline, gates, stage history,
lineage, live quality and serving, and the figures of its model card (holdout, footprint).

Cards written before a field existed lack it: the page shows "—" there, and says why when the
card itself could not be read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ..training.metrics import live_metric_name
from .markup import (
    ABSENT,
    Body,
    conditions_table,
    featureset_link,
    link,
    metadata_section,
    name_of,
    namespace_of,
    number,
    page,
    pairs_table,
    pipeline_link,
    pipeline_url,
    plain,
    status_of,
    table,
    text,
    version_url,
)
from .pages import live_cell

__all__ = ["render_version"]

_DRIFT_FIGURES = ("psi", "ks", "chi2", "pValue", "cramersV")


def render_version(body: Body, *, card: Mapping[str, Any], card_problem: str | None) -> str:
    namespace, name = namespace_of(body), name_of(body)
    spec, status = body.get("spec") or {}, status_of(body)
    metric = spec.get("metric")
    summary = pairs_table(
        [
            ("Model", text(spec.get("model"))),
            ("Version", number(spec.get("version"))),
            ("Task", text(spec.get("task"))),
            ("Stage (desired)", text(spec.get("stage"))),
            ("Stage (in effect)", text(status.get("stage"))),
            ("Estimator", text(card.get("estimator"))),
            ("Parameters", plain(spec.get("params") or {})),
            (
                "Holdout score",
                f"{text(metric)} {number((spec.get('metrics') or {}).get(metric))}",
            ),
            ("Live", live_cell(body)),
        ]
    )
    report = (
        link(version_url(namespace, name, "/report"), "training report")
        if (spec.get("artifact") or {}).get("reportUri")
        else '<span class="empty">no training report</span>'
    )
    sections = [
        summary,
        f'<p class="reports">{report}</p>',
        _metrics_section(spec, card),
        _gates_section(spec),
        _stage_history(status),
        _lineage_section(namespace, spec),
        _card_section(card, card_problem),
        _live_section(status, spec.get("metric")),
        _serving_section(status),
        _artifact_section(spec),
        conditions_table(status),
        metadata_section(body.get("metadata") or {}),
    ]
    return page(f"ModelVersion {namespace}/{name}", sections)


def _metrics_section(spec: Body, card: Mapping[str, Any]) -> str:
    metrics = spec.get("metrics") or {}
    baseline = dict(card.get("baseline") or {})
    for key, value in metrics.items():
        if key.startswith("baseline_"):
            baseline.setdefault(key.removeprefix("baseline_"), value)
    primary = spec.get("metric")
    rows = [
        (
            f"<strong>{text(key)}</strong>" if key == primary else text(key),
            number(value),
            number(baseline.get(key)),
        )
        for key, value in sorted(metrics.items())
        if not key.startswith("baseline_")
    ]
    header = ("metric", "model", "dummy baseline")
    return "<h2>Holdout metrics</h2>\n" + table(header, rows, empty="No metrics recorded.")


def _gates_section(spec: Body) -> str:
    rows = [
        (
            text(gate.get("name")),
            '<span class="status-true">pass</span>'
            if gate.get("passed")
            else '<span class="status-false">fail</span>',
            text(gate.get("message")),
        )
        for gate in spec.get("gates") or []
    ]
    return "<h2>Validation gates</h2>\n" + table(
        ("gate", "result", "measured"), rows, empty="No gates are configured."
    )


def _stage_history(status: Body) -> str:
    rows = [
        (text(change.get("time")), text(change.get("stage")), text(change.get("reason")))
        for change in status.get("stageHistory") or []
    ]
    return "<h2>Stage history</h2>\n" + table(("time", "stage", "reason"), rows)


def _lineage_section(namespace: str, spec: Body) -> str:
    lineage = spec.get("lineage") or {}
    pipeline, run = lineage.get("pipeline"), lineage.get("run")
    run_cell = (
        link(f"{pipeline_url(namespace, str(pipeline))}#run-{quote(str(run), safe='')}", run)
        if pipeline and run
        else text(run)
    )
    rows = [
        ("Pipeline", pipeline_link(namespace, pipeline)),
        ("Run", run_cell),
        ("FeatureSet", featureset_link(namespace, lineage.get("featureSet"))),
        ("Snapshot", text(lineage.get("snapshot"))),
        ("Image", text(lineage.get("image"))),
        ("Trained at", text(lineage.get("trainedAt"))),
    ]
    return "<h2>Lineage</h2>\n" + pairs_table(rows)


def _card_section(card: Mapping[str, Any], problem: str | None) -> str:
    """The holdout the version was judged on and what it costs to train, store and run."""
    holdout = card.get("holdout") or {}
    footprint = card.get("footprint") or {}
    note = f'<p class="error">{text(problem)}</p>' if problem else ""
    judged = pairs_table(
        [
            ("Fingerprint", f"<code>{text(holdout.get('fingerprint'))}</code>"),
            ("Strategy", text(holdout.get("strategy"))),
            ("Test size", number(holdout.get("test_size"))),
            ("Seed", number(holdout.get("seed"))),
            ("Stratified", text(holdout.get("stratified"))),
            ("Rows assigned by", text(holdout.get("assigned_by"))),
            ("Holdout rows", number(holdout.get("rows"))),
        ]
    )
    cost = pairs_table(
        [
            ("Training seconds", number(footprint.get("training_seconds"))),
            ("Model bytes", number(footprint.get("model_bytes"))),
            ("ONNX bytes", number(footprint.get("onnx_bytes"))),
            ("Features", number(footprint.get("features"))),
            ("Runtime", text(footprint.get("runtime"))),
            ("Latency, one row (s)", number(footprint.get("latency_one_row_seconds"))),
            ("Latency, 1000 rows (s)", number(footprint.get("latency_1000_rows_seconds"))),
        ]
    )
    return f"<h2>Holdout</h2>\n{note}{judged}\n<h2>Footprint</h2>\n{cost}"


def _live_section(status: Body, metric: str | None) -> str:
    live = status.get("liveMetrics") or {}
    if not live:
        return (
            '<h2>Live metrics</h2>\n<p class="empty">No live figures: not served, or no '
            "logs in the window.</p>"
        )
    summary = pairs_table(
        [
            ("Window (s)", number(live.get("windowSeconds"))),
            ("Predictions", number(live.get("predictions"))),
            ("Labelled samples", number(live.get("labelledSamples"))),
            ("Updated", text(live.get("lastUpdated"))),
        ]
    )
    metrics = table(
        ("metric", "live value"),
        [(text(k), number(v)) for k, v in sorted((live.get("metrics") or {}).items())],
        empty="No labelled predictions in the window.",
    )
    drift = table(
        ("column", *_DRIFT_FIGURES),
        [
            (text(column), *(number((figures or {}).get(f)) for f in _DRIFT_FIGURES))
            for column, figures in sorted((live.get("drift") or {}).items())
        ],
        empty="No drift figures.",
    )
    same = _same_requests(live, metric)
    return (
        f"<h2>Live metrics</h2>\n{summary}\n{metrics}\n<h3>Input drift</h3>\n{drift}\n"
        f"<h3>On the same requests</h3>\n{same}"
    )


def _same_requests(live: Body, metric: str | None) -> str:
    """Beside each other served version (a shadow and its champion) on the labelled requests
    both answered: the one comparison of live figures that is fair."""
    rows = []
    for same in live.get("sameRequests") or []:
        ours, theirs = same.get("metrics") or {}, same.get("otherMetrics") or {}
        name = live_metric_name(ours, metric)
        rows.append(
            (
                text(f"version {same.get('version')}"),
                number(same.get("labelledSamples")),
                text(name),
                number(ours.get(name)) if name else ABSENT,
                number(theirs.get(name)) if name else ABSENT,
            )
        )
    header = ("other version", "labelled requests", "metric", "this version", "other version")
    return table(header, rows, empty="No other version answered the same requests.")


def _serving_section(status: Body) -> str:
    serving = status.get("serving") or {}
    if not serving:
        return '<h2>Serving</h2>\n<p class="empty">Not served.</p>'
    rows = [
        ("Deployment", text(serving.get("deployment"))),
        ("Service", text(serving.get("service"))),
        ("URL", text(serving.get("url"))),
        (
            "Replicas ready",
            f"{number(serving.get('readyReplicas', 0))} of {number(serving.get('replicas', 0))}",
        ),
    ]
    return "<h2>Serving</h2>\n" + pairs_table(rows)


def _artifact_section(spec: Body) -> str:
    artifact = spec.get("artifact") or {}
    onnx = artifact.get("onnx") or {}
    rows = [
        ("Model file", text(artifact.get("uri"))),
        ("Digest", f"<code>{text(artifact.get('digest'))}</code>"),
        ("Size (bytes)", number(artifact.get("sizeBytes"))),
        ("ONNX file", text(onnx.get("uri")) if onnx else ABSENT),
        ("Card", text(artifact.get("cardUri"))),
    ]
    return "<h2>Artifact</h2>\n" + pairs_table(rows)
