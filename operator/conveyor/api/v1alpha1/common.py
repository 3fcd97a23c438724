"""Types shared by the four kinds: the model base, conditions, references, resources.

Every field is documented with an attribute docstring; the CRD generator turns those into the
schema descriptions that `kubectl explain` shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr
from pydantic.alias_generators import to_camel

__all__ = [
    "AGE_COLUMN",
    "API_VERSION",
    "COLUMN_PATTERN",
    "GROUP",
    "NAME_PATTERN",
    "READY_COLUMN",
    "REASON_COLUMN",
    "VERSION",
    "ApiModel",
    "Condition",
    "ConditionStatus",
    "CustomResource",
    "PrinterColumn",
    "ResourceRequirements",
    "Rule",
    "validation_rules",
]

GROUP = "conveyor.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# RFC 1123 subdomain-ish names for references to other objects.
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Feature column names must be usable as identifiers in the expression language.
COLUMN_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

ConditionStatus = Literal["True", "False", "Unknown"]
FieldErrorReason = Literal[
    "FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"
]
VALIDATIONS = "x-kubernetes-validations"


@dataclass(frozen=True)
class Rule:
    """A CEL validation rule of the CRD schema (`x-kubernetes-validations`): the API server
    refuses an object for which `rule` is not true, with `message` (or the result of
    `message_expression`) at the node or at its `field_path`. A rule that mentions `oldSelf`
    compares an update with the stored object."""

    rule: str
    message: str = ""
    message_expression: str = ""
    reason: FieldErrorReason | None = None
    field_path: str = ""

    def to_schema(self) -> dict[str, str]:
        entry = {
            "rule": self.rule,
            "message": self.message,
            "messageExpression": self.message_expression,
            "reason": self.reason or "",
            "fieldPath": self.field_path,
        }
        return {key: value for key, value in entry.items() if value}


def validation_rules(*rules: Rule) -> dict[str, Any]:
    """The `json_schema_extra` that declares these rules on a field or a model."""
    return {VALIDATIONS: [rule.to_schema() for rule in rules]}


class ApiModel(BaseModel):
    """Base of every API type: camelCase on the wire, snake_case in Python.

    Unknown fields are ignored when parsing so that an older operator reads a newer object; the
    API server (and the sandbox) prunes them anyway.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        extra="ignore",
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict a Kubernetes API server expects (camelCase, no nulls)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Condition(ApiModel):
    """The latest observation of one aspect of the object's state (Kubernetes API conventions)."""

    type: str = Field(pattern=r"^[A-Z][A-Za-z0-9]*$", max_length=316)
    """Type of condition in CamelCase: Ready, Progressing, Degraded, ..."""
    status: ConditionStatus
    """Status of the condition: True, False or Unknown."""
    reason: str = Field(default="", max_length=1024)
    """A CamelCase, machine-readable reason for the last transition."""
    message: str = Field(default="", max_length=32768)
    """A human-readable message with details of the transition: what to fix, when it is bad."""
    last_transition_time: datetime | None = None
    """When the condition last changed from one status to another."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The metadata.generation the condition was set for."""


class ResourceRequirements(ApiModel):
    """Compute resources of a container, as in a Pod spec (for example cpu: 500m, memory: 1Gi)."""

    requests: dict[str, str] | None = None
    """Minimum resources the container is scheduled with."""
    limits: dict[str, str] | None = None
    """Maximum resources the container may use; exceeding the memory limit kills it (OOMKilled)."""


class PrinterColumn(ApiModel):
    """An additionalPrinterColumn: what `kubectl get` shows for a kind."""

    name: str
    type: Literal["string", "integer", "number", "boolean", "date"]
    json_path: str
    description: str = ""
    priority: int = 0

    def to_crd(self) -> dict[str, Any]:
        column: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            column["description"] = self.description
        if self.priority:
            column["priority"] = self.priority
        return column


READY_COLUMN = PrinterColumn(
    name="Ready", type="string", json_path='.status.conditions[?(@.type=="Ready")].status'
)
REASON_COLUMN = PrinterColumn(
    name="Reason",
    type="string",
    json_path='.status.conditions[?(@.type=="Ready")].reason',
    priority=1,
)
AGE_COLUMN = PrinterColumn(name="Age", type="date", json_path=".metadata.creationTimestamp")


class CustomResource(ApiModel):
    """A whole object of one of the kinds: apiVersion, kind, metadata, spec, status.

    Subclasses declare the CRD facts the generator needs as class variables.
    """

    kind_name: ClassVar[str]
    plural: ClassVar[str]
    singular: ClassVar[str]
    short_names: ClassVar[tuple[str, ...]]
    printer_columns: ClassVar[tuple[PrinterColumn, ...]]
    description: ClassVar[str]

    api_version: str = API_VERSION
    kind: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    _body: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def body(self) -> Mapping[str, Any]:
        """The object as it was read (after the API server's defaulting), for what must hash
        the user's own words rather than this model's rendering of them."""
        return self._body

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", ""))

    @property
    def generation(self) -> int:
        return int(self.metadata.get("generation") or 0)

    @classmethod
    def from_body(cls, body: Any) -> Any:
        """Parse a kopf body or a plain dict of this kind."""
        parsed = cls.model_validate(dict(body))
        parsed._body = dict(body)
        return parsed
