"""The web server of `conveyor ui`: aiohttp, GET (and HEAD) routes only, one page per address.

Read-only by construction: every route is a GET over `views`, which only read; aiohttp answers
405 to any other method. Each response carries a Content-Security-Policy that allows no script,
no frame, no request anywhere (styles inline, images only as data: URIs): the pages and the
stored reports are HTML with inline SVG and need nothing else, and a value that slipped past
the escaping could still not run.

Addresses name Kubernetes objects, so their path segments must be Kubernetes names; anything
else is a 404 before the API is asked. The Host header must be the address the server is bound
to (or, on a loopback address, a loopback name): a page elsewhere that points a DNS name of its
own at 127.0.0.1 (DNS rebinding) gets a 403, not the cluster's objects.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..errors import ConveyorError
from . import views
from .catalog import Catalog, NotFound
from .pages import render_error

__all__ = ["SECURITY_HEADERS", "answered_hosts", "bound_url", "create_app", "serve"]

log = logging.getLogger("conveyor.ui")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_WILDCARD = {"0.0.0.0", "::", ""}
_CATALOG = web.AppKey("catalog", Catalog)
_HOSTS = web.AppKey("hosts", set[str])

View = Callable[..., str | bytes]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_ROUTES: list[tuple[str, View]] = [
    ("/", views.overview),
    ("/namespaces/{namespace}/featuresets/{name}", views.featureset),
    ("/namespaces/{namespace}/featuresets/{name}/report", views.data_report),
    ("/namespaces/{namespace}/featuresets/{name}/comparison", views.comparison_report),
    ("/namespaces/{namespace}/pipelines/{name}", views.pipeline),
    ("/namespaces/{namespace}/versions/{name}", views.version),
    ("/namespaces/{namespace}/versions/{name}/report", views.training_report),
]


def create_app(catalog: Catalog, *, hosts: set[str] | None = None) -> web.Application:
    """The application. `hosts`: the Host headers it answers (host:port); empty: any (set by
    `serve` once the port is known)."""
    app = web.Application(middlewares=[_host_guard, _error_pages])
    app[_CATALOG] = catalog
    app[_HOSTS] = hosts if hosts is not None else set()
    for path, view in _ROUTES:
        app.router.add_get(path, _handler(view))
    app.on_response_prepare.append(_security_headers)
    return app


def _handler(view: View) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        names = [
            request.match_info[key] for key in ("namespace", "name") if key in request.match_info
        ]
        if any(len(name) > 253 or not _NAME.match(name) for name in names):
            raise NotFound("No Kubernetes object has that name")
        body = await asyncio.to_thread(view, request.app[_CATALOG], *names)
        payload = body.encode() if isinstance(body, str) else body
        return web.Response(body=payload, content_type="text/html", charset="utf-8")

    return handle


@web.middleware
async def _host_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    hosts = request.app[_HOSTS]
    if hosts and request.host not in hosts:
        message = (
            f"This server answers only at {', '.join(sorted(hosts))}; the Host header "
            f"{request.host!r} is refused (a guard against DNS rebinding)"
        )
        return _page(403, "Forbidden", message)
    return await handler(request)


@web.middleware
async def _error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Missing objects as a 404 page, failures of the API or S3 as a 502 page that says what
    failed, anything else as a 500 page; never a stack trace (that goes to the log)."""
    try:
        return await handler(request)
    except NotFound as error:
        return _page(404, "Not found", str(error))
    except web.HTTPNotFound:
        return _page(404, "Not found", f"Nothing lives at {request.path}")
    except ConveyorError as error:
        log.warning("GET %s failed: %s", request.path, error)
        return _page(502, "The cluster or the object store failed", str(error))
    except web.HTTPException:
        raise
    except Exception as error:
        log.exception("GET %s failed", request.path)
        return _page(500, "Internal error", f"{type(error).__name__}: {error}")


def _page(status: int, title: str, message: str) -> web.Response:
    return web.Response(status=status, text=render_error(title, message), content_type="text/html")


async def _security_headers(_: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)


def bound_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def answered_hosts(host: str, port: int) -> set[str]:
    """The Host headers a server bound to host:port answers; empty (any) on a wildcard.
    On port 80 a browser sends the name alone."""
    if host in _WILDCARD:
        return set()
    names = {
        f"[{name}]" if ":" in name else name
        for name in (_LOOPBACK if host in _LOOPBACK else {host})
    }
    return {f"{name}:{port}" for name in names} | (names if port == 80 else set())


async def serve(catalog: Catalog, host: str, port: int, announce: Callable[[str], Any]) -> None:
    """Serve on host:port (0: a free port) until SIGINT or SIGTERM; `announce` gets the URL
    once the socket listens."""
    hosts: set[str] = set()
    runner = web.AppRunner(create_app(catalog, hosts=hosts), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = int(runner.addresses[0][1])
        hosts.update(answered_hosts(host, bound_port))
        announce(bound_url(host, bound_port))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
