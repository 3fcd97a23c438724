"""The pages of `conveyor ui`, rendered from the objects as the API returned them (plain dicts).

Pure functions: bodies in, a whole HTML document out (`markup.page`). Every value from the
cluster goes through `markup.text`/`markup.link`; the comparison's fragments come escaped from
`training.comparison_report`. The version page is in `versionpage.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..training.metrics import live_metric_name
from .catalog import NamespaceView
from .markup import (
    ABSENT,
    Body,
    conditions_table,
    featureset_link,
    featureset_url,
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
    ready,
    status_of,
    table,
    text,
    version_link,
    version_url,
)

__all__ = [
    "live_cell",
    "render_error",
    "render_featureset",
    "render_overview",
    "render_pipeline",
    "versions_table",
]


def render_overview(views: Sequence[NamespaceView]) -> str:
    """`/`: per namespace, its FeatureSets, pipelines and model versions."""
    if not views:
        return page("Conveyor", ['<p class="empty">No FeatureSet, pipeline or version yet.</p>'])
    return page("Conveyor", [_namespace_section(view) for view in views])


def _namespace_section(view: NamespaceView) -> str:
    featuresets = [
        (
            link(featureset_url(view.name, name_of(fs)), name_of(fs)),
            ready(status_of(fs)),
            number((status_of(fs).get("latestSnapshot") or {}).get("rows")),
            _drifted(status_of(fs)),
            _leader_cell(view.name, status_of(fs).get("leader")),
            _featureset_reports(view.name, fs),
        )
        for fs in view.featuresets
    ]
    pipelines = [_pipeline_row(view.name, body) for body in view.pipelines]
    return "\n".join(
        [
            f"<h2>Namespace {text(view.name)}</h2>",
            "<h3>FeatureSets</h3>",
            table(
                ("FeatureSet", "ready", "rows", "drifted columns", "leader", "reports"),
                featuresets,
                empty="No FeatureSet.",
            ),
            "<h3>Training pipelines</h3>",
            table(
                ("pipeline", "FeatureSet", "model", "estimator", "metric", "ready", "last run"),
                pipelines,
                empty="No TrainingPipeline.",
            ),
            "<h3>Model versions</h3>",
            versions_table(view.name, view.versions),
        ]
    )


def _pipeline_row(namespace: str, body: Body) -> list[str]:
    spec, status = body.get("spec") or {}, status_of(body)
    model = spec.get("model") or {}
    runs = status.get("runs") or []
    last = f"{text(runs[0].get('id'))} {text(runs[0].get('phase'))}" if runs else ABSENT
    return [
        link(pipeline_url(namespace, name_of(body)), name_of(body)),
        link(featureset_url(namespace, str(spec.get("featureSet", ""))), spec.get("featureSet")),
        text(model.get("name")),
        text(model.get("estimator")),
        text(spec.get("metric")),
        ready(status),
        last,
    ]


def versions_table(namespace: str, versions: Sequence[Body]) -> str:
    """Versions with their stage, holdout score, live metric and training report."""
    rows = [
        [
            link(version_url(namespace, name_of(v)), name_of(v)),
            text((v.get("spec") or {}).get("model")),
            text((v.get("spec") or {}).get("stage")),
            text(status_of(v).get("stage")),
            _score(v),
            live_cell(v),
            _report_link(namespace, v),
        ]
        for v in versions
    ]
    header = ("version", "model", "stage", "served", "holdout score", "live", "report")
    return table(header, rows, empty="No ModelVersion yet.")


def live_cell(version: Body) -> str:
    """The live metric a version is judged on, and the labelled samples behind it."""
    live = status_of(version).get("liveMetrics") or {}
    metrics = live.get("metrics") or {}
    name = live_metric_name(metrics, (version.get("spec") or {}).get("metric"))
    if name is None:
        return ABSENT
    return (
        f"{text(name)} {number(metrics[name])} ({number(live.get('labelledSamples', 0))} labelled)"
    )


def render_featureset(
    body: Body,
    *,
    pipelines: Sequence[Body],
    versions: Sequence[Body],
    comparison: Sequence[str],
) -> str:
    """A FeatureSet: snapshot, profile, leader, the pipelines on it and their comparison.

    `comparison`: the comparison's HTML fragments (escaped already, each section with its
    heading), or a heading and a note saying why there is none."""
    namespace, name = namespace_of(body), name_of(body)
    spec, status = body.get("spec") or {}, status_of(body)
    latest = status.get("latestSnapshot") or {}
    schema = spec.get("schema") or {}
    summary = pairs_table(
        [
            ("Namespace", text(namespace)),
            ("Ready", ready(status)),
            ("Latest snapshot", text(latest.get("id"))),
            ("Rows", number(latest.get("rows"))),
            ("Created", text(latest.get("createdAt"))),
            ("Manifest", text(latest.get("uri"))),
            ("Sources", _sources(spec)),
            ("Target", text(schema.get("target"))),
            ("Entity key", text(schema.get("entityKey"))),
            ("Event time", text(schema.get("eventTime"))),
        ]
    )
    sections = [
        summary,
        f'<p class="reports">{_featureset_reports(namespace, body)}</p>',
        _profile_section(status),
        _leader_section(namespace, status.get("leader")),
        "<h2>Pipelines on this FeatureSet</h2>",
        table(
            ("pipeline", "FeatureSet", "model", "estimator", "metric", "ready", "last run"),
            [_pipeline_row(namespace, p) for p in pipelines],
            empty="No pipeline trains on this FeatureSet.",
        ),
        *comparison,
        "<h2>Versions</h2>",
        versions_table(namespace, versions),
        _snapshots_section(status),
        conditions_table(status),
        metadata_section(body.get("metadata") or {}),
    ]
    return page(f"FeatureSet {namespace}/{name}", sections)


def _sources(spec: Body) -> str:
    sources = spec.get("sources") or []
    return "<br>".join(f"{text(s.get('name'))}: {text(s.get('uri'))}" for s in sources) or ABSENT


def _profile_section(status: Body) -> str:
    profile = status.get("profile") or {}
    rows = [
        ("Columns", number(profile.get("columns"))),
        ("Rejected rows", number(profile.get("rejectedRows"))),
        ("Null cells", number(profile.get("nullCells"))),
        ("Largest drift score", number(profile.get("maxDriftScore"))),
        ("Drifted columns", _drifted(status)),
    ]
    return "<h2>Profile of the latest snapshot</h2>\n" + pairs_table(rows)


def _leader_section(namespace: str, leader: Body | None) -> str:
    if not leader:
        return '<h2>Leader</h2>\n<p class="empty">No leader: no comparable versions yet.</p>'
    rows = [
        ("Version", version_link(namespace, leader.get("version"))),
        ("Pipeline", pipeline_link(namespace, leader.get("pipeline"))),
        ("Metric", text(leader.get("metric"))),
        ("Score", number(leader.get("score"))),
        ("Holdout fingerprint", text(leader.get("holdout"))),
        ("Versions compared", number(leader.get("compared"))),
    ]
    return "<h2>Leader</h2>\n" + pairs_table(rows)


def _snapshots_section(status: Body) -> str:
    rows = [
        (text(s.get("id")), number(s.get("rows")), text(s.get("createdAt")))
        for s in status.get("snapshots") or []
    ]
    return "<h2>Snapshots</h2>\n" + table(("snapshot", "rows", "created"), rows)


def render_pipeline(body: Body, *, versions: Sequence[Body]) -> str:
    """A TrainingPipeline: what it trains, its runs and the versions they registered."""
    namespace, name = namespace_of(body), name_of(body)
    spec, status = body.get("spec") or {}, status_of(body)
    model = spec.get("model") or {}
    search = spec.get("search") or {}
    summary = pairs_table(
        [
            ("FeatureSet", featureset_link(namespace, spec.get("featureSet"))),
            ("Ready", ready(status)),
            ("Task", text(spec.get("task") or status.get("resolvedTask"))),
            ("Model", text(model.get("name"))),
            ("Estimator", text(model.get("estimator"))),
            ("Parameters", plain(model.get("params") or {})),
            ("Metric", text(spec.get("metric"))),
            ("Split", plain(spec.get("split") or {})),
            (
                "Search",
                f"{text(search.get('strategy', 'none'))}; space {plain(search.get('space'))}",
            ),
            ("Promotion", plain(spec.get("promotion") or {})),
            ("Active run", text(status.get("activeRun"))),
            ("Production version", version_link(namespace, status.get("productionVersion"))),
            ("Latest version", version_link(namespace, status.get("latestVersion"))),
            ("Serving URL", text(status.get("servingUrl"))),
        ]
    )
    sections = [
        summary,
        "<h2>Runs</h2>",
        _runs_table(namespace, status.get("runs") or []),
        "<h2>Versions</h2>",
        versions_table(namespace, versions),
        conditions_table(status),
        metadata_section(body.get("metadata") or {}),
    ]
    return page(f"TrainingPipeline {namespace}/{name}", sections)


def _runs_table(namespace: str, runs: Sequence[Body]) -> str:
    rows = [
        (
            f'<span id="run-{text(run.get("id"))}">{text(run.get("id"))}</span>',
            text(run.get("phase")),
            _trigger(run.get("trigger") or {}),
            text(run.get("snapshot")),
            text(run.get("startTime")),
            text(run.get("completionTime")),
            number(run.get("bestScore")),
            version_link(namespace, run.get("modelVersion")),
            text(run.get("message")),
        )
        for run in runs
    ]
    header = ("run", "phase", "trigger", "snapshot", "started", "finished", "best score")
    return table((*header, "version", "message"), rows, empty="No run yet.")


def _trigger(trigger: Body) -> str:
    if not trigger:
        return ABSENT
    reason = trigger.get("reason")
    return text(trigger.get("type")) + (f": {text(reason)}" if reason else "")


def render_error(title: str, message: str) -> str:
    """A page that says what went wrong, as text (never a stack trace)."""
    return page(title, [f'<p class="error">{text(message)}</p>'])


# --- cells ----------------------------------------------------------------------------------


def _featureset_reports(namespace: str, body: Body) -> str:
    name = name_of(body)
    latest = status_of(body).get("latestSnapshot") or {}
    data = (
        link(featureset_url(namespace, name, "/report"), "data report")
        if latest.get("reportUrl")
        else '<span class="empty">no data report yet</span>'
    )
    comparison = link(featureset_url(namespace, name, "/comparison"), "comparison report")
    return f"{data} {comparison}"


def _report_link(namespace: str, version: Body) -> str:
    if not ((version.get("spec") or {}).get("artifact") or {}).get("reportUri"):
        return ABSENT
    return link(version_url(namespace, name_of(version), "/report"), "training report")


def _leader_cell(namespace: str, leader: Body | None) -> str:
    if not leader:
        return ABSENT
    score = f"{text(leader.get('metric'))} {number(leader.get('score'))}"
    return f'<span class="leader">{version_link(namespace, leader.get("version"))}</span> {score}'


def _drifted(status: Body) -> str:
    profile = status.get("profile") or {}
    if not profile:
        return ABSENT
    return text(", ".join(profile.get("driftedColumns") or []) or "none")


def _score(version: Body) -> str:
    spec = version.get("spec") or {}
    metric = spec.get("metric")
    value = (spec.get("metrics") or {}).get(metric) if metric else None
    return f"{text(metric)} {number(value)}" if metric else ABSENT
