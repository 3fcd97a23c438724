"""The sandbox's Kubernetes API emulator: a `kmock.KubernetesEmulator` with real API semantics.

kmock internals relied on (kmock is pinned exactly, 0.8):

- `RawHandler.__call__(raw_request)`, the aiohttp low-level handler entry point, is overridden.
  Requests to the Kubernetes API (`/`, `/version`, `/api...`, `/apis...`, `/openapi...`) are
  served by `Cluster` and never reach kmock's request log or its reaction matching: kmock
  records every request and re-scans that history on each new one, which would make the
  server slower by the hour. Other paths go to kmock unchanged, so kmock's DSL can still add
  reactions for them (`emulator['get /healthz'] << 200`).
- The emulator is entered (`async with`) by `ApiServer` so that kmock's own machinery runs.

Nothing else of kmock is touched; its object store (`emulator.objects`) is not used.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock

from conveyor.sandbox.apiserver import discovery, logs, proxy, tables
from conveyor.sandbox.apiserver.admission import FIELD_VALIDATIONS
from conveyor.sandbox.apiserver.audit import AuditLog
from conveyor.sandbox.apiserver.cluster import Cluster
from conveyor.sandbox.apiserver.errors import ApiError, bad_request, method_not_allowed, status_body
from conveyor.sandbox.apiserver.identity import Authenticator, UserInfo
from conveyor.sandbox.apiserver.lifecycle import deletion_options
from conveyor.sandbox.apiserver.resources import ResourceType
from conveyor.sandbox.apiserver.routing import Target, parse_path
from conveyor.sandbox.apiserver.selectors import parse_field_selector, parse_label_selector
from conveyor.sandbox.apiserver.watching import WatchRequest, watch_events

__all__ = ["SandboxEmulator"]

logger = logging.getLogger(__name__)

_SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-conveyor-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_BINARY_MEDIA_TYPES = ("application/vnd.kubernetes.protobuf", "application/cbor")
_AGE_COLUMN = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def _json(body: Any, status: int = 200, warnings: list[str] | None = None) -> aiohttp.web.Response:
    response = aiohttp.web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )
    for warning in warnings or []:
        response.headers.add("Warning", f'299 - "{_escape(warning)}"')
    return response


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _field_validation(raw: aiohttp.web.BaseRequest) -> str:
    value = raw.query.get("fieldValidation", "Ignore")
    if value not in FIELD_VALIDATIONS:
        raise bad_request(
            f"fieldValidation must be one of {', '.join(FIELD_VALIDATIONS)}, not {value!r}"
        )
    return value


def _wants_table(raw: aiohttp.web.BaseRequest) -> bool:
    return "as=Table" in raw.headers.get("Accept", "")


FaultHook = Callable[[aiohttp.web.BaseRequest, Target, UserInfo], aiohttp.web.StreamResponse | None]


@attrs.define(kw_only=True)
class SandboxEmulator(kmock.KubernetesEmulator):
    log_dir: Path | None = None
    bookmark_interval: float = 10.0
    event_log_size: int = 10_000
    authenticator: Authenticator = attrs.field(factory=Authenticator)
    cluster: Cluster = attrs.field(init=False)
    stopping: asyncio.Event = attrs.field(factory=asyncio.Event, init=False)
    faults: FaultHook | None = None
    """An error to answer instead (sandbox.faults: on purpose, in tests of faults), or None."""
    audit: AuditLog = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.cluster = Cluster(event_log_size=self.event_log_size)
        self.audit = AuditLog(self.log_dir)

    def stop_streams(self) -> None:
        """End every watch and log follow, so the HTTP server can shut down at once."""
        self.stopping.set()
        self.cluster.store.close_subscriptions()

    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        try:
            target = parse_path(raw.path, self.cluster.registry)
            if target is None:
                return await super().__call__(raw)
            user = self.authenticator.user(raw.headers.get("Authorization"))
            await self._audit(raw, target, user)
            if self.faults is not None and (fault := self.faults(raw, target, user)) is not None:
                return fault
            return await self._answer(raw, target, user)
        except ApiError as error:
            return _json(error.body, error.code)
        except Exception as error:
            logger.exception("The sandbox API server failed on %s %s", raw.method, raw.path_qs)
            body = status_body(
                500,
                "InternalError",
                f"internal error of the sandbox API server: {error!r} (see the server log)",
            )
            return _json(body, 500)

    async def _audit(self, raw: aiohttp.web.BaseRequest, target: Target, user: UserInfo) -> None:
        """Record the request before it is answered: a watch is answered for minutes."""
        if self.audit.path is None or target.resource_type is None:
            return
        self.audit.record(
            user,
            target,
            method=raw.method,
            watch=target.watch or _flag(raw.query.get("watch")),
            content_type=raw.content_type,
            body=await raw.read() if raw.method in ("PATCH", "PUT") else b"",
        )

    async def _answer(
        self, raw: aiohttp.web.BaseRequest, target: Target, user: UserInfo
    ) -> aiohttp.web.StreamResponse:
        if target.resource_type is None:
            if raw.method != "GET":
                raise method_not_allowed(f"{raw.method} is not allowed on {raw.path}")
            return _json(self._answer_discovery(raw, target))
        if target.what == "collection":
            return await self._answer_collection(raw, target, target.resource_type, user)
        return await self._answer_object(raw, target, target.resource_type, user)

    def _answer_discovery(self, raw: aiohttp.web.BaseRequest, target: Target) -> dict[str, Any]:
        registry = self.cluster.registry
        if target.what == "root":
            return discovery.root_paths(registry)
        if target.what == "version":
            return _SERVER_VERSION
        if target.what == "api":
            return discovery.api_versions(raw.host)
        if target.what == "apis":
            return discovery.api_group_list(registry)
        if target.what == "group":
            return discovery.api_group(registry, target.group)
        if target.what == "resources":
            return discovery.api_resource_list(registry, target.group, target.version)
        # /openapi/v2, /openapi/v3, /openapi/v3/api/v1, /openapi/v3/apis/<group>/<version>
        rest = target.rest
        if rest == ("v2",):
            return discovery.openapi_v2()
        if rest == ("v3",):
            return discovery.openapi_v3_index(registry)
        if rest[:1] == ("v3",) and rest[1:2] == ("api",) and len(rest) == 3:
            return discovery.openapi_v3_group_version(registry, "", rest[2])
        if rest[:1] == ("v3",) and rest[1:2] == ("apis",) and len(rest) == 4:
            return discovery.openapi_v3_group_version(registry, rest[2], rest[3])
        raise ApiError(
            404, "NotFound", f"the server could not find the requested resource ({raw.path})"
        )

    @staticmethod
    async def _request_body(raw: aiohttp.web.BaseRequest) -> Any:
        data = await raw.read()
        if not data.strip():
            return None
        if raw.content_type in _BINARY_MEDIA_TYPES:
            # client-go falls back to JSON after a 415 for CBOR; kubectl's typed clients
            # (`kubectl create configmap ...`) send protobuf and cannot fall back.
            raise ApiError(
                415,
                "UnsupportedMediaType",
                (
                    f"the sandbox API server accepts JSON bodies only, not {raw.content_type}; "
                    "with kubectl, write a manifest and 'kubectl apply -f' it (for example: "
                    "kubectl create configmap NAME --dry-run=client -o yaml | kubectl apply -f -)"
                ),
            )
        try:
            return json.loads(data)
        except ValueError as error:
            raise bad_request(f"the request body is not valid JSON: {error}") from None

    # -- collections ----------------------------------------------------------------------

    async def _answer_collection(
        self,
        raw: aiohttp.web.BaseRequest,
        target: Target,
        resource_type: ResourceType,
        user: UserInfo,
    ) -> aiohttp.web.StreamResponse:
        query = raw.query
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"))
        if raw.method == "GET" and (target.watch or _flag(query.get("watch"))):
            return await self._answer_watch(raw, target, resource_type, fields)
        if raw.method == "GET":
            items = self.cluster.list_objects(resource_type, target.namespace, labels, fields)
            if _wants_table(raw):
                return _json(self._table_body(raw, resource_type, items))
            return _json(self._list_body(resource_type, items))
        if raw.method == "POST":
            body = await self._request_body(raw)
            warnings: list[str] = []
            created = self.cluster.create(
                resource_type,
                target.namespace,
                body,
                dry_run="dryRun" in query,
                field_validation=_field_validation(raw),
                warnings=warnings,
                user=user,
            )
            return _json(created, 201, warnings)
        if raw.method == "DELETE":
            options = deletion_options(await self._request_body(raw), dict(query))
            deleted = self.cluster.delete_collection(
                resource_type, target.namespace, labels, fields, options, user=user
            )
            return _json(self._list_body(resource_type, deleted))
        raise method_not_allowed(f"{raw.method} is not allowed on a collection ({raw.path})")

    def _list_body(
        self, resource_type: ResourceType, items: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return {
            "kind": f"{resource_type.kind}List",
            "apiVersion": resource_type.api_version,
            "metadata": {"resourceVersion": str(self.cluster.store.resource_version)},
            "items": items,
        }

    def _table_body(
        self, raw: aiohttp.web.BaseRequest, resource_type: ResourceType, items: list[dict]
    ) -> dict[str, Any]:
        include_object = raw.query.get("includeObject", "Metadata")
        if include_object not in ("None", "Metadata", "Object"):
            raise bad_request(
                f"includeObject must be None, Metadata or Object, not {include_object!r}"
            )
        if resource_type.custom:
            columns = list(resource_type.printer_columns) or [_AGE_COLUMN]
            table = tables.to_table(columns, items, include_object=include_object)
        else:
            table = tables.table_for_builtin(
                resource_type.kind, items, include_object=include_object
            )
        table.setdefault("metadata", {})["resourceVersion"] = str(
            self.cluster.store.resource_version
        )
        return table

    async def _answer_watch(
        self,
        raw: aiohttp.web.BaseRequest,
        target: Target,
        resource_type: ResourceType,
        fields: Any,
        name: str | None = None,
    ) -> aiohttp.web.StreamResponse:
        query = raw.query
        if name is not None:
            fields = parse_field_selector(
                ",".join(filter(None, [query.get("fieldSelector"), f"metadata.name={name}"]))
            )
        timeout = query.get("timeoutSeconds")
        request = WatchRequest(
            resource_type=resource_type,
            namespace=target.namespace,
            labels=parse_label_selector(query.get("labelSelector")),
            fields=fields,
            resource_version=query.get("resourceVersion"),
            timeout_seconds=float(timeout) if timeout else None,
            bookmarks=_flag(query.get("allowWatchBookmarks")),
            bookmark_interval=self.bookmark_interval,
        )
        version = request.resource_version or ""
        if version not in ("", "0") and not version.isdigit():
            raise bad_request(f"invalid resourceVersion {version!r}: it must be a number")
        wants_table = _wants_table(raw)
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(raw)
        events = watch_events(self.cluster, request)
        try:
            async for event in events:
                if wants_table and event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    table = self._table_body(raw, resource_type, [event["object"]])
                    event = {**event, "object": table}
                await response.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client went away: the watch is over
        finally:
            await events.aclose()
        return response

    # -- objects --------------------------------------------------------------------------

    async def _answer_object(
        self,
        raw: aiohttp.web.BaseRequest,
        target: Target,
        resource_type: ResourceType,
        user: UserInfo,
    ) -> aiohttp.web.StreamResponse:
        query = raw.query
        name = target.name
        assert name is not None
        dry_run = "dryRun" in query
        cluster = self.cluster
        if target.subresource == "proxy":
            if raw.method != "GET":
                raise method_not_allowed("the sandbox's pods/proxy only supports GET")
            return await proxy.answer(raw, self.cluster, target, resource_type)
        if target.subresource == "log":
            if raw.method != "GET":
                raise method_not_allowed("pods/log only supports GET")
            return await self._answer_log(raw, target, resource_type)
        if raw.method == "GET" and (target.watch or _flag(query.get("watch"))):
            return await self._answer_watch(raw, target, resource_type, None, name=name)
        if raw.method == "GET":
            obj = cluster.get(resource_type, target.namespace, name)
            if _wants_table(raw):
                return _json(self._table_body(raw, resource_type, [obj]))
            return _json(obj)
        warnings: list[str] = []
        if raw.method == "PUT":
            body = await self._request_body(raw)
            replaced = cluster.replace(
                resource_type,
                target.namespace,
                name,
                body,
                subresource=target.subresource,
                dry_run=dry_run,
                field_validation=_field_validation(raw),
                warnings=warnings,
                user=user,
            )
            return _json(replaced, 200, warnings)
        if raw.method == "PATCH":
            body = await self._request_body(raw)
            patched = cluster.patch(
                resource_type,
                target.namespace,
                name,
                body,
                raw.content_type,
                subresource=target.subresource,
                dry_run=dry_run,
                field_validation=_field_validation(raw),
                warnings=warnings,
                user=user,
            )
            return _json(patched, 200, warnings)
        if raw.method == "DELETE" and target.subresource is None:
            options = deletion_options(await self._request_body(raw), dict(query))
            deleted = cluster.delete(
                resource_type,
                target.namespace,
                name,
                options,
                dry_run=dry_run,
                user=user,
                warnings=warnings,
            )
            return _json(deleted, 200, warnings)
        raise method_not_allowed(f"{raw.method} is not allowed on {raw.path}")

    async def _answer_log(
        self, raw: aiohttp.web.BaseRequest, target: Target, resource_type: ResourceType
    ) -> aiohttp.web.StreamResponse:
        pod = self.cluster.get(resource_type, target.namespace, target.name or "")
        path = logs.log_file(self.log_dir, pod, raw.query.get("container"))
        tail_lines = raw.query.get("tailLines")
        data = path.read_bytes()
        try:
            content = logs.tail(data, int(tail_lines) if tail_lines else None)
        except ValueError:
            raise bad_request(f"tailLines must be a number, not {tail_lines!r}") from None
        if not _flag(raw.query.get("follow")):
            return aiohttp.web.Response(body=content, content_type="text/plain")
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(raw)
        await response.write(content)

        def running() -> bool:
            current = self.cluster.store.get(
                resource_type.storage_key, target.namespace or "", target.name or ""
            )
            phase = ((current or {}).get("status") or {}).get("phase")
            return current is not None and phase not in ("Succeeded", "Failed")

        try:
            async for chunk in logs.follow_log(
                path, len(data), running=running, stopping=self.stopping
            ):
                await response.write(chunk)
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client stopped following
        return response


def _flag(value: str | None) -> bool:
    """A boolean query parameter: the Python client sends "True", Go clients "true"."""
    return (value or "").lower() in ("true", "1")
