"""The three patch formats of the Kubernetes API, as pure functions on JSON-like objects.

- RFC 7386 JSON merge patch (`application/merge-patch+json`);
- RFC 6902 JSON patch (`application/json-patch+json`);
- strategic merge patch (`application/strategic-merge-patch+json`), built-in kinds only: lists of
  objects are merged by their merge key (`name` for containers, env, volumes...; see
  `MERGE_KEYS`), `finalizers` are merged as a set, other lists are replaced; the `$patch`,
  `$setElementOrder/...`, `$retainKeys` and `$deleteFromPrimitiveList/...` directives that
  kubectl sends are understood.

All functions return new objects and never modify their arguments.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["MERGE_KEYS", "PatchError", "json_patch", "merge_patch", "strategic_merge_patch"]


class PatchError(ValueError):
    """The patch cannot be applied; the message says which operation and path failed."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, `null` deletes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _split_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"invalid JSON pointer {pointer!r}: it must start with '/'")
    return [_unescape(token) for token in pointer[1:].split("/")]


def _list_index(container: list[Any], token: str, path: str, *, for_insert: bool) -> int:
    if token == "-" and for_insert:
        return len(container)
    if not token.isdigit():
        raise PatchError(f"invalid array index {token!r} in path {path!r}")
    index = int(token)
    limit = len(container) if for_insert else len(container) - 1
    if index > limit:
        raise PatchError(f"array index {index} is out of range in path {path!r}")
    return index


def _resolve(document: Any, tokens: list[str], path: str) -> Any:
    current = document
    for token in tokens:
        if isinstance(current, dict):
            if token not in current:
                raise PatchError(f"path {path!r} does not exist: missing key {token!r}")
            current = current[token]
        elif isinstance(current, list):
            current = current[_list_index(current, token, path, for_insert=False)]
        else:
            raise PatchError(f"path {path!r} does not exist: {token!r} is inside a scalar")
    return current


def _add(document: Any, tokens: list[str], value: Any, path: str) -> Any:
    if not tokens:
        return copy.deepcopy(value)
    parent = _resolve(document, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = copy.deepcopy(value)
    elif isinstance(parent, list):
        parent.insert(_list_index(parent, last, path, for_insert=True), copy.deepcopy(value))
    else:
        raise PatchError(f"cannot add at {path!r}: the parent is not an object or an array")
    return document


def _remove(document: Any, tokens: list[str], path: str) -> Any:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _resolve(document, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"cannot remove {path!r}: it does not exist")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_list_index(parent, last, path, for_insert=False))
    raise PatchError(f"cannot remove {path!r}: the parent is not an object or an array")


def json_patch(document: Any, operations: Any) -> Any:
    """RFC 6902: add, remove, replace, move, copy, test; any failure fails the whole patch."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be an array of operations")
    result = copy.deepcopy(document)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise PatchError(f"invalid JSON patch operation {operation!r}: needs 'op' and 'path'")
        op, path = operation["op"], operation["path"]
        tokens = _split_pointer(path)
        if op in ("add", "replace", "test") and "value" not in operation:
            raise PatchError(f"JSON patch operation {op!r} at {path!r} needs a 'value'")
        if op == "add":
            result = _add(result, tokens, operation["value"], path)
        elif op == "remove":
            _remove(result, tokens, path)
        elif op == "replace":
            _resolve(result, tokens, path)  # must exist
            if tokens:
                _remove(result, tokens, path)
            result = _add(result, tokens, operation["value"], path)
        elif op in ("move", "copy"):
            source = operation.get("from")
            if source is None:
                raise PatchError(f"JSON patch operation {op!r} at {path!r} needs 'from'")
            source_tokens = _split_pointer(source)
            if op == "move":
                value = _remove(result, source_tokens, source)
            else:
                value = copy.deepcopy(_resolve(result, source_tokens, source))
            result = _add(result, tokens, value, path)
        elif op == "test":
            actual = _resolve(result, tokens, path)
            if actual != operation["value"]:
                raise PatchError(
                    f"testing value {path} failed: expected {operation['value']!r}, "
                    f"found {actual!r}"
                )
        else:
            raise PatchError(f"unknown JSON patch operation {op!r}")
    return result


# Lists of objects merged by a key in strategic merge patches of built-in kinds.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "matchConditions": "name",  # ValidatingAdmissionPolicy
}
# Lists of scalars merged as sets.
MERGED_SCALAR_LISTS = {"finalizers"}


def _merge_key(field_name: str, items: list[Any]) -> str | None:
    if field_name == "ports":
        # Container ports merge on containerPort, Service ports on port.
        sample = next((item for item in items if isinstance(item, dict)), {})
        return "containerPort" if "containerPort" in sample else "port"
    return MERGE_KEYS.get(field_name)


def _merge_object_list(current: list[Any], patch: list[Any], key: str) -> list[Any]:
    result = [copy.deepcopy(item) for item in current]
    for item in patch:
        if not isinstance(item, dict):
            result.append(copy.deepcopy(item))
            continue
        directive = item.get("$patch")
        index = next(
            (
                i
                for i, existing in enumerate(result)
                if isinstance(existing, dict) and existing.get(key) == item.get(key)
            ),
            None,
        )
        if directive == "delete":
            if index is not None:
                result.pop(index)
        elif directive == "replace":
            replacement = {k: v for k, v in item.items() if k != "$patch"}
            if index is None:
                result.append(replacement)
            else:
                result[index] = replacement
        elif index is None:
            result.append(strategic_merge_patch({}, item))
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


def _merge_list(field_name: str, current: Any, patch: list[Any]) -> list[Any]:
    current_list = current if isinstance(current, list) else []
    if any(
        isinstance(item, dict) and item.get("$patch") == "replace" and len(item) == 1
        for item in patch
    ):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    if field_name in MERGED_SCALAR_LISTS:
        return list(current_list) + [item for item in patch if item not in current_list]
    key = _merge_key(field_name, patch + current_list)
    if key is None or not all(isinstance(item, dict) for item in patch):
        return copy.deepcopy(patch)
    return _merge_object_list(current_list, patch, key)


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return {}
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field_name = key.split("/", 1)[1]
            if isinstance(result.get(field_name), list):
                result[field_name] = [i for i in result[field_name] if i not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        elif isinstance(value, dict):
            result[key] = strategic_merge_patch(result.get(key), value)
        else:
            result[key] = value
    if isinstance(patch.get("$retainKeys"), list):
        retained = set(patch["$retainKeys"])
        result = {key: value for key, value in result.items() if key in retained}
    return result
