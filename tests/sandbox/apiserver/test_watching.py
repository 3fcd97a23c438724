"""Watch streams over raw HTTP: resume, 410 Gone, bookmarks, timeouts, selectors, no lost events."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from conveyor.sandbox.apiserver import ApiServer

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


@pytest.fixture
async def server() -> AsyncIterator[ApiServer]:
    async with ApiServer(bookmark_interval=0.2, event_log_size=50) as server:
        yield server


@pytest.fixture
async def session(server: ApiServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=server.url) as session:
        yield session


async def create(session: aiohttp.ClientSession, name: str, **labels: str) -> dict[str, Any]:
    body = {"metadata": {"name": name, "labels": labels}, "data": {"v": "0"}}
    async with session.post(CONFIGMAPS, json=body) as response:
        assert response.status == 201, await response.text()
        return await response.json()


async def merge(session: aiohttp.ClientSession, name: str, patch: dict) -> dict[str, Any]:
    headers = {"Content-Type": "application/merge-patch+json"}
    async with session.patch(
        f"{CONFIGMAPS}/{name}", data=json.dumps(patch), headers=headers
    ) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def watch(
    session: aiohttp.ClientSession, params: dict[str, str], *, count: int, timeout: float = 5
) -> list[dict[str, Any]]:
    """The first `count` events of a watch (fewer if the server ends the stream)."""
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        async with session.get(CONFIGMAPS, params={"watch": "true", **params}) as response:
            assert response.status == 200, await response.text()
            async for line in response.content:
                events.append(json.loads(line))
                if len(events) >= count:
                    break
    return events


def summary(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"].get("name", "")) for e in events]


async def test_watch_starts_with_current_objects_then_streams_changes(
    session: aiohttp.ClientSession,
) -> None:
    await create(session, "existing")

    async def change_later() -> None:
        await asyncio.sleep(0.1)
        await merge(session, "existing", {"data": {"v": "1"}})
        await create(session, "new")
        async with session.delete(f"{CONFIGMAPS}/existing") as response:
            assert response.status == 200

    changer = asyncio.create_task(change_later())
    events = await watch(session, {}, count=4)
    await changer
    assert summary(events) == [
        ("ADDED", "existing"),
        ("MODIFIED", "existing"),
        ("ADDED", "new"),
        ("DELETED", "existing"),
    ]


async def test_watch_resumes_after_a_resource_version_without_no_op_events(
    session: aiohttp.ClientSession,
) -> None:
    first = await create(session, "a")
    version = first["metadata"]["resourceVersion"]
    await merge(session, "a", {"data": {"v": "0"}})  # no change: no version, no event
    await merge(session, "a", {"data": {"v": "2"}})
    await create(session, "b")
    events = await watch(session, {"resourceVersion": version}, count=2)
    assert summary(events) == [("MODIFIED", "a"), ("ADDED", "b")]
    assert events[0]["object"]["data"] == {"v": "2"}


async def test_watch_from_a_trimmed_version_gets_410_gone(session: aiohttp.ClientSession) -> None:
    first = await create(session, "churn")
    for index in range(60):  # more changes than the event log keeps (50)
        await merge(session, "churn", {"data": {"v": str(index + 1)}})
    events = await watch(
        session, {"resourceVersion": first["metadata"]["resourceVersion"]}, count=2
    )
    assert len(events) == 1  # the server ends the stream after the error
    assert events[0]["type"] == "ERROR"
    assert events[0]["object"]["kind"] == "Status"
    assert events[0]["object"]["code"] == 410
    assert events[0]["object"]["reason"] == "Expired"


async def test_bookmarks_carry_the_latest_resource_version(
    session: aiohttp.ClientSession,
) -> None:
    created = await create(session, "quiet")
    events = await watch(
        session,
        {"allowWatchBookmarks": "true", "resourceVersion": created["metadata"]["resourceVersion"]},
        count=1,
    )
    assert events[0]["type"] == "BOOKMARK"
    assert (
        events[0]["object"]["metadata"]["resourceVersion"]
        == (created["metadata"]["resourceVersion"])
    )


async def test_timeout_seconds_ends_the_stream(session: aiohttp.ClientSession) -> None:
    started = time.monotonic()
    events = await watch(session, {"timeoutSeconds": "1"}, count=100, timeout=5)
    assert events == []
    assert 0.9 < time.monotonic() - started < 3


async def test_objects_entering_and_leaving_a_selector_are_added_and_deleted(
    session: aiohttp.ClientSession,
) -> None:
    created = await create(session, "moving", app="other")
    version = created["metadata"]["resourceVersion"]
    await merge(session, "moving", {"metadata": {"labels": {"app": "web"}}})
    await merge(session, "moving", {"data": {"v": "1"}})
    await merge(session, "moving", {"metadata": {"labels": {"app": "db"}}})
    events = await watch(session, {"resourceVersion": version, "labelSelector": "app=web"}, count=3)
    assert summary(events) == [("ADDED", "moving"), ("MODIFIED", "moving"), ("DELETED", "moving")]


async def test_a_watch_started_during_writes_loses_and_repeats_nothing(
    session: aiohttp.ClientSession,
) -> None:
    names = [f"cm-{index}" for index in range(60)]

    async def write_all() -> None:
        for name in names:
            await create(session, name)

    writer = asyncio.create_task(write_all())
    await asyncio.sleep(0.05)  # the watch starts while the writes go on
    events = await watch(session, {}, count=len(names))
    await writer
    assert sorted(name for _, name in summary(events)) == sorted(names)
    assert {kind for kind, _ in summary(events)} == {"ADDED"}


async def test_a_single_object_can_be_watched_by_name(session: aiohttp.ClientSession) -> None:
    await create(session, "mine")
    await create(session, "theirs")
    events = await watch(session, {"fieldSelector": "metadata.name=mine"}, count=1)
    assert summary(events) == [("ADDED", "mine")]


def test_python_client_watch_streams_events(api_client: Any) -> None:
    """The kubernetes client sends watch=True (capitalised); it must get a stream, not a list."""
    import threading

    from kubernetes import watch
    from kubernetes.client import CoreV1Api

    core = CoreV1Api(api_client)
    seen: list[str] = []
    ready = threading.Event()

    def follow() -> None:
        ready.set()
        for event in watch.Watch().stream(
            core.list_namespaced_config_map, "default", timeout_seconds=3
        ):
            seen.append(f"{event['type']} {event['object'].metadata.name}")

    thread = threading.Thread(target=follow)
    thread.start()
    ready.wait()
    core.create_namespaced_config_map("default", {"metadata": {"name": "watched"}})
    thread.join(timeout=10)
    assert "ADDED watched" in seen
