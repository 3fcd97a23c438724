"""The vocabulary that CRD structural-schema pruning and validation share."""

from __future__ import annotations

from typing import Any

__all__ = [
    "EMBEDDED_RESOURCE",
    "INT_OR_STRING",
    "LIST_MAP_KEYS",
    "LIST_TYPE",
    "PRESERVE_UNKNOWN",
    "TYPE_META_FIELDS",
    "Schema",
]

Schema = dict[str, Any]  # an openAPIV3Schema node

PRESERVE_UNKNOWN = "x-kubernetes-preserve-unknown-fields"
EMBEDDED_RESOURCE = "x-kubernetes-embedded-resource"
INT_OR_STRING = "x-kubernetes-int-or-string"
LIST_TYPE = "x-kubernetes-list-type"
LIST_MAP_KEYS = "x-kubernetes-list-map-keys"
TYPE_META_FIELDS = ("apiVersion", "kind", "metadata")
