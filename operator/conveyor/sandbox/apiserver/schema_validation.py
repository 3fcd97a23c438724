"""CRD structural-schema validation, with the messages and order of a real server.

First kube-openapi's schema validator (type, composition, string, format, number, array, enum,
object), then the apiextensions checks of embedded resources and of `x-kubernetes-list-type`
set/map. The differences from a real server are listed in `schema`.
"""

from __future__ import annotations

import json
import logging
import math
import re
from functools import lru_cache
from typing import Any

from conveyor.sandbox.apiserver.field_errors import (
    FieldError,
    duplicate,
    invalid,
    required,
    too_long,
    too_many,
    unsupported,
)
from conveyor.sandbox.apiserver.go_values import go_float, go_json, go_quote
from conveyor.sandbox.apiserver.schema_formats import matches_format
from conveyor.sandbox.apiserver.schema_keywords import (
    EMBEDDED_RESOURCE,
    INT_OR_STRING,
    LIST_MAP_KEYS,
    LIST_TYPE,
    TYPE_META_FIELDS,
    Schema,
)

__all__ = ["validate"]

logger = logging.getLogger(__name__)


def validate(schema: Schema, obj: dict[str, Any]) -> list[FieldError]:
    """Every error a real server reports for obj, in the order it checks them."""
    errors = _root_metadata_errors(obj)
    errors += _node_errors(obj, schema or {}, "")
    errors += _embedded_errors(obj, schema or {}, "", root=True)
    errors += _list_type_errors(obj, schema or {}, "")
    return errors


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _root_metadata_errors(obj: dict[str, Any]) -> list[FieldError]:
    metadata = obj.get("metadata")
    if isinstance(metadata, dict) and (metadata.get("name") or metadata.get("generateName")):
        return []
    return [required("metadata.name", "name or generateName is required")]


def _node_errors(value: Any, schema: Schema, path: str) -> list[FieldError]:
    """kube-openapi's SchemaValidator: type, composition, string, format, number, array, enum,
    object; each check applies only to the JSON type the value has."""
    types = _schema_types(schema)
    if value is None:
        errors = []
        if types and not schema.get("nullable"):
            errors.append(_type_error(path, types, "null"))
        return errors + _enum_errors(value, schema, path)
    errors = _type_errors(value, types, path) + _composition_errors(value, schema, path)
    if isinstance(value, str):
        errors += _string_errors(value, schema, path) + _format_errors(value, schema, path)
    elif _is_number(value):
        errors += _number_errors(value, schema, path)
    elif isinstance(value, list):
        errors += _array_errors(value, schema, path)
    errors += _enum_errors(value, schema, path)
    if isinstance(value, dict):
        errors += _object_errors(value, schema, path)
    return errors


def _schema_types(schema: Schema) -> list[str]:
    if schema.get(INT_OR_STRING):
        return ["integer", "string"]
    declared = schema.get("type")
    if isinstance(declared, list):
        return [str(t) for t in declared]
    return [declared] if declared else []


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _type_errors(value: Any, types: list[str], path: str) -> list[FieldError]:
    actual = _json_type(value)
    if not types or actual in types:
        return []
    if actual == "number" and "integer" in types and _is_whole(value):
        return []  # 3.0 is an integer in JSON
    if actual == "integer" and "number" in types:
        return []
    return [_type_error(path, types, actual)]


def _type_error(path: str, types: list[str], actual: str) -> FieldError:
    detail = f"{path} in body must be of type {','.join(types)}: {go_quote(actual)}"
    return invalid(path, actual, detail)


