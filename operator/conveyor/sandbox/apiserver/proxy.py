"""`pods/<name>:<port>/proxy/<path>`: a GET forwarded to a pod's port, as a real API server's
pod proxy does (`kubectl get --raw`, and the operator reading a serving pod's /metrics).

The sandbox's pods share the host network, each container port on a host port the node agent
chose and recorded on the pod (nodeagent/ports.py); the proxy forwards there. GET only, no
streaming and no websockets: what reading a pod's small HTTP answers needs.
"""

from __future__ import annotations

import aiohttp
import aiohttp.web

from conveyor.sandbox.apiserver.cluster import Cluster
from conveyor.sandbox.apiserver.errors import ApiError, bad_request
from conveyor.sandbox.apiserver.resources import ResourceType
from conveyor.sandbox.apiserver.routing import Target
from conveyor.sandbox.nodeagent.ports import find_host_port

__all__ = ["answer"]

_TIMEOUT = aiohttp.ClientTimeout(total=10)


async def answer(
    raw: aiohttp.web.BaseRequest, cluster: Cluster, target: Target, resource_type: ResourceType
) -> aiohttp.web.Response:
    name, _, port = (target.name or "").partition(":")
    pod = cluster.get(resource_type, target.namespace, name)
    host_port = find_host_port(pod, port) if port else None
    if host_port is None:
        raise bad_request(
            f'pod "{name}" has no port {port or "(none given: use <name>:<port>)"} that the '
            "sandbox's node agent runs"
        )
    url = f"http://127.0.0.1:{host_port}/{'/'.join(target.rest)}"
    try:
        async with (
            aiohttp.ClientSession(timeout=_TIMEOUT) as session,
            session.get(url, params=raw.query) as response,
        ):
            body = await response.read()
            content_type = response.headers.get("Content-Type", "application/octet-stream")
            return aiohttp.web.Response(
                status=response.status, body=body, headers={"Content-Type": content_type}
            )
    except (aiohttp.ClientError, TimeoutError) as error:
        raise ApiError(
            503, "ServiceUnavailable", f'error trying to reach pod "{name}": {error}'
        ) from None
