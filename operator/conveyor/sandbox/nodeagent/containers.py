"""Pure translation of a container spec into a local process: image check, argv, environment.

Nothing here touches the API or starts a process; Secrets and ConfigMaps come in through a
lookup callable so the kubelet can fetch them and the tests can hand them in."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ContainerConfigError",
    "ObjectLookup",
    "expand_references",
    "image_matches",
    "image_repository",
    "map_argv",
    "parse_memory_quantity",
    "resolve_env",
]

#: ``lookup(kind, namespace, name)`` → the object's key/value data, or None when it does not exist.
ObjectLookup = Callable[[str, str, str], Mapping[str, str] | None]

_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")
_FIELD_KEY = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class ContainerConfigError(Exception):
    """The container cannot be configured yet (kubelet reason ``CreateContainerConfigError``)."""


def image_repository(image: str) -> str:
    """``ghcr.io/x/conveyor:0.1.0`` → ``ghcr.io/x/conveyor`` (a registry port is not a tag)."""
    without_digest = image.split("@", 1)[0]
    slash = without_digest.rfind("/")
    colon = without_digest.rfind(":")
    return without_digest[:colon] if colon > slash else without_digest


def image_matches(image: str, conveyor_image: str) -> bool:
    """Whether the sandbox runs ``image``: the Conveyor image itself, any tag or digest of it."""
    return image == conveyor_image or image_repository(image) == image_repository(conveyor_image)


def map_argv(
    command: Sequence[str] | None,
    args: Sequence[str] | None,
    command_map: Mapping[str, Sequence[str]],
) -> list[str]:
    """The argv of a container: ``command + args``, the image entrypoint ``conveyor`` when the
    command is empty, and a first word found in ``command_map`` replaced by its mapping."""
    argv = [*(command or ["conveyor"]), *(args or [])]
    head = command_map.get(argv[0])
    return [*head, *argv[1:]] if head is not None else argv


def expand_references(text: str, variables: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: defined variables are substituted, undefined references
    are left untouched, ``$$`` escapes a dollar."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return variables.get(name, match.group(0))

    return _REFERENCE.sub(substitute, text)


def _decoded(kind: str, data: Mapping[str, Any]) -> dict[str, str]:
    if kind != "Secret":
        return {str(k): str(v) for k, v in data.items()}
    return {str(k): base64.b64decode(v).decode("utf-8", "replace") for k, v in data.items()}


def object_data(kind: str, obj: Mapping[str, Any]) -> dict[str, str]:
    """The key/value content of a Secret (base64 ``data`` decoded, ``stringData`` honoured in case
    the API server did not fold it in) or of a ConfigMap."""
    values = _decoded(kind, obj.get("data") or {})
    values.update({str(k): str(v) for k, v in (obj.get("stringData") or {}).items()})
    return values


@dataclass(frozen=True)
class _Source:
    kind: str  # "Secret" or "ConfigMap"
    ref: Mapping[str, Any]


def _missing_object(kind: str, name: str) -> str:
    return f'{kind.lower()} "{name}" not found'


def _referenced_value(source: _Source, namespace: str, lookup: ObjectLookup) -> str | None:
    name = source.ref.get("name", "")
    key = source.ref.get("key", "")
    optional = bool(source.ref.get("optional"))
    data = lookup(source.kind, namespace, name)
    if data is None:
        if optional:
            return None
        raise ContainerConfigError(_missing_object(source.kind, name))
    if key not in data:
        if optional:
            return None
        raise ContainerConfigError(f"couldn't find key {key} in {source.kind} {namespace}/{name}")
    return data[key]


def _field_value(pod: Mapping[str, Any], field_path: str) -> str:
    metadata = pod.get("metadata", {})
    simple = {
        "metadata.name": metadata.get("name"),
        "metadata.namespace": metadata.get("namespace"),
        "metadata.uid": metadata.get("uid"),
        "spec.nodeName": pod.get("spec", {}).get("nodeName"),
        "spec.serviceAccountName": pod.get("spec", {}).get("serviceAccountName"),
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    if field_path in simple:
        return str(simple[field_path] or "")
    keyed = _FIELD_KEY.match(field_path)
    if keyed:
        return str((metadata.get(keyed.group(1)) or {}).get(keyed.group(2), ""))
    raise ContainerConfigError(f"unsupported fieldRef fieldPath {field_path!r}")


def _env_from(container: Mapping[str, Any], namespace: str, lookup: ObjectLookup) -> dict[str, str]:
    values: dict[str, str] = {}
    for entry in container.get("envFrom") or []:
        prefix = entry.get("prefix", "")
        for kind, field in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
            ref = entry.get(field)
            if ref is None:
                continue
            data = lookup(kind, namespace, ref.get("name", ""))
            if data is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(_missing_object(kind, ref.get("name", "")))
            values.update({prefix + k: v for k, v in data.items()})
    return values


def resolve_env(
    container: Mapping[str, Any],
    pod: Mapping[str, Any],
    lookup: ObjectLookup,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a container, as the kubelet composes it: ``base`` (the agent's own
    variables), then ``envFrom``, then ``env`` in order with ``$(VAR)`` expansion against what is
    defined so far. Raises ContainerConfigError naming the missing Secret/ConfigMap or key."""
    namespace = pod.get("metadata", {}).get("namespace", "default")
    env = dict(base or {})
    env.update(_env_from(container, namespace, lookup))
    for entry in container.get("env") or []:
        name = entry["name"]
        value_from = entry.get("valueFrom")
        if value_from is None:
            env[name] = expand_references(str(entry.get("value", "")), env)
            continue
        if "fieldRef" in value_from:
            env[name] = _field_value(pod, value_from["fieldRef"].get("fieldPath", ""))
            continue
        if "secretKeyRef" in value_from:
            source = _Source("Secret", value_from["secretKeyRef"])
        elif "configMapKeyRef" in value_from:
            source = _Source("ConfigMap", value_from["configMapKeyRef"])
        else:
            raise ContainerConfigError(f"env {name}: unsupported valueFrom {sorted(value_from)}")
        value = _referenced_value(source, namespace, lookup)
        if value is not None:
            env[name] = value
    return env


_QUANTITY = re.compile(r"^([0-9.]+(?:[eE][0-9]+)?)([A-Za-z]*)$")
_SUFFIXES = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "m": 1e-3,
}


def parse_memory_quantity(quantity: str | int | float) -> int:
    """Bytes in a Kubernetes quantity such as ``256Mi``, ``1G`` or ``1e9``."""
    match = _QUANTITY.match(str(quantity).strip())
    if not match or match.group(2) not in _SUFFIXES:
        raise ValueError(f"not a Kubernetes quantity: {quantity!r} (expected e.g. 256Mi or 1G)")
    return int(float(match.group(1)) * _SUFFIXES[match.group(2)])
