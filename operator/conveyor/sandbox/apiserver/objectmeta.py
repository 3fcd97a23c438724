"""Server-owned metadata: names, uid, timestamps, generation."""

from __future__ import annotations

import datetime
import random
import re
import uuid
from typing import Any

from conveyor.sandbox.apiserver.resources import ResourceType

__all__ = [
    "generate_name",
    "name_errors",
    "new_uid",
    "now_timestamp",
    "spec_changed",
]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# The alphabet of generated name suffixes on a real server: no vowels, no look-alike digits.
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def new_uid() -> str:
    return str(uuid.uuid4())


def now_timestamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def generate_name(prefix: str) -> str:
    return prefix + "".join(random.choices(_SUFFIX_ALPHABET, k=5))


def name_errors(resource_type: ResourceType, name: str) -> list[str]:
    """The real server's wording for names that are not valid for this resource."""
    if resource_type.plural == "namespaces":
        pattern, limit, what, example = _DNS1123_LABEL, 63, "RFC 1123 label", "my-name"
    elif resource_type.plural == "services":
        pattern, limit, what, example = _DNS1035_LABEL, 63, "DNS-1035 label", "my-name"
    else:
        pattern, limit, what, example = _DNS1123_SUBDOMAIN, 253, "RFC 1123 subdomain", "example.com"
    errors = []
    if len(name) > limit:
        errors.append(f"must be no more than {limit} characters")
    if not pattern.match(name):
        errors.append(
            f"a lowercase {what} must consist of lower case alphanumeric characters, '-' or '.',"
            f" and must start and end with an alphanumeric character (e.g. '{example}')"
            if what != "DNS-1035 label"
            else f"a {what} must consist of lower case alphanumeric characters or '-', start"
            f" with an alphabetic character, and end with an alphanumeric character"
            f" (e.g. '{example}')"
        )
    return errors


def spec_changed(old: dict[str, Any], new: dict[str, Any], resource_type: ResourceType) -> bool:
    """Whether anything outside metadata (and status, if it is a subresource) changed."""
    ignored = {"metadata", "status"} if resource_type.has_status else {"metadata"}
    ignored |= {"apiVersion", "kind"}
    old_rest = {key: value for key, value in old.items() if key not in ignored}
    new_rest = {key: value for key, value in new.items() if key not in ignored}
    return old_rest != new_rest
