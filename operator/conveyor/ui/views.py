"""What each address shows: read through the `Catalog`, render a page. Blocking (the
Kubernetes client and S3 are synchronous): the app runs these in threads.

A view raises `catalog.NotFound` for a missing object and lets `ConveyorError` (the API or S3
failed) through; the app turns both into pages that say so. The comparison of a FeatureSet's
pipelines is `conveyor compare --featureset`'s: the same candidates, the same table and plots.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from ..training.comparison import Comparison, ComparisonError, compare
from ..training.comparison_report import comparison_sections, render_comparison_report
from .catalog import Catalog
from .comparisons import candidates_of, pick_versions
from .markup import page, text
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

_PLOTTING = threading.Lock()
"""Plots are drawn inside matplotlib.rc_context, which changes process-wide settings: one
comparison is drawn at a time, whatever the number of threads serving pages."""


def overview(catalog: Catalog) -> str:
    return render_overview(catalog.overview())


def featureset(catalog: Catalog, namespace: str, name: str) -> str:
    body = catalog.featureset(namespace, name)
    pipelines, versions = _trained_on(catalog, namespace, name)
    compared = _compare(catalog, pipelines, versions)
    if isinstance(compared, str):
        comparison = ["<h2>Comparison</h2>", _note(compared)]
    else:
        with _PLOTTING:
            comparison = comparison_sections(compared)
    return render_featureset(body, pipelines=pipelines, versions=versions, comparison=comparison)


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
    """The comparison of the FeatureSet's pipelines as a page of its own (as `conveyor compare
    --featureset NAME --html` writes it)."""
    catalog.featureset(namespace, name)
    title = f"Comparison: FeatureSet {namespace}/{name}"
    compared = _compare(catalog, *_trained_on(catalog, namespace, name))
    if isinstance(compared, str):
        return page(title, [_note(compared)])
    with _PLOTTING:
        return render_comparison_report(compared, title)


def _trained_on(
    catalog: Catalog, namespace: str, name: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pipelines on a FeatureSet and the versions they registered."""
    pipelines = catalog.pipelines_on(namespace, name)
    names = [str(p["metadata"]["name"]) for p in pipelines]
    return pipelines, catalog.versions_of(namespace, names) if names else []


def _compare(
    catalog: Catalog, pipelines: Sequence[Mapping[str, Any]], versions: Sequence[Mapping[str, Any]]
) -> Comparison | str:
    """The comparison of the versions already read for the page (as `conveyor compare
    --featureset` picks them), or why there is none (no version yet, or versions that cannot
    be compared, such as a classifier beside a regressor)."""
    if not versions:
        return "No pipeline on this FeatureSet has registered a version yet: nothing to compare."
    names = [str(p["metadata"]["name"]) for p in pipelines]
    try:
        return compare(candidates_of(catalog.storage, pick_versions(versions, names)))
    except ComparisonError as error:
        return str(error)


def _note(message: str) -> str:
    return f'<p class="empty">{text(message)}</p>'
