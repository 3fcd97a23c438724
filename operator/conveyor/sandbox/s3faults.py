"""An S3 outage on demand: a TCP proxy between the sandbox's programs and its S3 server.

With `SandboxConfig(s3_fault_proxy=True)` the operator, and through it every Job and serving
pod, reaches S3 through this proxy, which passes bytes through until `fail()`:

- `"unavailable"`: every request is answered `503 ServiceUnavailable` with S3's XML error
  body (S3 overloaded or failing), and the connection closed;
- `"refuse"`: the port stops listening, so connections are refused (the server is down).

Either way the connections open at that moment are cut, so no pooled keep-alive connection
slips past the outage. `recover()` passes bytes through again. People and tests reach the S3
server directly (`ObjectStore.endpoint`), so they can look at the bucket during the outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from .nodeagent.services import pump
from .processes import free_port

__all__ = ["OutageMode", "S3FaultProxy", "S3Outage"]

logger = logging.getLogger(__name__)

OutageMode = Literal["unavailable", "refuse"]
_UNAVAILABLE_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ServiceUnavailable</Code>'
    b"<Message>Please reduce your request rate. (sandbox fault injection: S3 is failing on "
    b"purpose)</Message></Error>"
)


@dataclass
class S3Outage:
    """What one outage did."""

    mode: OutageMode
    seconds: float = 0.0
    answered_503: int = 0
    """Requests answered 503 ("unavailable")."""
    connections_cut: int = 0
    """Open connections closed when the outage began."""

    def describe(self) -> str:
        if self.mode == "unavailable":
            what = f"{self.answered_503} requests answered 503 ServiceUnavailable"
        else:
            what = "connections refused"
        return (
            f"S3 failing for {self.seconds:.1f} s ({what}; "
            f"{self.connections_cut} open connections cut)"
        )


class S3FaultProxy:
    """A TCP proxy to `upstream` (http://host:port) on `endpoint`, in a thread of its own."""

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.host = host
        self.port = port or free_port(host)
        self.endpoint = f"http://{host}:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="s3-faults", daemon=True
        )
        self._server: asyncio.Server | None = None
        self._open: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._outage: S3Outage | None = None
        self._began = 0.0

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._call(self._listen())

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._shut(stop_listening=True))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the fault ----------------------------------------------------------------------------

    @property
    def failing(self) -> bool:
        return self._outage is not None

    def fail(self, mode: OutageMode = "unavailable") -> None:
        """S3 fails from now until `recover()`."""
        if self._outage is not None:
            raise RuntimeError("S3 is failing already: recover() first")
        self._call(self._begin(mode))

    def recover(self) -> S3Outage:
        """S3 answers again; what the outage did."""
        outage = self._outage
        if outage is None:
            raise RuntimeError("S3 is not failing")
        self._call(self._end())
        return outage

    async def _begin(self, mode: OutageMode) -> None:
        self._outage = S3Outage(mode)
        self._began = time.monotonic()
        self._outage.connections_cut = await self._shut(stop_listening=mode == "refuse")
        logger.warning("S3 fault: %s from now", mode)

    async def _end(self) -> None:
        assert self._outage is not None
        self._outage.seconds = time.monotonic() - self._began
        if self._server is None:
            await self._listen()
        self._outage = None
        logger.warning("S3 fault over: S3 answers again")

    # -- the proxy ----------------------------------------------------------------------------

    def _call(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, reuse_address=True
        )

    async def _shut(self, *, stop_listening: bool) -> int:
        """Cut the open connections, and stop listening when asked; how many were cut."""
        pairs, self._open = list(self._open), set()
        for pair in pairs:
            for writer in pair:
                writer.transport.abort()
        if stop_listening and self._server is not None:
            server, self._server = self._server, None
            server.close()
            await server.wait_closed()
        return len(pairs)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._outage is not None:
            await self._unavailable(reader, writer)
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, upstream_writer)
        if self._outage is not None:  # it began while connecting
            for each in pair:
                each.transport.abort()
            return
        self._open.add(pair)
        try:
            await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))
        finally:
            self._open.discard(pair)
            for each in pair:
                each.transport.abort()

    async def _unavailable(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Read the request's head, answer 503 with S3's error body, close."""
        outage = self._outage
        with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
            with contextlib.suppress(asyncio.LimitOverrunError):
                await reader.readuntil(b"\r\n\r\n")
            if outage is not None:
                outage.answered_503 += 1
            writer.write(
                b"HTTP/1.1 503 Service Unavailable\r\n"
                b"Content-Type: application/xml\r\n"
                b"Connection: close\r\n"
                b"Retry-After: 1\r\n"
                + f"Content-Length: {len(_UNAVAILABLE_BODY)}\r\n\r\n".encode()
                + _UNAVAILABLE_BODY
            )
            await writer.drain()
        writer.transport.abort()
