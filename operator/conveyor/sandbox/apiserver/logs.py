"""`pods/log`: container logs are files the sandbox's node agent writes.

The log of container `c` of pod `p` in namespace `ns` is `<log_dir>/ns/p/c.log`; without
`?container=` the pod's first container is meant, as `kubectl logs` expects.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from conveyor.sandbox.apiserver.errors import ApiError, bad_request

__all__ = ["follow_log", "log_file", "tail"]


def log_file(log_dir: Path | None, pod: dict[str, Any], container: str | None) -> Path:
    """The log file of the container, or the error a person can act on."""
    metadata = pod["metadata"]
    namespace, name = metadata.get("namespace", ""), metadata["name"]
    containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
    if not containers:
        raise bad_request(f'pod "{name}" has no containers, so it has no logs')
    if container is None:
        container = containers[0]
    elif container not in containers:
        raise bad_request(
            f"container {container} is not valid for pod {name}: choose one of "
            f"[{' '.join(c for c in containers if c)}]"
        )
    if log_dir is None:
        raise ApiError(
            404,
            "NotFound",
            "pod logs are not served: the sandbox API server was started without a log_dir",
        )
    path = log_dir / namespace / name / f"{container}.log"
    if not path.is_file():
        raise bad_request(
            f'container "{container}" in pod "{name}" has no log yet (expected {path}): it '
            "has not started, or the node agent does not run it"
        )
    return path


def tail(data: bytes, lines: int | None) -> bytes:
    if lines is None:
        return data
    if lines <= 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


async def follow_log(
    path: Path,
    start: int,
    *,
    running: Callable[[], bool],
    stopping: asyncio.Event,
    interval: float = 0.2,
) -> AsyncIterator[bytes]:
    """New bytes appended after `start`, until the container stops or the server does."""
    position = start
    while True:
        with path.open("rb") as file:
            file.seek(position)
            chunk = file.read()
        if chunk:
            position += len(chunk)
            yield chunk
        elif not running():
            return
        try:
            await asyncio.wait_for(stopping.wait(), timeout=interval)
            return
        except TimeoutError:
            continue
