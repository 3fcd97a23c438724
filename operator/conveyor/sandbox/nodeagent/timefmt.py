"""Kubernetes timestamps (RFC 3339, second precision, UTC) and random name suffixes."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

__all__ = ["format_time", "parse_time", "random_suffix"]

# The alphabet Kubernetes uses for generated names: no vowels, no look-alike characters.
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def format_time(epoch: float | None = None) -> str:
    """``2026-11-27T04:40:19Z`` for ``epoch`` (default: now)."""
    moment = datetime.fromtimestamp(time.time() if epoch is None else epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> float | None:
    """Epoch seconds of a Kubernetes timestamp; None for a missing or unreadable one."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def random_suffix(length: int = 5) -> str:
    """A generated-name suffix such as ``x7k2b``."""
    return "".join(random.choice(_SUFFIX_ALPHABET) for _ in range(length))
