"""Mergeable streaming statistics behind data profiles.

Each accumulator takes numpy arrays batch by batch, merges with another over different rows
(partitions of an Indexed Job), and saves to a JSON-friendly state so partitions profiled in
different pods can be combined (no pickle: states are plain JSON, arrays base64 float64).
"""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np

__all__ = ["CoMoments", "GroupedMoments", "Moments", "Reservoir", "decode_floats", "encode_floats"]

GROUP_CAP = 1_000
"""Most categories a correlation ratio is computed over; more gives no correlation."""


# Values near the float limit (a derived feature may reach 1e306) overflow sums of squares: the
# statistic becomes inf (reported as none), which is no reason to warn or fail.
def _overflow_is_inf() -> np.errstate:
    return np.errstate(over="ignore", invalid="ignore")


def encode_floats(values: np.ndarray) -> str:
    return base64.b64encode(np.asarray(values, dtype="<f8").tobytes()).decode("ascii")


def decode_floats(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f8").astype(float)


class Moments:
    """Count, mean, sum of squared deviations, min and max; merged with Chan's formula."""

    __slots__ = ("m2", "max", "mean", "min", "n")

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0
        self.min, self.max = math.inf, -math.inf

    def add(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        part = Moments()
        with _overflow_is_inf():
            part.n, part.mean = int(values.size), float(values.mean())
            part.m2 = float(np.square(values - part.mean).sum())
        part.min, part.max = float(values.min()), float(values.max())
        self.merge(part)

    def merge(self, other: Moments) -> None:
        if other.n == 0:
            return
        n = self.n + other.n
        delta = other.mean - self.mean
        self.mean += delta * other.n / n
        self.m2 += other.m2 + delta * delta * self.n * other.n / n
        self.n = n
        self.min, self.max = min(self.min, other.min), max(self.max, other.max)

    @property
    def std(self) -> float | None:
        """Population standard deviation (ddof=0), as numpy's default."""
        return math.sqrt(self.m2 / self.n) if self.n else None

    def to_state(self) -> list[float] | None:
        return [self.n, self.mean, self.m2, self.min, self.max] if self.n else None

    @classmethod
    def from_state(cls, state: list[float] | None) -> Moments:
        moments = cls()
        if state:
            n, moments.mean, moments.m2, moments.min, moments.max = state
            moments.n = int(n)
        return moments


class CoMoments:
    """Streaming Pearson correlation of x with y over rows where both are present."""

    def __init__(self) -> None:
        self.n, self.mean_x, self.mean_y = 0, 0.0, 0.0
        self.m2_x, self.m2_y, self.c_xy = 0.0, 0.0, 0.0

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        missing = np.isnan(x) | np.isnan(y)
        if missing.any():
            x, y = x[~missing], y[~missing]
        if x.size == 0:
            return
        part = CoMoments()
        part.n = int(x.size)
        with _overflow_is_inf():
            part.mean_x, part.mean_y = float(x.mean()), float(y.mean())
            dx, dy = x - part.mean_x, y - part.mean_y
            # Plain sums, not BLAS dot products: those spin up threads and are slower here.
            part.m2_x, part.m2_y = float((dx * dx).sum()), float((dy * dy).sum())
            part.c_xy = float((dx * dy).sum())
        self.merge(part)

    def merge(self, other: CoMoments) -> None:
        if other.n == 0:
            return
        n = self.n + other.n
        dx, dy = other.mean_x - self.mean_x, other.mean_y - self.mean_y
        weight = self.n * other.n / n
        self.m2_x += other.m2_x + dx * dx * weight
        self.m2_y += other.m2_y + dy * dy * weight
        self.c_xy += other.c_xy + dx * dy * weight
        self.mean_x += dx * other.n / n
        self.mean_y += dy * other.n / n
        self.n = n

    def correlation(self) -> float | None:
        if self.n < 2 or self.m2_x <= 0 or self.m2_y <= 0:
            return None
        r = self.c_xy / math.sqrt(self.m2_x * self.m2_y)
        # Values near the float limit overflow the sums: no correlation rather than a wrong one.
        return max(-1.0, min(1.0, r)) if math.isfinite(r) else None

    def to_state(self) -> list[float]:
        return [self.n, self.mean_x, self.mean_y, self.m2_x, self.m2_y, self.c_xy]

    @classmethod
    def from_state(cls, state: list[float]) -> CoMoments:
        moments = cls()
        n, moments.mean_x, moments.mean_y, moments.m2_x, moments.m2_y, moments.c_xy = state
        moments.n = int(n)
        return moments


class GroupedMoments:
    """Moments of a numeric variable per category: the correlation ratio eta."""

    def __init__(self) -> None:
        self.groups: dict[Any, Moments] = {}
        self.overflowed = False

    def add(self, codes: np.ndarray, labels: list[Any], values: np.ndarray) -> None:
        """Values of rows whose category is ``labels[code]`` (code -1: null, left out)."""
        keep = (codes >= 0) & ~np.isnan(values)
        codes, values = codes[keep], values[keep]
        if codes.size == 0:
            return
        size = len(labels)
        counts = np.bincount(codes, minlength=size)
        with _overflow_is_inf():
            means = np.bincount(codes, weights=values, minlength=size) / np.maximum(counts, 1)
            m2s = np.bincount(codes, weights=np.square(values - means[codes]), minlength=size)
        for code in np.flatnonzero(counts):
            part = Moments()
            part.n, part.mean, part.m2 = int(counts[code]), float(means[code]), float(m2s[code])
            self._group(labels[code]).merge(part)

    def merge(self, other: GroupedMoments) -> None:
        self.overflowed |= other.overflowed
        for label, moments in other.groups.items():
            self._group(label).merge(moments)

    def _group(self, label: Any) -> Moments:
        group = self.groups.get(label)
        if group is None:
            group = self.groups[label] = Moments()
            if len(self.groups) > GROUP_CAP:
                self.overflowed = True
        return group

    def eta(self) -> float | None:
        """sqrt(between-group / total sum of squares): 0 unrelated, 1 fully explained."""
        total = Moments()
        for moments in self.groups.values():
            total.merge(moments)
        if self.overflowed or total.n < 2 or total.m2 <= 0:
            return None
        # d * d, not d ** 2: near the float limit it gives inf where ** raises OverflowError.
        between = sum(
            m.n * (m.mean - total.mean) * (m.mean - total.mean) for m in self.groups.values()
        )
        share = between / total.m2
        return math.sqrt(max(0.0, min(1.0, share))) if math.isfinite(share) else None

    def to_state(self) -> dict[str, Any]:
        return {
            "overflowed": self.overflowed,
            "groups": [[label, m.n, m.mean, m.m2] for label, m in self.groups.items()],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> GroupedMoments:
        grouped = cls()
        grouped.overflowed = bool(state["overflowed"])
        for label, n, mean, m2 in state["groups"]:
            moments = grouped.groups[label] = Moments()
            moments.n, moments.mean, moments.m2 = int(n), mean, m2
        return grouped


class Reservoir:
    """A uniform sample: the values with the smallest random keys (mergeable bottom-k)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.keys = np.empty(0, dtype=float)
        self.values = np.empty(0, dtype=float)
        self._largest: float | None = None  # the largest key kept, once computed

    @property
    def threshold(self) -> float:
        """Only a key below this can enter the sample (infinity while it is not full)."""
        if self.keys.size < self.capacity:
            return math.inf
        if self._largest is None:
            self._largest = float(self.keys.max())
        return self._largest

    def add(self, values: np.ndarray, keys: np.ndarray) -> None:
        if self.keys.size >= self.capacity:
            # Only rows whose key beats the current largest can enter a full sample.
            better = keys < self.threshold
            values, keys = values[better], keys[better]
        if keys.size == 0:
            return
        all_keys = np.concatenate((self.keys, keys))
        all_values = np.concatenate((self.values, values))
        if all_keys.size > self.capacity:
            chosen = np.argpartition(all_keys, self.capacity - 1)[: self.capacity]
            all_keys, all_values = all_keys[chosen], all_values[chosen]
        self.keys, self.values = all_keys, all_values
        self._largest = None

    def merge(self, other: Reservoir) -> None:
        self.add(other.values, other.keys)

    def to_state(self) -> dict[str, str]:
        return {"keys": encode_floats(self.keys), "values": encode_floats(self.values)}

    @classmethod
    def from_state(cls, state: dict[str, str], capacity: int) -> Reservoir:
        reservoir = cls(capacity)
        reservoir.keys = decode_floats(state["keys"])
        reservoir.values = decode_floats(state["values"])
        return reservoir
