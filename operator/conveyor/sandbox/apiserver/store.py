"""In-memory object storage with one global resourceVersion and a bounded event log.

Every change takes the next resourceVersion, is recorded in the event log and handed to live
watchers. Everything here is synchronous and runs on the server's event loop, so a snapshot
and a subscription taken in one call can never miss an event in between.
"""

from __future__ import annotations

import asyncio
import collections
import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["Event", "StorageKey", "Store", "Subscription"]

StorageKey = tuple[str, str]  # (group, plural)
ObjectKey = tuple[str, str]  # (namespace or "", name)


@dataclass(frozen=True)
class Event:
    """One change: `previous` is the object before it (None for ADDED)."""

    resource_version: int
    storage_key: StorageKey
    type: str  # ADDED, MODIFIED, DELETED
    object: dict[str, Any]
    previous: dict[str, Any] | None


class Subscription:
    """A live watcher's queue of events; closed when the server stops."""

    def __init__(self, store: Store, storage_key: StorageKey) -> None:
        self.storage_key = storage_key
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._store = store

    def close(self) -> None:
        self._store._subscriptions.discard(self)


class Store:
    def __init__(self, *, event_log_size: int = 10_000) -> None:
        self._objects: dict[StorageKey, dict[ObjectKey, dict[str, Any]]] = collections.defaultdict(
            dict
        )
        self._log: collections.deque[Event] = collections.deque(maxlen=event_log_size)
        self._subscriptions: set[Subscription] = set()
        self._resource_version = 0

    @property
    def resource_version(self) -> int:
        return self._resource_version

    def next_resource_version(self) -> int:
        self._resource_version += 1
        return self._resource_version

    @property
    def oldest_logged_version(self) -> int:
        """Watches can resume from this version or later; older ones get 410 Gone."""
        if len(self._log) < (self._log.maxlen or 0):
            return 0
        return self._log[0].resource_version - 1

    def get(self, storage_key: StorageKey, namespace: str, name: str) -> dict[str, Any] | None:
        return self._objects[storage_key].get((namespace, name))

    def items(self, storage_key: StorageKey, namespace: str | None = None) -> list[dict[str, Any]]:
        objects = self._objects[storage_key]
        if namespace is None:
            return list(objects.values())
        return [obj for (ns, _), obj in objects.items() if ns == namespace]

    def all_objects(self) -> Iterator[tuple[StorageKey, dict[str, Any]]]:
        for storage_key, objects in list(self._objects.items()):
            for obj in list(objects.values()):
                yield storage_key, obj

    def put(self, storage_key: StorageKey, obj: dict[str, Any]) -> Event:
        """Store a new or changed object; its metadata.resourceVersion is set here."""
        metadata = obj["metadata"]
        key = (metadata.get("namespace", ""), metadata["name"])
        previous = self._objects[storage_key].get(key)
        metadata["resourceVersion"] = str(self.next_resource_version())
        self._objects[storage_key][key] = obj
        return self._record(storage_key, "ADDED" if previous is None else "MODIFIED", obj, previous)

    def remove(self, storage_key: StorageKey, namespace: str, name: str) -> Event | None:
        previous = self._objects[storage_key].pop((namespace, name), None)
        if previous is None:
            return None
        final = copy.deepcopy(previous)
        final["metadata"]["resourceVersion"] = str(self.next_resource_version())
        return self._record(storage_key, "DELETED", final, previous)

    def drop_storage(self, storage_key: StorageKey) -> None:
        self._objects.pop(storage_key, None)

    def _record(
        self, storage_key: StorageKey, type_: str, obj: dict[str, Any], previous: Any
    ) -> Event:
        event = Event(self._resource_version, storage_key, type_, copy.deepcopy(obj), previous)
        self._log.append(event)
        for subscription in self._subscriptions:
            if subscription.storage_key == storage_key:
                subscription.queue.put_nowait(event)
        return event

    def events_since(self, storage_key: StorageKey, resource_version: int) -> list[Event]:
        return [
            event
            for event in self._log
            if event.storage_key == storage_key and event.resource_version > resource_version
        ]

    def subscribe(self, storage_key: StorageKey) -> Subscription:
        subscription = Subscription(self, storage_key)
        self._subscriptions.add(subscription)
        return subscription

    def close_subscriptions(self, storage_key: StorageKey | None = None) -> None:
        """End watches: all of them (server stop) or those of one resource (CRD deleted)."""
        for subscription in list(self._subscriptions):
            if storage_key is None or subscription.storage_key == storage_key:
                subscription.queue.put_nowait(None)
                subscription.close()
