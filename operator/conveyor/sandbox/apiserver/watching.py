"""Watch streams: resume from a resourceVersion, 410 Gone, selectors, bookmarks, timeouts.

Without a resourceVersion (or with "0") a watch starts with an ADDED event for every current
object, like a real server. With a resourceVersion it replays the changes after it from the
bounded event log, or answers a single ERROR event with a 410 Status when the log no longer
reaches back that far (clients then re-list). The snapshot or the replay and the live
subscription are taken in one synchronous step, so no change can fall in between.

With selectors, an object that starts or stops matching is reported as ADDED or DELETED, as a
real server does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from conveyor.sandbox.apiserver.cluster import Cluster
from conveyor.sandbox.apiserver.errors import bad_request, gone
from conveyor.sandbox.apiserver.resources import ResourceType
from conveyor.sandbox.apiserver.selectors import Selector
from conveyor.sandbox.apiserver.store import Event

__all__ = ["WatchRequest", "watch_events"]


@dataclass(frozen=True)
class WatchRequest:
    resource_type: ResourceType
    namespace: str | None
    labels: Selector
    fields: Selector
    resource_version: str | None = None
    timeout_seconds: float | None = None
    bookmarks: bool = False
    bookmark_interval: float = 10.0

    def matches(self, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        return self.labels.matches(obj) and self.fields.matches(obj)


def _translate(request: WatchRequest, event: Event) -> str | None:
    """The event type this watcher sees, or None when the change is outside its selection."""
    now = request.matches(event.object)
    before = request.matches(event.previous)
    if event.type == "ADDED":
        return "ADDED" if now else None
    if event.type == "DELETED":
        return "DELETED" if before or now else None
    if now and before:
        return "MODIFIED"
    if now:
        return "ADDED"
    return "DELETED" if before else None


def _parse_version(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"invalid resourceVersion {value!r}: it must be a number") from None


def _bookmark(request: WatchRequest, resource_version: int) -> dict[str, Any]:
    resource_type = request.resource_type
    return {
        "type": "BOOKMARK",
        "object": {
            "apiVersion": resource_type.api_version,
            "kind": resource_type.kind,
            "metadata": {"resourceVersion": str(resource_version)},
        },
    }


async def watch_events(
    cluster: Cluster, request: WatchRequest
) -> AsyncGenerator[dict[str, Any], None]:
    """Yield watch events ({"type": ..., "object": ...}) until the timeout or server stop."""
    resource_type = request.resource_type
    store = cluster.store
    backlog: list[Event] = []
    initial: list[dict[str, Any]] = []
    if request.resource_version not in (None, "", "0"):
        since = _parse_version(request.resource_version or "0")
        if since < store.oldest_logged_version:
            error = gone(f"too old resource version: {since} ({store.oldest_logged_version})")
            yield {"type": "ERROR", "object": error.body}
            return
        backlog = store.events_since(resource_type.storage_key, since)
    else:
        initial = cluster.list_objects(
            resource_type, request.namespace, request.labels, request.fields
        )
    subscription = store.subscribe(resource_type.storage_key)
    try:
        for obj in initial:
            yield {"type": "ADDED", "object": obj}
        for event in backlog:
            if (event_type := _translate(request, event)) is not None:
                yield {"type": event_type, "object": cluster.present(resource_type, event.object)}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.timeout_seconds if request.timeout_seconds else None
        while True:
            wait = request.bookmark_interval if request.bookmarks else None
            if deadline is not None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                wait = remaining if wait is None else min(wait, remaining)
            try:
                next_event = await asyncio.wait_for(subscription.queue.get(), timeout=wait)
            except TimeoutError:
                if request.bookmarks:
                    yield _bookmark(request, store.resource_version)
                continue
            if next_event is None:  # the server stops or the resource was unregistered
                return
            if (event_type := _translate(request, next_event)) is not None:
                obj = cluster.present(resource_type, next_event.object)
                yield {"type": event_type, "object": obj}
    finally:
        subscription.close()
