"""How a compared value reads: 4 decimals for metrics, µs or ms for latency, KiB or MiB for sizes,
and a holdout by its fingerprint and settings — the same in the text table and the HTML report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["MISSING", "describe_holdout", "format_value"]

MISSING = "—"


class _Kind(Protocol):
    @property
    def kind(self) -> str: ...


def describe_holdout(fingerprint: str, holdout: Mapping[str, Any]) -> str:
    """`holdout <fingerprint> (strategy ..., test_size ..., seed ..., rows ...)`."""
    details = [
        f"{key} {holdout[key]}"
        for key in ("strategy", "test_size", "seed", "rows")
        if holdout.get(key) is not None
    ]
    return f"holdout {fingerprint}" + (f" ({', '.join(details)})" if details else "")


def format_value(column: _Kind, value: Any) -> str:
    """A value as a person reads it: 4 decimals for metrics, ms (µs) for latency, KiB/MiB for
    sizes; MISSING for None."""
    if value is None:
        return MISSING
    if column.kind == "text":
        return str(value)
    number = float(value)
    if column.kind in ("metric", "baseline", "live"):
        return f"{number:.4f}" if abs(number) < 1000 else f"{number:,.1f}"
    if column.kind == "seconds":
        return _seconds(number)
    if column.kind == "latency":
        return _latency(number)
    if column.kind == "bytes":
        return _size(number)
    return f"{number:.0f}"


def _seconds(seconds: float) -> str:
    if seconds < 1:
        return _latency(seconds)
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 600:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _latency(seconds: float) -> str:
    milliseconds = seconds * 1000
    if milliseconds < 0.1:  # an ONNX model answers one row in microseconds
        return f"{milliseconds * 1000:.1f} µs"
    if milliseconds < 10:
        return f"{milliseconds:.2f} ms"
    if milliseconds < 1000:
        return f"{milliseconds:.1f} ms"
    return f"{seconds:.2f} s"


def _size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
