"""Services: one local TCP proxy per service port, round-robin over the Ready pods that match the
selector, its URL written to the Service's annotations. ClusterIPs, Endpoints/EndpointSlices,
session affinity and Services without a selector are not emulated."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ...contracts.labels import SANDBOX_URL
from .informers import Key, Store
from .jobs import is_pod_active, is_pod_ready
from .kube import SERVICES, Kube
from .ports import find_host_port

__all__ = [
    "URLS_ANNOTATION",
    "URL_ANNOTATION",
    "ProxyHub",
    "ServiceController",
    "pump",
    "service_backends",
]

logger = logging.getLogger(__name__)

URL_ANNOTATION = SANDBOX_URL  # `conveyor status` prints it
URLS_ANNOTATION = "sandbox.conveyor.dev/urls"
_CHUNK = 65536

Backends = Callable[[], list[int]]


def service_backends(
    service: Mapping[str, Any], port: Mapping[str, Any], pods: list[dict[str, Any]]
) -> list[int]:
    """Host ports of the Ready pods selected by ``service`` for one of its ports."""
    selector = service.get("spec", {}).get("selector") or {}
    namespace = service["metadata"].get("namespace", "default")
    target = port.get("targetPort", port.get("port"))
    ports = []
    for pod in pods:
        labels = pod["metadata"].get("labels") or {}
        if pod["metadata"].get("namespace", "default") != namespace:
            continue
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            continue
        if not (is_pod_active(pod) and is_pod_ready(pod)):
            continue
        host_port = find_host_port(pod, target)
        if host_port is not None:
            ports.append(host_port)
    return sorted(ports)


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction of a proxied connection until it ends."""
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        # One side was reset (a pod killed mid-request): reset the other too, as the client
        # would see with a direct connection, instead of leaving it waiting for its timeout.
        writer.transport.abort()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


class _Proxy:
    def __init__(self, backends: Backends) -> None:
        self.backends = backends
        self.server: asyncio.Server | None = None
        self.port = 0
        self._turn = 0
        self.connections: set[asyncio.Task[None]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.connections.add(task)
        try:
            await self._forward(reader, writer)
        finally:
            await _close(writer)
            if task is not None:
                self.connections.discard(task)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ports = self.backends()
        self._turn += 1
        for i in range(len(ports)):  # round robin; a refusing backend passes to the next one
            port = ports[(self._turn + i) % len(ports)]
            try:
                backend_reader, backend_writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue
            try:
                await asyncio.gather(pump(reader, backend_writer), pump(backend_reader, writer))
            finally:
                await _close(backend_writer)
            return


class ProxyHub:
    """All service proxies, served by one asyncio loop in one thread."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="proxies", daemon=True)
        self._proxies: dict[tuple[str, str], _Proxy] = {}
        self._started = False

    def start(self) -> None:
        self._thread.start()
        self._started = True

    def open(self, key: tuple[str, str], backends: Backends) -> int:
        """Listen on a free 127.0.0.1 port for ``key`` (kept while open); return the port."""
        if key in self._proxies:
            self._proxies[key].backends = backends
            return self._proxies[key].port
        proxy = _Proxy(backends)

        async def listen() -> int:
            proxy.server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
            return int(proxy.server.sockets[0].getsockname()[1])

        proxy.port = asyncio.run_coroutine_threadsafe(listen(), self._loop).result(10)
        self._proxies[key] = proxy
        return proxy.port

    def open_keys(self) -> list[tuple[str, str]]:
        return list(self._proxies)

    def close(self, key: tuple[str, str]) -> None:
        proxy = self._proxies.pop(key, None)
        if proxy is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(proxy), self._loop).result(10)

    @staticmethod
    async def _shutdown(proxy: _Proxy) -> None:
        if proxy.server is not None:
            proxy.server.close()
        for task in list(proxy.connections):
            task.cancel()
        if proxy.connections:
            await asyncio.gather(*proxy.connections, return_exceptions=True)
        if proxy.server is not None:
            await proxy.server.wait_closed()

    def stop(self) -> None:
        if not self._started:
            self._loop.close()
            return
        for key in list(self._proxies):
            self.close(key)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._started = False


def _port_name(port: Mapping[str, Any]) -> str:
    return str(port.get("name") or port.get("port"))


class ServiceController:
    """Keeps a proxy per port of each Service with a selector and its URL annotations."""

    def __init__(self, kube: Kube, services: Store, pods: Store, hub: ProxyHub) -> None:
        self._kube, self._services, self._pods, self._hub = kube, services, pods, hub

    def sync(self, key: Key) -> None:
        service = self._services.get(key)
        service_id = f"{key[0]}/{key[1]}"
        wanted: dict[str, Mapping[str, Any]] = {}
        if service is not None and (service.get("spec") or {}).get("selector"):
            uid = service["metadata"]["uid"]
            for port in service["spec"].get("ports") or []:
                wanted[f"{uid}/{_port_name(port)}"] = port
        for proxy_key in self._hub.open_keys():
            if proxy_key[0] == service_id and proxy_key[1] not in wanted:
                self._hub.close(proxy_key)
        if service is None or not wanted:
            return
        urls = {}
        for port_id, port in wanted.items():

            def backends(
                svc: Mapping[str, Any] = service, p: Mapping[str, Any] = port
            ) -> list[int]:
                return service_backends(svc, p, self._pods.items())

            host_port = self._hub.open((service_id, port_id), backends)
            urls[port_id.split("/", 1)[1]] = f"http://127.0.0.1:{host_port}"
        annotations = {URL_ANNOTATION: next(iter(urls.values())), URLS_ANNOTATION: json.dumps(urls)}
        current = service["metadata"].get("annotations") or {}
        if any(current.get(k) != v for k, v in annotations.items()):
            updated = self._kube.patch(SERVICES, *key, {"metadata": {"annotations": annotations}})
            if updated is not None:
                self._services.upsert(updated)
