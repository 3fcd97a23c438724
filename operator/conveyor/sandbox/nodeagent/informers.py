"""Caches fed by list+watch (resuming from resourceVersion, re-listing on 410 Gone) and work
queues with de-duplication and delayed requeue, as client-go's informers and workqueues."""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .kube import Gone, Kube, Resource, WatchStream

__all__ = ["Informer", "Key", "Store", "WorkQueue", "object_key"]

logger = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)
_WATCH_TIMEOUT = 30  # seconds the server keeps one watch open
_TOMBSTONE_SECONDS = 30.0


def object_key(obj: Mapping[str, Any]) -> Key:
    metadata = obj["metadata"]
    return str(metadata.get("namespace", "default")), str(metadata["name"])


def _version(obj: Mapping[str, Any]) -> int | None:
    raw = obj.get("metadata", {}).get("resourceVersion")
    return int(raw) if raw is not None and str(raw).isdigit() else None


class Store:
    """Latest known objects of one kind. Writes from the agent's own API calls go in at once
    (so a controller sees what it just created); watch events never roll an object back."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self._objects: dict[Key, dict[str, Any]] = {}
        self._tombstones: dict[str, float] = {}  # uid → when deleted
        self._lock = threading.Lock()

    def _typed(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        return {**obj, "kind": self.resource.kind, "apiVersion": self.resource.api_version}

    def get(self, key: Key) -> dict[str, Any] | None:
        with self._lock:
            return self._objects.get(key)

    def items(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._objects.values())

    def known_keys(self) -> list[Key]:
        with self._lock:
            return list(self._objects)

    def upsert(self, obj: Mapping[str, Any]) -> bool:
        """Keep ``obj`` unless a newer version is known; False when it was ignored."""
        key = object_key(obj)
        with self._lock:
            if obj["metadata"].get("uid") in self._tombstones:
                return False
            current = self._objects.get(key)
            new_version, old_version = _version(obj), _version(current or {})
            same = current is not None and current["metadata"].get("uid") == obj["metadata"].get(
                "uid"
            )
            if (
                same
                and new_version is not None
                and old_version is not None
                and (new_version < old_version)
            ):
                return False
            self._objects[key] = self._typed(obj)
            return True

    def remove(self, obj: Mapping[str, Any]) -> None:
        key = object_key(obj)
        now = time.monotonic()
        with self._lock:
            uid = obj["metadata"].get("uid")
            if uid:
                self._tombstones[uid] = now
            current = self._objects.get(key)
            if current is not None and current["metadata"].get("uid") in (uid, None):
                del self._objects[key]
            self._tombstones = {
                u: t for u, t in self._tombstones.items() if now - t < _TOMBSTONE_SECONDS
            }

    def replace(self, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Install a fresh list; return the objects that disappeared."""
        with self._lock:
            fresh = {object_key(o): self._typed(o) for o in objects}
            gone = [o for k, o in self._objects.items() if k not in fresh]
            self._objects = fresh
            return gone


Handler = Callable[[str, dict[str, Any]], None]


class Informer:
    """A thread that keeps a Store in sync with the API and calls ``handler(type, object)``."""

    def __init__(
        self,
        kube: Kube,
        store: Store,
        handler: Handler,
        *,
        watch_timeout: int = _WATCH_TIMEOUT,
        bookmarks: bool = True,
    ) -> None:
        self._kube = kube
        self._bookmarks = bookmarks
        self._watch_timeout = watch_timeout
        self.store = store
        self._handler = handler
        self._stopping = threading.Event()
        self._stream: WatchStream | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"watch-{store.resource.plural}", daemon=True
        )
        self.synced = threading.Event()
        self.lists = 0  # how many times the informer listed (re-lists follow a 410 Gone)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        stream = self._stream
        if stream is not None:
            stream.close()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                version = self._relist()
                while not self._stopping.is_set():
                    version = self._watch(version)
            except Gone:
                continue  # re-list at once
            except Exception as error:
                if self._stopping.is_set():
                    return
                logger.warning(
                    "Watch on %s failed, re-listing: %s", self.store.resource.plural, error
                )
                self._stopping.wait(0.5)

    def _relist(self) -> str:
        items, version = self._kube.list(self.store.resource)
        self.lists += 1
        for gone in self.store.replace(items):
            self._handler("DELETED", gone)
        for item in items:
            self._handler("ADDED", self.store.get(object_key(item)) or item)
        self.synced.set()
        return version

    def _watch(self, version: str) -> str:
        stream = self._kube.watch(
            self.store.resource, version, self._watch_timeout, bookmarks=self._bookmarks
        )
        self._stream = stream
        try:
            if self._stopping.is_set():
                return version
            for event in stream.events():
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone(obj.get("message", "resourceVersion too old"))
                    raise RuntimeError(f"watch error: {obj.get('message', obj)}")
                version = str(obj.get("metadata", {}).get("resourceVersion") or version)
                if kind == "BOOKMARK":
                    continue
                if kind == "DELETED":
                    self.store.remove(obj)
                    self._handler(kind, obj)
                elif self.store.upsert(obj):
                    self._handler(str(kind), self.store.get(object_key(obj)) or obj)
        finally:
            self._stream = None
            stream.close()
        return version


class WorkQueue:
    """Keys to reconcile: a key waiting is not added twice; ``add_after`` delays a key."""

    def __init__(self) -> None:
        self._ready: list[Key] = []
        self._queued: set[Key] = set()
        self._delayed: list[tuple[float, Key]] = []
        self._condition = threading.Condition()
        self._closed = False

    def add(self, key: Key) -> None:
        with self._condition:
            if key not in self._queued:
                self._queued.add(key)
                self._ready.append(key)
                self._condition.notify()

    def add_after(self, key: Key, delay: float) -> None:
        with self._condition:
            heapq.heappush(self._delayed, (time.monotonic() + max(delay, 0.0), key))
            self._condition.notify()

    def get(self) -> Key | None:
        """The next key, blocking; None once closed."""
        with self._condition:
            while not self._closed:
                now = time.monotonic()
                while self._delayed and self._delayed[0][0] <= now:
                    _, key = heapq.heappop(self._delayed)
                    if key not in self._queued:
                        self._queued.add(key)
                        self._ready.append(key)
                if self._ready:
                    key = self._ready.pop(0)
                    self._queued.discard(key)
                    return key
                timeout = self._delayed[0][0] - now if self._delayed else None
                self._condition.wait(timeout)
            return None

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()
