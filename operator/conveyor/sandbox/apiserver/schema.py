"""CRD structural-schema admission: prune, default and validate a custom resource.

A real kube-apiserver runs three steps on every create, update and patch of a custom resource,
against the `openAPIV3Schema` of the CRD version, and `admit` runs them in the same order:

1. prune (apiextensions `structural/pruning`): every field the schema does not specify is
   dropped, except below `x-kubernetes-preserve-unknown-fields: true`; `apiVersion`, `kind` and
   `metadata` survive at the root and in `x-kubernetes-embedded-resource` objects;
2. default (`structural/defaulting`): non-nullable nulls without a default are dropped, then
   `default` values fill absent fields (and non-nullable nulls), recursively, but never
   materialize an absent parent;
3. validate: the kube-openapi schema validator, then the apiextensions checks of embedded
   resources and of `x-kubernetes-list-type` set/map, with the real server's messages.

Known differences from a real server, on purpose:
- `x-kubernetes-validations` (CEL rules) are ignored silently: there is no CEL interpreter here.
- Map keys appear as `spec.labels[app]` in every path; kube-openapi writes `spec.labels.app`
  in its schema messages (the list-type checks of the real server use brackets too).
- Numeric bounds are compared exactly; kube-openapi truncates a fractional bound to an integer
  when the value is an integer (so `0` would pass `minimum: 0.1` on a real server).
- anyOf/oneOf/allOf/not failures carry the path of the node; a real server reports them at
  `<nil>`. An update is validated like a create (no ratcheting of unchanged invalid fields).
- Patterns that Python's `re` cannot compile (RE2-only syntax) are not enforced.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import email.utils
import ipaddress
import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

__all__ = ["FieldError", "admit", "apply_defaults", "invalid_status", "prune", "validate"]

logger = logging.getLogger(__name__)

Schema = dict[str, Any]

PRESERVE_UNKNOWN = "x-kubernetes-preserve-unknown-fields"
EMBEDDED_RESOURCE = "x-kubernetes-embedded-resource"
INT_OR_STRING = "x-kubernetes-int-or-string"
LIST_TYPE = "x-kubernetes-list-type"
LIST_MAP_KEYS = "x-kubernetes-list-map-keys"
TYPE_META_FIELDS = ("apiVersion", "kind", "metadata")


@dataclass(frozen=True)
class FieldError:
    """One validation failure, as a `field.Error` of the Kubernetes API machinery."""

    path: str  # "spec.model.estimator"
    kind: str  # "Required" | "Invalid" | "Unsupported value" | "Duplicate value" | ...
    message: str  # 'spec.model.estimator: Unsupported value: "foo": supported values: "a"'


def admit(schema: Schema, obj: dict[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
    """The object pruned and defaulted as a real server stores it, and its validation errors."""
    admitted = apply_defaults(schema, prune(schema, obj))
    return admitted, validate(schema, admitted)


# --- pruning ---------------------------------------------------------------------------------

_DROP = object()  # a key that neither `properties` nor `additionalProperties` specifies


def prune(schema: Schema, obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of obj without the fields the schema does not specify."""
    # The root is an embedded resource: its apiVersion, kind and metadata always survive.
    pruned: dict[str, Any] = _prune(obj, {**(schema or {}), EMBEDDED_RESOURCE: True})
    return pruned


def _prune(value: Any, schema: Schema | None) -> Any:
    if schema is not None and schema.get(PRESERVE_UNKNOWN):
        return _prune_specified_only(value, schema)
    if isinstance(value, dict):
        if schema is None:
            return {}
        kept = {}
        for key, item in value.items():
            if schema.get(EMBEDDED_RESOURCE) and _is_type_meta(key, item):
                kept[key] = copy.deepcopy(item)
            elif (sub := _schema_for_key(schema, key)) is not _DROP:
                kept[key] = _prune(item, sub)
        return kept
    if isinstance(value, list):
        items = schema.get("items") if schema is not None else None
        return [_prune(item, items if isinstance(items, dict) else None) for item in value]
    return value


