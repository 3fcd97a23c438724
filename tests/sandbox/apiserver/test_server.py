"""Starting and stopping the server: ports, open streams, kubeconfig, kmock reactions."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import aiohttp
import kubernetes
import pytest
import yaml

from conveyor.sandbox.apiserver import ApiServer, ApiServerThread, write_kubeconfig


def test_the_thread_releases_its_port_on_exit() -> None:
    with ApiServerThread() as server:
        port = int(server.url.rsplit(":", 1)[1])
        assert server.url == f"http://127.0.0.1:{port}"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # free again


def test_a_busy_port_is_reported_clearly() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"cannot listen on 127.0.0.1:{port}"):
            ApiServerThread(port=port).__enter__()


async def test_stop_ends_open_watches_at_once() -> None:
    server = ApiServer()
    await server.start()
    async with aiohttp.ClientSession() as session:
        url = f"{server.url}/api/v1/configmaps?watch=true"
        async with session.get(url) as response:
            assert response.status == 200
            started = time.monotonic()
            await server.stop()
            with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ClientConnectionError)):
                async with asyncio.timeout(5):
                    async for _ in response.content:
                        pass
                raise aiohttp.ClientConnectionError("stream ended")  # a clean end is fine too
            assert time.monotonic() - started < 3


async def test_url_before_start_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="call `await start\\(\\)` first"):
        _ = ApiServer().url


def test_the_kubeconfig_works_for_the_kubernetes_client(tmp_path: Path) -> None:
    with ApiServerThread() as server:
        path = tmp_path / "kube" / "config"
        write_kubeconfig(path, server.url, namespace="team")
        config = yaml.safe_load(path.read_text())
        assert config["contexts"][0]["context"]["namespace"] == "team"
        with kubernetes.config.new_client_from_config(config_file=str(path)) as client:
            version = kubernetes.client.VersionApi(client).get_code()
            assert version.major == "1"


async def test_non_api_paths_can_use_kmock_reactions() -> None:
    async with ApiServer() as server:
        server.emulator["get /healthz"] << b"ok"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/healthz") as response:
                assert (response.status, await response.text()) == (200, "ok")
            async with session.get(f"{server.url}/metrics") as response:
                assert response.status == 404
