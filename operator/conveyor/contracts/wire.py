"""The base of every document on the wire: parsed strictly where it matters, read leniently.

Field names are the JSON keys as both sides spell them; unknown keys are ignored, so an older
operator reads what a newer program wrote. A document that lacks a required key, or holds a
value of the wrong type, does not parse: `WireError` names the document and the keys.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["WireError", "WireModel"]


class WireError(ValueError):
    """A document does not have the shape its contract says."""


class WireModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    @classmethod
    def from_json(cls, data: Any, *, source: str = "") -> Self:
        """Parse a decoded JSON document; `source` (a URI) goes into the error."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in item['loc']) or '(document)'}: {item['msg']}"
                for item in error.errors()
            )
            where = f" {source}" if source else ""
            raise WireError(f"{cls.__name__}{where} is malformed: {problems}") from error

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready dict, keys spelled as on the wire."""
        return self.model_dump(mode="json", by_alias=True)
