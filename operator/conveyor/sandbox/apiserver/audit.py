"""An audit log of the API's requests, as a real server's audit backend writes one.

One JSON line per request to the Kubernetes API, in `<log_dir>/api-audit.jsonl`: who asked,
the RBAC verb, the API group, the resource (with its subresource), the namespace and the name.
Writes to a main endpoint (a patch or a replace of an object, not its status) keep their body
too, so a test can tell a finalizer added from a spec rewritten. This is what the least-
privilege test checks against `manifests/rbac/`, and what shows the operator never writes
what a person owns.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from conveyor.sandbox.apiserver.identity import UserInfo
from conveyor.sandbox.apiserver.routing import Target

__all__ = ["AUDIT_FILE", "AuditLog", "AuditRecord", "read_audit", "verb_of"]

logger = logging.getLogger(__name__)

AUDIT_FILE = "api-audit.jsonl"


@dataclass(frozen=True)
class AuditRecord:
    """One request, in the terms an RBAC rule grants it."""

    user: str
    verb: str
    group: str
    resource: str
    """The plural, with `/subresource` when the request named one (`pods/log`)."""
    namespace: str | None
    name: str | None
    content_type: str = ""
    body: Any = None
    """Patches and replaces of a main endpoint only."""


def verb_of(method: str, target: Target, watch: bool) -> str:
    """The verb RBAC authorizes a request by (`get` a pod's proxy or log included)."""
    collection = target.what == "collection"
    if method in ("GET", "HEAD"):
        if watch:
            return "watch"
        return "list" if collection else "get"
    if method == "DELETE":
        return "deletecollection" if collection else "delete"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


class AuditLog:
    """Appends records to the file, from any thread of the server."""

    def __init__(self, log_dir: Path | None) -> None:
        self.path = None if log_dir is None else log_dir / AUDIT_FILE
        self._lock = threading.Lock()

    def record(
        self,
        user: UserInfo,
        target: Target,
        *,
        method: str,
        watch: bool,
        content_type: str = "",
        body: bytes = b"",
    ) -> None:
        if self.path is None or target.resource_type is None:
            return
        keeps_body = method in ("PATCH", "PUT") and target.subresource is None
        record = AuditRecord(
            user=user.username,
            verb=verb_of(method, target, watch),
            group=target.resource_type.group,
            resource=target.resource_type.plural
            + (f"/{target.subresource}" if target.subresource else ""),
            namespace=target.namespace,
            name=target.name,
            content_type=content_type if keeps_body else "",
            body=_decoded(body) if keeps_body else None,
        )
        line = json.dumps(asdict(record), separators=(",", ":")) + "\n"
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as out:
                    out.write(line)
            except OSError as error:  # the log is for tests and people: never fail a request
                logger.warning("The API audit log stops: cannot write %s (%s)", self.path, error)
                self.path = None


def _decoded(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return body.decode("utf-8", "replace")


def read_audit(log_dir: Path) -> list[AuditRecord]:
    """Every record of a sandbox's API so far (none when it kept no log)."""
    path = log_dir / AUDIT_FILE
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as lines:
        return [AuditRecord(**json.loads(line)) for line in lines if line.strip()]
