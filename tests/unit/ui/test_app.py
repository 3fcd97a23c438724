"""The server: GET only, the security headers on every answer, pages for what is missing or
failed (never a stack trace), names checked before the API is asked, and the Host guard."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from conveyor.clients.s3 import ObjectStorage
from conveyor.errors import ApiError, ClusterUnavailable
from conveyor.ui.app import SECURITY_HEADERS, answered_hosts, create_app, serve
from conveyor.ui.catalog import Catalog
from tests.unit.ui.world import (
    BUCKET,
    CARD,
    SCRIPT,
    RegistryKube,
    registry,
    run_layout,
    snapshot_layout,
)

PAGES = [
    "/",
    "/namespaces/ml/featuresets/iris",
    "/namespaces/ml/featuresets/iris/report",
    "/namespaces/ml/featuresets/iris/comparison",
    "/namespaces/ml/pipelines/iris",
    "/namespaces/ml/versions/iris-classifier-v1",
    "/namespaces/ml/versions/iris-classifier-v1/report",
]


@pytest.fixture
def kube() -> RegistryKube:
    return RegistryKube(registry())


@pytest.fixture
def catalog(kube: RegistryKube, storage: ObjectStorage) -> Catalog:
    storage.put_bytes(BUCKET, snapshot_layout().report, b"<h1>FeatureSet ml/iris</h1>")
    run = run_layout()
    storage.put_bytes(BUCKET, run.report, b"<h1>Training report: iris-classifier v1</h1>")
    storage.put_bytes(BUCKET, run.card, json.dumps(CARD).encode())
    logistic = {**CARD, "model": "iris-logistic", "estimator": "LogisticRegression"}
    storage.put_bytes(BUCKET, run_layout("iris-logistic").card, json.dumps(logistic).encode())
    return Catalog(kube, storage)  # type: ignore[arg-type]


@pytest.fixture
async def http(catalog: Catalog) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(catalog))) as client:
        yield client


def _assert_headers(headers: Any) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, name


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_answers_html_with_the_security_headers(
    http: TestClient[Any, Any], path: str
) -> None:
    response = await http.get(path)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/html"
    _assert_headers(response.headers)
    assert "<h1>" in await response.text()


async def test_the_featureset_page_compares_its_pipelines(http: TestClient[Any, Any]) -> None:
    page = await (await http.get("/namespaces/ml/featuresets/iris")).text()
    table = page[page.index('<table class="comparison"') :]
    table = table[: table.index("</table>")]
    for shown in ("iris-classifier-v1", "iris-logistic-v1", "LogisticRegression"):
        assert shown in table
    report = await (await http.get("/namespaces/ml/featuresets/iris/comparison")).text()
    assert "<h1>Comparison: FeatureSet ml/iris</h1>" in report
    assert '<table class="comparison"' in report


async def test_a_featureset_without_versions_has_nothing_to_compare(
    catalog: Catalog, kube: RegistryKube
) -> None:
    kube.objects = [o for o in kube.objects if o["kind"] == "FeatureSet"]
    async with TestClient(TestServer(create_app(catalog))) as client:
        for path in (
            "/namespaces/ml/featuresets/iris",
            "/namespaces/ml/featuresets/iris/comparison",
        ):
            response = await client.get(path)
            assert response.status == 200
            assert "nothing to compare" in await response.text()


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("path", ["/", "/namespaces/ml/versions/iris-classifier-v1"])
async def test_nothing_but_get_is_answered(
    http: TestClient[Any, Any], kube: RegistryKube, method: str, path: str
) -> None:
    response = await http.request(method, path, data=b'{"spec": {"stage": "Production"}}')
    assert response.status == 405
    _assert_headers(response.headers)
    assert kube.calls == []


async def test_unknown_objects_and_addresses_are_404_pages(http: TestClient[Any, Any]) -> None:
    for path in ("/namespaces/ml/featuresets/nope", "/nowhere", "/namespaces/ml/secrets/x"):
        response = await http.get(path)
        assert response.status == 404, path
        _assert_headers(response.headers)
        assert "<h1>Not found</h1>" in await response.text()


@pytest.mark.parametrize(
    "name", ["..", "Upper", "a%2F..%2F..%2Fapi%2Fv1%2Fsecrets", "x" * 254, "%3Cscript%3E"]
)
async def test_names_that_are_no_kubernetes_names_never_reach_the_api(
    http: TestClient[Any, Any], kube: RegistryKube, name: str
) -> None:
    response = await http.get(f"/namespaces/ml/versions/{name}")
    assert response.status == 404
    assert kube.calls == []
    assert "<script>" not in await response.text()


async def test_a_failing_api_is_a_page_that_says_so(
    http: TestClient[Any, Any], kube: RegistryKube
) -> None:
    kube.failure = ApiError(f"forbidden: {SCRIPT}", 403)
    response = await http.get("/")
    assert response.status == 502
    _assert_headers(response.headers)
    page = await response.text()
    assert "forbidden: &lt;script&gt;alert(1)&lt;/script&gt;" in page
    kube.failure = ClusterUnavailable("Could not GET /apis: the API server is unreachable")
    assert "the API server is unreachable" in await (await http.get("/")).text()


async def test_a_bug_is_a_500_page_without_a_stack_trace(
    http: TestClient[Any, Any], kube: RegistryKube
) -> None:
    kube.failure = KeyError("<metadata>")
    response = await http.get("/namespaces/ml/pipelines/iris")
    assert response.status == 500
    _assert_headers(response.headers)
    page = await response.text()
    assert "KeyError" in page and "&lt;metadata&gt;" in page and "Traceback" not in page


async def test_a_missing_report_is_a_404_page(
    http: TestClient[Any, Any], kube: RegistryKube
) -> None:
    response = await http.get("/namespaces/ml/versions/iris-logistic-v1/report")
    assert response.status == 404
    assert "is not in the object store" in await response.text()


async def test_other_host_headers_are_refused(catalog: Catalog) -> None:
    app = create_app(catalog, hosts={"127.0.0.1:8080"})
    async with TestClient(TestServer(app)) as client:
        refused = await client.get("/", headers={"Host": "attacker.example:8080"})
        assert refused.status == 403
        _assert_headers(refused.headers)
        assert "DNS rebinding" in await refused.text()
        answered = await client.get("/", headers={"Host": "127.0.0.1:8080"})
        assert answered.status == 200


def test_the_hosts_answered_are_the_bound_address_or_any_on_a_wildcard() -> None:
    assert answered_hosts("127.0.0.1", 8080) == {"127.0.0.1:8080", "localhost:8080", "[::1]:8080"}
    assert answered_hosts("localhost", 80) == {
        "127.0.0.1:80",
        "localhost:80",
        "[::1]:80",
        "127.0.0.1",
        "localhost",
        "[::1]",
    }
    assert answered_hosts("10.0.0.5", 8080) == {"10.0.0.5:8080"}
    assert answered_hosts("0.0.0.0", 8080) == set()


async def test_serve_binds_a_free_port_and_announces_it(catalog: Catalog) -> None:
    announced: asyncio.Queue[str] = asyncio.Queue()
    server = asyncio.create_task(serve(catalog, "127.0.0.1", 0, announced.put_nowait))
    try:
        url = await asyncio.wait_for(announced.get(), timeout=10)
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0/")
        status, body = await asyncio.to_thread(_get, url)
        assert status == 200 and "Namespace ml" in body
        localhost = url.replace("127.0.0.1", "localhost")
        assert (await asyncio.to_thread(_get, localhost))[0] == 200
        request = urllib.request.Request(url, method="POST", data=b"{}")
        assert (await asyncio.to_thread(_status, request)) == 405
    finally:
        server.cancel()
        with pytest.raises(asyncio.CancelledError):
            await server


def _status(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        with error:
            return error.code


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()
