"""Ages as kubectl shows them: RFC 3339 timestamps and apimachinery's `duration.HumanDuration`."""

from __future__ import annotations

import datetime
import re
from typing import Any

__all__ = ["AGE_DESCRIPTION", "age", "human_duration", "parse_time"]

AGE_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. "
    "It is not guaranteed to be set in happens-before order across separate operations. Clients "
    "may not set this value. It is represented in RFC3339 form and is in UTC."
)

_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def parse_time(text: str) -> datetime.datetime | None:
    """An RFC 3339 timestamp (as Go's time.RFC3339 parses it), or None when text is not one."""
    match = _RFC3339.match(text)
    if not match:
        return None
    zone = "+00:00" if match[4] in "Zz" else match[4]
    try:
        return datetime.datetime.fromisoformat(f"{match[1]}T{match[2]}{(match[3] or '')[:7]}{zone}")
    except ValueError:
        return None


def age(timestamp: Any, now: datetime.datetime, invalid: str = "<unknown>") -> str:
    """The age of a timestamp at now; `<unknown>` when absent, invalid when unparseable."""
    if not timestamp or timestamp == "null":
        return "<unknown>"
    moment = parse_time(timestamp) if isinstance(timestamp, str) else None
    return invalid if moment is None else human_duration(now - moment)


def human_duration(delta: datetime.timedelta) -> str:
    """apimachinery's duration.HumanDuration, the AGE kubectl shows: 45s, 5m3s, 42m, 3h12m, 2d."""
    seconds = int(delta.total_seconds())
    if seconds < -1:
        return "<invalid>"  # clock skew beyond a second
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes, hours = seconds // 60, seconds // 3600
    days, years = hours // 24, hours // (24 * 365)
    steps: list[tuple[bool, str, int, str]] = [
        (minutes < 10, f"{minutes}m", seconds % 60, "s"),
        (minutes < 180, f"{minutes}m", 0, ""),
        (hours < 8, f"{hours}h", minutes % 60, "m"),
        (hours < 48, f"{hours}h", 0, ""),
        (hours < 24 * 8, f"{days}d", hours % 24, "h"),
        (hours < 24 * 365 * 2, f"{days}d", 0, ""),
        (hours < 24 * 365 * 8, f"{years}y", days % 365, "d"),
    ]
    for applies, whole, remainder, unit in steps:
        if applies:
            return f"{whole}{remainder}{unit}" if remainder else whole
    return f"{years}y"
