"""Serving the emulator over plain HTTP: in the caller's event loop, or in a background thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp.web

from conveyor.sandbox.apiserver.emulator import SandboxEmulator
from conveyor.sandbox.apiserver.identity import Authenticator, UserInfo

__all__ = ["ApiServer", "ApiServerThread"]

logger = logging.getLogger(__name__)


class ApiServer:
    """The sandbox Kubernetes API on `http://host:port` (no TLS; bearer tokens, no RBAC)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_dir: Path | None = None,
        bookmark_interval: float = 10.0,
        event_log_size: int = 10_000,
        tokens: Mapping[str, UserInfo] | None = None,
    ) -> None:
        """`tokens`: the bearer tokens the server accepts and whose they are."""
        self._host = host
        self._port = port
        self.emulator = SandboxEmulator(
            log_dir=log_dir,
            bookmark_interval=bookmark_interval,
            event_log_size=event_log_size,
            authenticator=Authenticator(tokens),
        )
        self._runner: aiohttp.web.ServerRunner | None = None
        self._bound_port: int | None = None

    @property
    def url(self) -> str:
        if self._bound_port is None:
            raise RuntimeError("The sandbox API server has no URL yet: call `await start()` first")
        return f"http://{self._host}:{self._bound_port}"

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("The sandbox API server is already started")
        await self.emulator.__aenter__()
        server = aiohttp.web.Server(self.emulator)  # kmock handlers are aiohttp low-level handlers
        runner = aiohttp.web.ServerRunner(server, shutdown_timeout=2.0)
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except OSError as error:
            await runner.cleanup()
            await self.emulator.__aexit__(None, None, None)
            raise RuntimeError(
                f"The sandbox API server cannot listen on {self._host}:{self._port}: {error}; "
                "choose another port, or port 0 for any free one"
            ) from error
        self._runner = runner
        self._bound_port = int(runner.addresses[0][1])
        logger.info("The sandbox Kubernetes API serves on %s", self.url)

    async def stop(self) -> None:
        if self._runner is None:
            return
        self.emulator.stop_streams()
        await asyncio.sleep(0)  # let the watch streams see their end before connections close
        await self._runner.cleanup()
        await self.emulator.__aexit__(None, None, None)
        self._runner = None
        logger.info("The sandbox Kubernetes API on port %s stopped", self._bound_port)

    async def __aenter__(self) -> ApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


class ApiServerThread:
    """The same server on its own event loop in a daemon thread, for synchronous code."""

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.server: ApiServer | None = None
        self.url = ""

    def __enter__(self) -> ApiServerThread:
        started: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name="sandbox-apiserver", daemon=True
        )
        self._thread.start()
        try:
            self.url = started.result(timeout=30)
        except BaseException:
            self._thread.join(timeout=5)
            raise
        return self

    def _run(self, started: concurrent.futures.Future[str]) -> None:
        assert self._loop is not None
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            self.server = ApiServer(**self._kwargs)
            loop.run_until_complete(self.server.start())
        except BaseException as error:
            started.set_exception(error)
            loop.close()
            return
        started.set_result(self.server.url)
        loop.run_forever()
        loop.run_until_complete(self.server.stop())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop = None
        self._thread = None
