"""The string `format`s a CRD schema may use, checked as kube-openapi's strfmt registry checks them.

Unknown formats pass, as on a real server.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import email.utils
import ipaddress
import re
from collections.abc import Callable
from typing import Any

__all__ = ["matches_format"]

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


def matches_format(text: str, declared: str) -> bool:
    """Whether text is valid for the schema's `format` (`date-time` and `datetime` are one)."""
    check = _FORMAT_CHECKS.get(declared.replace("-", ""))
    try:
        return check is None or check(text)
    except (ValueError, binascii.Error):
        return False
