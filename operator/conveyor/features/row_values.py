"""Values in a row as pyarrow computes them: the casts, bounds and C floating-point functions
the row path (expression_rows.py, rowpath.py) shares, and the two signals it gives its caller.

A row holds Python values: float for float64, int for any integer type, bool, str, and an aware
UTC datetime for timestamp[us, UTC]; None is null.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa

__all__ = [
    "FLOAT_EXACT",
    "OffRowPath",
    "Row",
    "RowFunction",
    "RowUnsupported",
    "arrow_round",
    "c_ceil",
    "c_exp",
    "c_floor",
    "c_pow",
    "checked_int",
    "converted",
    "exact_float",
    "fitted_float",
    "float_key",
    "float_max",
    "float_min",
    "float_to_int64",
    "integer_bounds",
    "kind",
    "promote",
    "to_float",
]

Row: TypeAlias = dict[str, Any]
RowFunction: TypeAlias = Callable[[Row], Any]

FLOAT_EXACT = 2**53
"""pyarrow casts an integer to float64 only when it is exact: |x| <= 2**53."""


class OffRowPath(Exception):
    """This request must be answered by the batch path: the row path cannot promise pyarrow's
    exact result (or error) for one of its values."""


class RowUnsupported(Exception):
    """The step cannot be compiled for rows; its plan always takes the batch path."""


def kind(value_type: pa.DataType) -> str:
    """The Python representation of an arrow type's values in a row."""
    if pa.types.is_integer(value_type):
        return "int"
    if pa.types.is_floating(value_type):
        return "float"
    if pa.types.is_boolean(value_type):
        return "bool"
    if pa.types.is_string(value_type):
        return "str"
    if pa.types.is_timestamp(value_type):
        return "timestamp"
    if pa.types.is_null(value_type):
        return "null"
    return str(value_type)


def exact_float(value: int | None) -> float | None:
    if value is None:
        return None
    if -FLOAT_EXACT <= value <= FLOAT_EXACT:
        return float(value)
    raise OffRowPath


def fitted_float(value: Any) -> float | None:
    """A fitted parameter as the batch path reads it: a Python scalar cast to float64."""
    return pa.scalar(value).cast(pa.float64()).as_py()


def _bool_float(value: bool | None) -> float | None:
    return None if value is None else (1.0 if value else 0.0)


def to_float(source: str) -> Callable[[Any], Any] | None:
    """pc.cast(x, float64) for a value of kind `source` (None: as is); text is refused, its
    parse being pyarrow's."""
    if source in ("float", "null"):
        return None
    if source == "int":
        return exact_float
    if source == "bool":
        return _bool_float
    raise RowUnsupported(f"a cast of {source} to float")


def promote(source: str, target: str) -> Callable[[Any], Any] | None:
    """The implicit cast pyarrow makes to a common type (None: as is)."""
    if source == target or source == "null":
        return None
    if source == "int" and target == "float":
        return exact_float
    raise RowUnsupported(f"an implicit cast of {source} to {target}")


def converted(run: RowFunction, convert: Callable[[Any], Any] | None) -> RowFunction:
    if convert is None:
        return run
    return lambda row: convert(run(row))


def integer_bounds(value_type: pa.DataType) -> tuple[int, int]:
    bits = value_type.bit_width
    if pa.types.is_signed_integer(value_type):
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def checked_int(value: int, low: int, high: int) -> int:
    if low <= value <= high:
        return value
    raise OffRowPath  # pyarrow raises "overflow"


def float_to_int64(value: float) -> int:
    """pc.cast(float64 -> int64) of a whole number; pyarrow refuses one out of range."""
    if -(2**63) <= value < 2**63:
        return int(value)
    raise OffRowPath


# --- C's floating-point functions, as pyarrow calls them --------------------------------------


def c_floor(x: float) -> float:
    """std::floor: inf and nan as they are, -0.0 stays -0.0."""
    if not math.isfinite(x) or x == 0.0:
        return x
    return float(math.floor(x))


def c_ceil(x: float) -> float:
    """std::ceil: and ceil(-0.5) is -0.0."""
    if not math.isfinite(x) or x == 0.0:
        return x
    return math.copysign(float(math.ceil(x)), x)


def c_round(x: float) -> float:
    """std::round: half away from zero, keeping the sign of zero."""
    if not math.isfinite(x):
        return x
    magnitude = abs(x)
    whole = float(math.floor(magnitude))
    if magnitude - whole >= 0.5:
        whole += 1.0
    return math.copysign(whole, x)


def c_pow(x: float, y: float) -> float:
    try:
        return math.pow(x, y)
    except (OverflowError, ValueError):  # C gives inf or nan where Python raises
        with np.errstate(all="ignore"):
            return float(np.power(np.float64(x), np.float64(y)))


def c_exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


# pyarrow's table of powers of ten for round() holds float32 literals (1e11 is not exact).
_POW10 = [float(np.float32(10.0**exponent)) for exponent in range(16)]


def _pow10(digits: int) -> float:
    power = abs(digits)
    value = _POW10[min(power, 15)]
    for _ in range(15, power):
        value *= 10.0
    return value


def arrow_round(x: float, digits: int) -> float:
    """pc.round(x, digits, round_mode="half_to_even") on one float64."""
    if not math.isfinite(x):
        return x
    pow10 = _pow10(digits)
    scaled = x * pow10 if digits >= 0 else x / pow10
    if not math.isfinite(scaled):
        raise OffRowPath  # pyarrow: "overflow occurred during rounding"
    fraction = scaled - c_floor(scaled)
    if fraction == 0.0:
        return x
    scaled = c_round(scaled) if fraction != 0.5 else c_round(scaled * 0.5) * 2
    result = scaled / pow10 if digits > 0 else scaled * pow10
    if not math.isfinite(result):
        raise OffRowPath
    return result


def float_min(a: float, b: float) -> float:
    """min_element_wise on floats: a number wins over NaN."""
    if a != a:
        return b
    if b != b:
        return a
    if a == b:
        if a == 0.0 and math.copysign(1.0, a) != math.copysign(1.0, b):
            raise OffRowPath  # which zero pyarrow returns depends on scalar or array operands
        return a
    return a if a < b else b


def float_max(a: float, b: float) -> float:
    if a != a:
        return b
    if b != b:
        return a
    if a == b:
        if a == 0.0 and math.copysign(1.0, a) != math.copysign(1.0, b):
            raise OffRowPath
        return a
    return a if a > b else b


def float_key(value: float) -> str:
    """is_in on floats compares bits: -0.0 is not 0.0, and NaN is found."""
    return "nan" if value != value else value.hex()