def _composition_errors(value: Any, schema: Schema, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    quoted = go_quote(path)
    if any_of := schema.get("anyOf"):
        results = [_node_errors(value, sub, path) for sub in any_of]
        if all(results):
            errors.append(invalid(path, "", f"{quoted} must validate at least one schema (anyOf)"))
            errors += _fewest(results)
    if one_of := schema.get("oneOf"):
        results = [_node_errors(value, sub, path) for sub in one_of]
        valid = sum(1 for result in results if not result)
        if valid != 1:
            found = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
            detail = f"{quoted} must validate one and only one schema (oneOf). {found}"
            errors.append(invalid(path, "", detail))
            errors += _fewest(results) if valid == 0 else []
    if all_of := schema.get("allOf"):
        results = [_node_errors(value, sub, path) for sub in all_of]
        for result in results:
            errors += result
        failed = sum(1 for result in results if result)
        if failed:
            suffix = ". None validated" if failed == len(results) else ""
            detail = f"{quoted} must validate all the schemas (allOf){suffix}"
            errors.append(invalid(path, "", detail))
    if isinstance(schema.get("not"), dict) and not _node_errors(value, schema["not"], path):
        errors.append(invalid(path, "", f"{quoted} must not validate the schema (not)"))
    return errors


def _fewest(results: list[list[FieldError]]) -> list[FieldError]:
    """The failures of the alternative that came closest (kube-openapi: most checks passed)."""
    return min(results, key=lambda errors: len(errors))


def _string_errors(value: str, schema: Schema, path: str) -> list[FieldError]:
    # kube-openapi stops at the first failed string check.
    if (longest := schema.get("maxLength")) is not None and len(value) > longest:
        return [too_long(path, longest)]
    if (shortest := schema.get("minLength")) is not None and len(value) < shortest:
        return [invalid(path, value, f"{path} in body should be at least {shortest} chars long")]
    pattern = schema.get("pattern")
    if pattern and (compiled := _compile(pattern)) is not None and not compiled.search(value):
        return [invalid(path, value, f"{path} in body should match '{pattern}'")]
    return []


@lru_cache(maxsize=512)
def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error as error:
        logger.debug("Pattern %r is not Python syntax (%s); not enforcing it", pattern, error)
        return None


def _number_errors(value: float, schema: Schema, path: str) -> list[FieldError]:
    errors = []
    factor = schema.get("multipleOf")
    if factor and factor > 0 and not _is_multiple(value, factor):
        detail = f"{path} in body should be a multiple of {_bound_text(factor, value)}"
        errors.append(invalid(path, value, detail))
    for bound_key, exclusive_key, below in (
        ("minimum", "exclusiveMinimum", True),
        ("maximum", "exclusiveMaximum", False),
    ):
        bound = schema.get(bound_key)
        if bound is None:
            continue
        exclusive = bool(schema.get(exclusive_key))
        outside = value < bound if below else value > bound
        if outside or (exclusive and value == bound):
            relation = "greater than" if below else "less than"
            relation += "" if exclusive else " or equal to"
            detail = f"{path} in body should be {relation} {_bound_text(bound, value)}"
            errors.append(invalid(path, value, detail))
    return errors


def _bound_text(bound: float, value: float) -> str:
    if isinstance(value, int) and float(bound).is_integer():
        return str(int(bound))  # kube-openapi compares integers as integers
    return go_float(float(bound))


def _is_multiple(value: float, factor: float) -> bool:
    if isinstance(value, int) and float(factor).is_integer():
        return value % int(factor) == 0
    return _is_whole(value / factor if factor >= 1 else 1 / factor * value)


def _is_whole(number: float) -> bool:
    """go-openapi's IsFloat64AJSONInteger: whole up to a relative error of 1e-9."""
    if isinstance(number, int):
        return True
    if not math.isfinite(number):
        return False
    whole = float(math.trunc(number))
    if number == whole:
        return True
    return abs(number - whole) / (abs(number) + abs(whole)) < 1e-9


def _array_errors(value: list[Any], schema: Schema, path: str) -> list[FieldError]:
    errors = []
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            errors += _node_errors(item, items, f"{path}[{index}]")
    if (fewest := schema.get("minItems")) is not None and len(value) < fewest:
        detail = f"{path} in body should have at least {fewest} items"
        errors.append(invalid(path, len(value), detail))
    if (most := schema.get("maxItems")) is not None and len(value) > most:
        errors.append(too_many(path, len(value), most))
    if schema.get("uniqueItems") and len({_identity(item) for item in value}) < len(value):
        errors.append(invalid(path, "", f"{path} in body shouldn't contain duplicates"))
    return errors


def _enum_errors(value: Any, schema: Schema, path: str) -> list[FieldError]:
    allowed = schema.get("enum")
    if not allowed:
        return []
    if value is not None and any(_json_equal(value, option) for option in allowed):
        return []
    names = [option if isinstance(option, str) else go_json(option) for option in allowed]
    return [unsupported(path, value, names)]


def _object_errors(value: dict[str, Any], schema: Schema, path: str) -> list[FieldError]:
    errors = []
    if (fewest := schema.get("minProperties")) is not None and len(value) < fewest:
        detail = f"{path} in body should have at least {fewest} properties"
        errors.append(invalid(path, len(value), detail))
    if (most := schema.get("maxProperties")) is not None and len(value) > most:
        errors.append(too_many(path, len(value), most))
    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, item in value.items():
            if key not in properties:
                errors += _node_errors(item, extra, f"{path}[{key}]")
    for name, sub in properties.items():
        if name in value:
            errors += _node_errors(value[name], sub, _child(path, name))
    errors += [
        required(_child(path, name)) for name in schema.get("required") or [] if name not in value
    ]
    return errors


def _embedded_errors(
    value: Any, schema: Schema | None, path: str, root: bool = False
) -> list[FieldError]:
    """apiextensions `objectmeta.Validate`: embedded resources need an apiVersion and a kind."""
    if schema is None:
        return []
    errors = []
    if isinstance(value, dict):
        embedded = bool(schema.get(EMBEDDED_RESOURCE))
        if embedded and not root:
            errors += _type_meta_errors(value, path)
        properties = schema.get("properties") or {}
        for key, item in value.items():
            if embedded and key in TYPE_META_FIELDS:
                continue
            if key in properties:
                errors += _embedded_errors(item, properties[key], _child(path, key))
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += _embedded_errors(item, schema["additionalProperties"], f"{path}[{key}]")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            errors += _embedded_errors(item, schema["items"], f"{path}[{index}]")
    return errors


def _type_meta_errors(value: dict[str, Any], path: str) -> list[FieldError]:
    errors = [
        required(_child(path, field), "must not be empty")
        for field in ("apiVersion", "kind")
        if field not in value
    ]
    for field in ("apiVersion", "kind"):
        if field not in value:
            continue
        text, field_path = value[field], _child(path, field)
        if not isinstance(text, str):
            errors.append(invalid(field_path, text, "must be a string"))
        elif not text:
            errors.append(invalid(field_path, text, "must not be empty"))
        elif field == "apiVersion" and text.count("/") > 1:
            errors.append(invalid(field_path, text, f"unexpected GroupVersion string: {text}"))
    return errors


def _list_type_errors(value: Any, schema: Schema | None, path: str) -> list[FieldError]:
    """apiextensions `listtype`: no duplicate items in sets, no duplicate keys in list maps."""
    if schema is None:
        return []
    errors = []
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key, item in value.items():
            if key in properties:
                errors += _list_type_errors(item, properties[key], _child(path, key))
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += _list_type_errors(item, schema["additionalProperties"], f"{path}[{key}]")
    elif isinstance(value, list):
        if schema.get(LIST_TYPE) == "set":
            errors += _set_duplicates(value, path)
        elif schema.get(LIST_TYPE) == "map":
            errors += _list_map_duplicates(value, schema, path)
        if isinstance(schema.get("items"), dict):
            for index, item in enumerate(value):
                errors += _list_type_errors(item, schema["items"], f"{path}[{index}]")
    return errors


def _set_duplicates(value: list[Any], path: str) -> list[FieldError]:
    seen: dict[str, int] = {}
    errors = []
    for index, item in enumerate(value):
        identity = _identity(item)
        seen[identity] = seen.get(identity, 0) + 1
        if seen[identity] == 2:  # each duplicated value once, at its second occurrence
            errors.append(duplicate(f"{path}[{index}]", item))
    return errors


def _list_map_duplicates(value: list[Any], schema: Schema, path: str) -> list[FieldError]:
    for index, item in enumerate(value):
        if item is not None and not isinstance(item, dict):
            detail = "must be an object for an array of list-type map"
            return [invalid(f"{path}[{index}]", item, detail)]
    key_names = schema.get(LIST_MAP_KEYS) or []
    key_schemas = (schema.get("items") or {}).get("properties") or {}
    seen: dict[str, int] = {}
    errors = []
    for index, item in enumerate(value):
        keys = {}
        for name in key_names:
            if item is not None and name in item:
                keys[name] = item[name]
            elif (default := key_schemas.get(name, {}).get("default")) is not None:
                keys[name] = default
        identity = _identity(keys) if item is not None else "null"
        seen[identity] = seen.get(identity, 0) + 1
        if seen[identity] == 2:
            errors.append(duplicate(f"{path}[{index}]", keys))
    return errors


def _identity(value: Any) -> str:
    """Equal for values Go's reflect.DeepEqual finds equal (1 and 1.0 differ, as in Go)."""
    return json.dumps(value, sort_keys=True)


def _json_equal(left: Any, right: Any) -> bool:
    """Enum membership: numbers compare by value (1 == 1.0), everything else by JSON."""
    return _identity(_whole_floats_as_ints(left)) == _identity(_whole_floats_as_ints(right))


def _whole_floats_as_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_whole_floats_as_ints(item) for item in value]
    if isinstance(value, dict):
        return {key: _whole_floats_as_ints(item) for key, item in value.items()}
    return value


def _format_errors(value: str, schema: Schema, path: str) -> list[FieldError]:
    declared = schema.get("format")
    if not declared or matches_format(value, str(declared)):
        return []
    return [invalid(path, value, f"{path} in body must be of type {declared}: {go_quote(value)}")]
