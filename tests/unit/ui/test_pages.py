"""The pages render what the objects hold, and every piece of text from the cluster as text."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from conveyor.ui.catalog import NamespaceView
from conveyor.ui.pages import render_error, render_featureset, render_overview, render_pipeline
from conveyor.ui.versionpage import render_version
from tests.unit.ui.world import (
    ATTRIBUTE,
    CARD,
    HOSTILE,
    NAMESPACE,
    SCRIPT,
    featureset,
    pipeline,
    version,
)


class Elements(HTMLParser):
    """The start tags of a page, as a browser's tokenizer sees them."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _assert_inert(page: str) -> Elements:
    """No script, image, bold or event handler made it in as markup; the text is all there."""
    parsed = Elements(page)
    tags = {tag for tag, _ in parsed.tags}
    assert not tags & {"script", "img", "b", "iframe"}, tags
    assert not any(k.startswith("on") for _, attrs in parsed.tags for k in attrs)
    for _, attrs in parsed.tags:
        assert all(not (v or "").lower().startswith("javascript:") for v in attrs.values())
    assert SCRIPT not in page and ATTRIBUTE not in page
    return parsed


def _overview() -> str:
    view = NamespaceView(
        NAMESPACE,
        featuresets=[featureset(leader={"version": f"x{SCRIPT}", "metric": "f1", "score": 0.9})],
        pipelines=[pipeline()],
        versions=[version()],
    )
    return render_overview([view])


def test_the_overview_lists_each_kind_with_links_and_reports() -> None:
    page = _overview()
    parsed = _assert_inert(page)
    hrefs = [attrs["href"] for tag, attrs in parsed.tags if tag == "a"]
    assert "/namespaces/ml/featuresets/iris" in hrefs
    assert "/namespaces/ml/featuresets/iris/report" in hrefs
    assert "/namespaces/ml/featuresets/iris/comparison" in hrefs
    assert "/namespaces/ml/pipelines/iris" in hrefs
    assert "/namespaces/ml/versions/iris-classifier-v1" in hrefs
    assert "/namespaces/ml/versions/iris-classifier-v1/report" in hrefs
    # A leader named with markup is a link whose address is quoted and whose text is escaped.
    assert "/namespaces/ml/versions/x%3Cscript%3Ealert%281%29%3C%2Fscript%3E" in hrefs
    text = "".join(parsed.text)
    assert f"x{SCRIPT}" in text
    assert "f1_macro 0.88 (30 labelled)" in text  # the live metric the version is judged on


def test_an_empty_cluster_says_so() -> None:
    assert "No FeatureSet, pipeline or version yet" in render_overview([])


def test_the_featureset_page_shows_text_as_text() -> None:
    body = featureset(
        leader={
            "version": "iris-classifier-v1",
            "pipeline": "iris",
            "metric": "f1_macro",
            "score": 0.9736,
            "holdout": "0123456789abcdef",
            "compared": 2,
        }
    )
    page = render_featureset(
        body,
        pipelines=[pipeline("iris"), pipeline("iris-logistic", "iris-logistic")],
        versions=[version()],
        comparison=["<table><tr><td>the comparison</td></tr></table>"],
    )
    parsed = _assert_inert(page)
    text = "".join(parsed.text)
    assert HOSTILE in text  # the annotation, the condition's message: shown as written
    assert f"petal_{SCRIPT}" in text
    assert "0123456789abcdef" in text and "the comparison" in text
    assert "iris-logistic" in text
    assert re.search(r"<h1>FeatureSet ml/iris</h1>", page)


def test_absent_fields_show_a_dash() -> None:
    body = featureset()
    body["status"] = {}
    page = render_featureset(body, pipelines=[], versions=[], comparison=[])
    assert "No leader" in page
    assert "No pipeline trains on this FeatureSet." in page
    assert "no data report yet" in page


def test_the_pipeline_page_lists_runs_with_their_trigger_and_version() -> None:
    page = render_pipeline(pipeline(), versions=[version()])
    parsed = _assert_inert(page)
    text = "".join(parsed.text)
    assert f"manual: {HOSTILE}" in text and ATTRIBUTE in text
    assert ("span", {"id": "run-iris-run-1"}) in parsed.tags
    assert "Succeeded" in text and "0.97" in text


def test_the_version_page_shows_metrics_lineage_card_and_live_figures() -> None:
    page = render_version(version(), card=CARD, card_problem=None)
    parsed = _assert_inert(page)
    text = "".join(parsed.text)
    hrefs = [attrs["href"] for tag, attrs in parsed.tags if tag == "a"]
    assert "/namespaces/ml/pipelines/iris#run-iris-run-1" in hrefs
    assert "/namespaces/ml/featuresets/iris" in hrefs
    assert "/namespaces/ml/versions/iris-classifier-v1/report" in hrefs
    assert "0123456789abcdef" in text and "123456" in text and "0.00012" in text
    assert f"RandomForest{SCRIPT}" in text and f"col{ATTRIBUTE}" in text
    assert "0.9736" in text and "0.17" in text  # the model and its dummy baseline
    assert "2 of 2" in text
    assert "version 2" in text and "0.91" in text  # beside the shadow, on the same requests


def test_an_old_card_shows_dashes_and_a_missing_one_says_why() -> None:
    page = render_version(version(), card={}, card_problem=f"no card {SCRIPT}")
    _assert_inert(page)
    assert "—" in page
    assert "no card &lt;script&gt;" in page


@pytest.mark.parametrize("message", [SCRIPT, ATTRIBUTE, HOSTILE])
def test_error_pages_escape_the_message(message: str) -> None:
    page = render_error("The cluster or the object store failed", message)
    parsed = _assert_inert(page)
    assert message in "".join(parsed.text)
