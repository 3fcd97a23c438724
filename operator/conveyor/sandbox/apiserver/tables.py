"""`kubectl get` tables (meta.k8s.io/v1 Table), built as a real API server builds them.

`to_table` follows apiextensions' `tableconvertor`: a Name column, then the CRD version's
`additionalPrinterColumns` (or a single Age column when it has none); each cell is the first
result of the column's JSONPath (see `jsonpath` for what is supported), typed by the column type,
`None` (JSON null) when the path finds nothing, and `date` columns rendered as the age kubectl
prints ("5m", "3h12m", "2d"). `table_for_builtin` follows the server's printers for Pods, Jobs
and Deployments (`builtin_printers`), and prints NAME and AGE for other kinds.
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

from conveyor.sandbox.apiserver import jsonpath
from conveyor.sandbox.apiserver.ages import AGE_DESCRIPTION, age, human_duration
from conveyor.sandbox.apiserver.builtin_printers import printer_for
from conveyor.sandbox.apiserver.go_values import go_float, go_json

__all__ = ["human_duration", "table_for_builtin", "to_table"]

NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name automatically. "
    "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
    "updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
INCLUDE_OBJECT_POLICIES = ("None", "Metadata", "Object")
_NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": NAME_DESCRIPTION,
    "priority": 0,
}
_AGE_PRINTER_COLUMN = {
    "name": "Age",
    "type": "date",
    "jsonPath": ".metadata.creationTimestamp",
    "description": AGE_DESCRIPTION,
}


def to_table(
    columns: list[dict[str, Any]],
    objects: list[dict[str, Any]],
    *,
    include_object: str = "Metadata",
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """The Table a real server answers for custom resources with these printer columns."""
    _check_include_object(include_object)
    printer_columns = columns or [_AGE_PRINTER_COLUMN]
    paths = [_column_path(column) for column in printer_columns]
    clock = now or datetime.datetime.now(datetime.UTC)
    definitions = [dict(_NAME_COLUMN)] + [_definition(column) for column in printer_columns]
    rows = []
    for obj in objects:
        cells: list[Any] = [_name(obj)]
        for column, path in zip(printer_columns, paths, strict=True):
            found = jsonpath.evaluate(path, obj)
            value = found[0] if found else None
            cells.append(_cell(column.get("type", "string"), value, clock))
        rows.append(_row(cells, obj, include_object))
    return _table(definitions, rows)


def table_for_builtin(
    kind: str,
    objects: list[dict[str, Any]],
    *,
    now: datetime.datetime | None = None,
    include_object: str = "Metadata",
) -> dict[str, Any]:
    """The Table a real server answers for a built-in kind: its printer's columns, or NAME/AGE."""
    _check_include_object(include_object)
    clock = now or datetime.datetime.now(datetime.UTC)
    columns, row_cells = printer_for(kind)
    definitions = [dict(_NAME_COLUMN)] + [dict(column) for column in columns]
    rows = [_row([_name(obj), *row_cells(obj, clock)], obj, include_object) for obj in objects]
    return _table(definitions, rows)


def _check_include_object(include_object: str) -> None:
    if include_object not in INCLUDE_OBJECT_POLICIES:
        raise ValueError(
            f"includeObject must be one of {', '.join(INCLUDE_OBJECT_POLICIES)}, "
            f"not {include_object!r}"
        )


def _name(obj: dict[str, Any]) -> Any:
    """The Name cell: metadata.name, or "" when the object has none."""
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return "" if name is None else name


def _definition(column: dict[str, Any]) -> dict[str, Any]:
    description = column.get("description") or (
        f"Custom resource definition column (in JSONPath format): {column.get('jsonPath', '')}"
    )
    return {
        "name": column["name"],
        "type": column.get("type", "string"),
        "format": column.get("format", ""),
        "description": description,
        "priority": int(column.get("priority", 0)),
    }


def _column_path(column: dict[str, Any]) -> list[jsonpath.Step]:
    try:
        return jsonpath.parse(str(column.get("jsonPath", "")))
    except ValueError as error:
        raise ValueError(
            f"printer column {column.get('name')!r} has an unsupported jsonPath "
            f"{column.get('jsonPath')!r}: {error}"
        ) from error


def _row(cells: list[Any], obj: dict[str, Any], include_object: str) -> dict[str, Any]:
    row: dict[str, Any] = {"cells": cells}
    if include_object == "Metadata":
        row["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": copy.deepcopy(obj.get("metadata") or {}),
        }
    elif include_object == "Object":
        row["object"] = copy.deepcopy(obj)
    return row


def _table(definitions: list[dict[str, Any]], rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": definitions,
        "rows": rows,
    }


# --- custom-resource cells -------------------------------------------------------------------


def _cell(column_type: str, value: Any, now: datetime.datetime) -> Any:
    """apiextensions' cellForJSONValue: a typed cell, or None when the type does not fit."""
    if value is None:
        return None
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if column_type == "string":
        return _text(value)
    if column_type == "integer" and is_number:
        return int(value)
    if column_type == "number" and is_number:
        return float(value)
    if column_type == "boolean" and isinstance(value, bool):
        return value
    if column_type == "date" and isinstance(value, str):
        return age(value, now, invalid="<invalid>")
    return None


def _text(value: Any) -> str:
    """How kubectl's JSONPath prints one result: scalars as Go prints them, the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, int):
        return str(value)
    return go_json(value)
