"""What each address shows: read through the `Catalog`, render a page. Blocking (the
Kubernetes client and S3 are synchronous): the app runs these in threads.

A view raises `catalog.NotFound` for a missing object and lets `ConveyorError` (the API or S3
failed) through; the app turns both into pages that say so.
"""

from __future__ import annotations

from .catalog import Catalog
from .pages import render_featureset, render_overview, render_pipeline
from .versionpage import render_version

__all__ = [
    "comparison_report",
    "data_report",
    "featureset",
    "overview",
    "pipeline",
    "training_report",
    "version",
]


def overview(catalog: Catalog) -> str:
    return render_overview(catalog.overview())


def featureset(catalog: Catalog, namespace: str, name: str) -> str:
    body = catalog.featureset(namespace, name)
    pipelines = catalog.pipelines_on(namespace, name)
    names = [str(p["metadata"]["name"]) for p in pipelines]
    return render_featureset(
        body,
        pipelines=pipelines,
        versions=catalog.versions_of(namespace, names),
        comparison=_comparison_sections(catalog, namespace, name),
    )


def pipeline(catalog: Catalog, namespace: str, name: str) -> str:
    body = catalog.pipeline(namespace, name)
    return render_pipeline(body, versions=catalog.versions_of(namespace, [name]))


def version(catalog: Catalog, namespace: str, name: str) -> str:
    body = catalog.version(namespace, name)
    card, problem = catalog.card(body)
    return render_version(body, card=card, card_problem=problem)


def data_report(catalog: Catalog, namespace: str, name: str) -> bytes:
    return catalog.data_report(catalog.featureset(namespace, name))


def training_report(catalog: Catalog, namespace: str, name: str) -> bytes:
    return catalog.training_report(catalog.version(namespace, name))


def comparison_report(catalog: Catalog, namespace: str, name: str) -> str:
    catalog.featureset(namespace, name)
    return "<p>The comparison report is not available yet.</p>"


def _comparison_sections(catalog: Catalog, namespace: str, name: str) -> list[str]:
    return ['<p class="empty">The comparison is not available yet.</p>']