def _prune_specified_only(value: Any, schema: Schema) -> Any:
    """Below preserve-unknown-fields: keep unknown fields, still prune the specified ones."""
    if isinstance(value, dict):
        kept = {}
        for key, item in value.items():
            sub = _schema_for_key(schema, key)
            if sub is _DROP or (schema.get(EMBEDDED_RESOURCE) and key in TYPE_META_FIELDS):
                kept[key] = copy.deepcopy(item)
            else:
                kept[key] = _prune(item, sub)
        return kept
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_prune_specified_only(item, schema["items"]) for item in value]
    return copy.deepcopy(value)


def _schema_for_key(schema: Schema, key: str) -> Any:
    properties = schema.get("properties") or {}
    if key in properties:
        return properties[key]
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        return extra
    return None if extra is True else _DROP  # `true` specifies the key but nothing below it


def _is_type_meta(key: str, value: Any) -> bool:
    if key in ("apiVersion", "kind"):
        return isinstance(value, str)
    return key == "metadata" and isinstance(value, dict)


# --- defaulting ------------------------------------------------------------------------------


def apply_defaults(schema: Schema, obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of obj with the schema's defaults applied where fields are absent."""
    defaulted = copy.deepcopy(obj)
    _drop_nulls_without_default(defaulted, schema)
    _default(defaulted, schema)
    return defaulted


def _value_schema(schema: Schema, key: str) -> Schema | None:
    properties = schema.get("properties") or {}
    if key in properties:
        return properties[key]  # type: ignore[no-any-return]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def _replaces_null(schema: Schema) -> bool:
    return not schema.get("nullable")


def _drop_nulls_without_default(value: Any, schema: Schema | None) -> None:
    if schema is None:
        return
    if isinstance(value, dict):
        for key in list(value):
            sub = _value_schema(schema, key)
            if sub is None:
                continue
            if value[key] is None and _replaces_null(sub) and sub.get("default") is None:
                del value[key]
            else:
                _drop_nulls_without_default(value[key], sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _drop_nulls_without_default(item, schema["items"])


def _default(value: Any, schema: Schema | None) -> None:
    if schema is None:
        return
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key, sub in properties.items():
            missing = key not in value or (value[key] is None and _replaces_null(sub))
            if missing and sub.get("default") is not None:
                value[key] = copy.deepcopy(sub["default"])
        for key in list(value):
            sub = _value_schema(schema, key)
            if sub is None:
                continue
            if value[key] is None and _replaces_null(sub) and sub.get("default") is not None:
                value[key] = copy.deepcopy(sub["default"])
            _default(value[key], sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        items = schema["items"]
        for index, item in enumerate(value):
            if item is None and _replaces_null(items) and items.get("default") is not None:
                value[index] = copy.deepcopy(items["default"])
            _default(value[index], items)


# --- validation ------------------------------------------------------------------------------


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
    return [_required("metadata.name", "name or generateName is required")]


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
    return _invalid(path, actual, detail)


def _composition_errors(value: Any, schema: Schema, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    quoted = go_quote(path)
    if any_of := schema.get("anyOf"):
        results = [_node_errors(value, sub, path) for sub in any_of]
        if all(results):
            errors.append(_invalid(path, "", f"{quoted} must validate at least one schema (anyOf)"))
            errors += _fewest(results)
    if one_of := schema.get("oneOf"):
        results = [_node_errors(value, sub, path) for sub in one_of]
        valid = sum(1 for result in results if not result)
        if valid != 1:
            found = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
            detail = f"{quoted} must validate one and only one schema (oneOf). {found}"
            errors.append(_invalid(path, "", detail))
            errors += _fewest(results) if valid == 0 else []
    if all_of := schema.get("allOf"):
        results = [_node_errors(value, sub, path) for sub in all_of]
        for result in results:
            errors += result
        failed = sum(1 for result in results if result)
        if failed:
            suffix = ". None validated" if failed == len(results) else ""
            detail = f"{quoted} must validate all the schemas (allOf){suffix}"
            errors.append(_invalid(path, "", detail))
    if isinstance(schema.get("not"), dict) and not _node_errors(value, schema["not"], path):
        errors.append(_invalid(path, "", f"{quoted} must not validate the schema (not)"))
    return errors


def _fewest(results: list[list[FieldError]]) -> list[FieldError]:
    """The failures of the alternative that came closest (kube-openapi: most checks passed)."""
    return min(results, key=lambda errors: len(errors))


def _string_errors(value: str, schema: Schema, path: str) -> list[FieldError]:
    # kube-openapi stops at the first failed string check.
    if (longest := schema.get("maxLength")) is not None and len(value) > longest:
        return [_too_long(path, longest)]
    if (shortest := schema.get("minLength")) is not None and len(value) < shortest:
        return [_invalid(path, value, f"{path} in body should be at least {shortest} chars long")]
    pattern = schema.get("pattern")
    if pattern and (compiled := _compile(pattern)) is not None and not compiled.search(value):
        return [_invalid(path, value, f"{path} in body should match '{pattern}'")]
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
        errors.append(_invalid(path, value, detail))
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
            errors.append(_invalid(path, value, detail))
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
        errors.append(_invalid(path, len(value), detail))
    if (most := schema.get("maxItems")) is not None and len(value) > most:
        errors.append(_too_many(path, len(value), most))
    if schema.get("uniqueItems") and len({_identity(item) for item in value}) < len(value):
        errors.append(_invalid(path, "", f"{path} in body shouldn't contain duplicates"))
    return errors


def _enum_errors(value: Any, schema: Schema, path: str) -> list[FieldError]:
    allowed = schema.get("enum")
    if not allowed:
        return []
    if value is not None and any(_json_equal(value, option) for option in allowed):
        return []
    names = [option if isinstance(option, str) else go_json(option) for option in allowed]
    return [_unsupported(path, value, names)]


def _object_errors(value: dict[str, Any], schema: Schema, path: str) -> list[FieldError]:
    errors = []
    if (fewest := schema.get("minProperties")) is not None and len(value) < fewest:
        detail = f"{path} in body should have at least {fewest} properties"
        errors.append(_invalid(path, len(value), detail))
    if (most := schema.get("maxProperties")) is not None and len(value) > most:
        errors.append(_too_many(path, len(value), most))
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
        _required(_child(path, name)) for name in schema.get("required") or [] if name not in value
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
        _required(_child(path, field), "must not be empty")
        for field in ("apiVersion", "kind")
        if field not in value
    ]
    for field in ("apiVersion", "kind"):
        if field not in value:
            continue
        text, field_path = value[field], _child(path, field)
        if not isinstance(text, str):
            errors.append(_invalid(field_path, text, "must be a string"))
        elif not text:
            errors.append(_invalid(field_path, text, "must not be empty"))
        elif field == "apiVersion" and text.count("/") > 1:
            errors.append(_invalid(field_path, text, f"unexpected GroupVersion string: {text}"))
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
            errors.append(_duplicate(f"{path}[{index}]", item))
    return errors


def _list_map_duplicates(value: list[Any], schema: Schema, path: str) -> list[FieldError]:
    for index, item in enumerate(value):
        if item is not None and not isinstance(item, dict):
            detail = "must be an object for an array of list-type map"
            return [_invalid(f"{path}[{index}]", item, detail)]
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
            errors.append(_duplicate(f"{path}[{index}]", keys))
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


# --- formats (kube-openapi strfmt, the formats a CRD may use) --------------------------------

_DATE_TIME_CLOCK = re.compile(
    r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$"
)
_UUID = r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?%s[0-9a-f]{3}-?%s[0-9a-f]{3}-?[0-9a-f]{12}$"
_REGEX_FORMATS = {
    "uuid": re.compile(_UUID % ("[0-9a-f]", "[0-9a-f]")),
    "uuid3": re.compile(_UUID % ("3", "[0-9a-f]")),
    "uuid4": re.compile(_UUID % ("4", "[89ab]")),
    "uuid5": re.compile(_UUID % ("5", "[89ab]")),
    "bsonobjectid": re.compile(r"^[0-9a-fA-F]{24}$"),
    "hexcolor": re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"),
    "mac": re.compile(
        r"^([0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\2[0-9a-fA-F]{2}){4,18}"
        r"|[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}\.[0-9a-fA-F]{4})$"
    ),
}


_HOSTNAME = re.compile(
    r"^([^\W_]((-?[^\W_]{0,62})?)|([^\W_]((([^\W_]|-){0,61}[^\W_])?)(\.)){1,}"
    r"([^\W\d_]){2,63})$"
)
_GO_DURATION = re.compile(r"^[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)$")
_SPOKEN_DURATION = re.compile(r"(\d+)\s*([A-Za-zµ]+)")
_DURATION_UNITS = {
    "ns",
    "nanosecond",
    "nanoseconds",
    "us",
    "µs",
    "microsecond",
    "microseconds",
    "ms",
    "millisecond",
    "milliseconds",
    "s",
    "sec",
    "secs",
    "second",
    "seconds",
    "m",
    "min",
    "mins",
    "minute",
    "minutes",
    "h",
    "hr",
    "hour",
    "hours",
    "d",
    "day",
    "days",
    "w",
    "wk",
    "week",
    "weeks",
}


def _is_hostname(text: str) -> bool:
    labels_fit = all(len(label) <= 63 for label in text.split("."))
    return bool(_HOSTNAME.match(text)) and len(text) <= 255 and labels_fit


def _is_duration(text: str) -> bool:
    """strfmt.ParseDuration: a Go duration, or any "<n> <unit>" such as "3 days"."""
    if _GO_DURATION.match(text):
        return True
    return any(unit.lower() in _DURATION_UNITS for _, unit in _SPOKEN_DURATION.findall(text))


def _is_date(text: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return False
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_date_time(text: str) -> bool:
    parts = text.lower().split("t")
    if len(text) < 4 or len(parts) < 2 or not _is_date(parts[0]):
        return False
    clock = _DATE_TIME_CLOCK.match(parts[1])
    return clock is not None and clock[1] <= "23" and clock[2] <= "59" and clock[3] <= "59"


def _parses(parse: Callable[[str], Any]) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        try:
            parse(text)
        except ValueError:
            return False
        return True

    return check


def _matches(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda text: pattern.match(text) is not None


def _is_ipv4(text: str) -> bool:
    octets = text.split(".")
    return len(octets) == 4 and all(o.isdigit() and len(o) <= 3 and int(o) <= 255 for o in octets)


_FORMAT_CHECKS: dict[str, Callable[[str], bool]] = {
    "datetime": _is_date_time,
    "duration": _is_duration,
    "hostname": _is_hostname,
    "date": _is_date,
    "ipv4": _is_ipv4,
    "ipv6": lambda text: ":" in text and _parses(ipaddress.ip_address)(text),
    "cidr": _parses(lambda text: ipaddress.ip_network(text, strict=False)),
    "email": lambda text: "@" in email.utils.parseaddr(text)[1],
    "byte": _parses(lambda text: base64.b64decode(text, validate=True)),
    "uri": lambda text: bool(re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*:|/)", text)),
    **{name: _matches(pattern) for name, pattern in _REGEX_FORMATS.items()},
}


def _format_errors(value: str, schema: Schema, path: str) -> list[FieldError]:
    declared = schema.get("format")
    check = _FORMAT_CHECKS.get(str(declared).replace("-", "")) if declared else None
    try:
        valid = check is None or check(value)
    except (ValueError, binascii.Error):
        valid = False
    if valid:
        return []
    return [_invalid(path, value, f"{path} in body must be of type {declared}: {go_quote(value)}")]


# --- field errors and the 422 Status ---------------------------------------------------------


def _error(path: str, kind: str, body: str) -> FieldError:
    return FieldError(path, kind, f"{path}: {body}")


def _required(path: str, detail: str = "") -> FieldError:
    return _error(path, "Required", "Required value" + (f": {detail}" if detail else ""))


def _invalid(path: str, value: Any, detail: str) -> FieldError:
    return _error(path, "Invalid", f"Invalid value: {go_bad_value(value)}: {detail}")


def _unsupported(path: str, value: Any, allowed: list[str]) -> FieldError:
    body = f"Unsupported value: {go_bad_value(value)}"
    if allowed:
        body += ": supported values: " + ", ".join(go_quote(name) for name in allowed)
    return _error(path, "Unsupported value", body)


def _duplicate(path: str, value: Any) -> FieldError:
    return _error(path, "Duplicate value", f"Duplicate value: {go_bad_value(value)}")


def _too_long(path: str, limit: int) -> FieldError:
    unit = "byte" if limit == 1 else "bytes"
    return _error(path, "Too long", f"Too long: may not be more than {limit} {unit}")


def _too_many(path: str, actual: int, limit: int) -> FieldError:
    unit = "item" if limit == 1 else "items"
    return _error(path, "Too many", f"Too many: {actual}: must have at most {limit} {unit}")


_CAUSE_REASONS = {
    "Required": "FieldValueRequired",
    "Invalid": "FieldValueInvalid",
    "Unsupported value": "FieldValueNotSupported",
    "Duplicate value": "FieldValueDuplicate",
    "Forbidden": "FieldValueForbidden",
    "Too many": "FieldValueTooMany",
    "Too long": "FieldValueTooLong",
}


def invalid_status(kind: str, group: str, name: str, errors: list[FieldError]) -> dict[str, Any]:
    """The 422 Status body a real server returns for an invalid object (`errors.NewInvalid`)."""
    qualified = f"{kind}.{group}" if group else kind
    messages = list(dict.fromkeys(error.message for error in errors))  # aggregated, deduplicated
    message = f"{qualified} {go_quote(name)} is invalid"
    if messages:
        message += ": " + (messages[0] if len(messages) == 1 else f"[{', '.join(messages)}]")
    details: dict[str, Any] = {
        "name": name,
        "group": group,
        "kind": kind,
        "causes": [_cause(error) for error in errors],
    }
    if not group:
        del details["group"]
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Invalid",
        "details": details,
        "code": 422,
    }


def _cause(error: FieldError) -> dict[str, str]:
    prefix = f"{error.path}: "
    body = error.message[len(prefix) :] if error.message.startswith(prefix) else error.message
    reason = _CAUSE_REASONS.get(error.kind, "FieldValueInvalid")
    if error.kind == "Invalid" and " in body must be of type " in body:
        reason = "FieldValueTypeInvalid"
    return {"reason": reason, "message": body, "field": error.path}


# --- Go value formatting, so messages read exactly as the real server's ----------------------

_GO_ESCAPES = {
    "\a": r"\a",
    "\b": r"\b",
    "\f": r"\f",
    "\n": r"\n",
    "\r": r"\r",
    "\t": r"\t",
    "\v": r"\v",
    '"': r"\"",
    "\\": r"\\",
}


def go_quote(text: str) -> str:
    """Go's strconv.Quote (%q)."""
    out = []
    for char in text:
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(f"\\u{ord(char):04x}" if ord(char) < 0x10000 else f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def go_float(number: float) -> str:
    """Go's %v of a float64: shortest digits, exponent form below 1e-4 and from 1e+06."""
    if not math.isfinite(number):
        return "NaN" if math.isnan(number) else ("+Inf" if number > 0 else "-Inf")
    if number == 0:
        return "-0" if math.copysign(1, number) < 0 else "0"
    sign, digit_tuple, exponent = Decimal(repr(number)).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    exponent = int(exponent) + len(digit_tuple) - len(digits)
    point = len(digits) + exponent  # position of the decimal point within digits
    minus = "-" if sign else ""
    if point - 1 < -4 or point - 1 >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        power = point - 1
        return f"{minus}{mantissa}e{'-' if power < 0 else '+'}{abs(power):02d}"
    if point <= 0:
        return f"{minus}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return minus + digits + "0" * (point - len(digits))
    return f"{minus}{digits[:point]}.{digits[point:]}"


def go_json(value: Any) -> str:
    """Go's json.Marshal of a decoded JSON value (whole floats without a decimal point)."""
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    if isinstance(value, list):
        return "[" + ",".join(go_json(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{go_json(value[k])}" for k in sorted(value)) + "}"
    return json.dumps(value)


def go_syntax(value: Any) -> str:
    """Go's %#v of a decoded JSON value, as field errors print maps and slices."""
    if value is None:
        return "interface {}(nil)"
    if isinstance(value, dict):
        entries = ", ".join(f"{go_quote(key)}:{go_syntax(value[key])}" for key in sorted(value))
        return "map[string]interface {}{" + entries + "}"
    if isinstance(value, list):
        return "[]interface {}{" + ", ".join(go_syntax(item) for item in value) + "}"
    return go_bad_value(value)


def go_bad_value(value: Any) -> str:
    """How `field.Error` prints the offending value."""
    if value is None:
        return '"null"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return go_quote(value)
    return go_syntax(value)
