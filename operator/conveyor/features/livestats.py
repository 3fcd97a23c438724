"""The statistics of live model quality, over fixed-size summaries instead of raw rows.

Drift compares the logged raw inputs of one served version with the drift `reference` its
model card keeps per column (`drift.py`'s payloads):

- numeric: a histogram on the reference's own percentile edges (at most 101 edges, 102 bins,
  plus the count of values equal to each edge, so ties are exact). PSI reads the live shares
  of the reference's decile bins off it exactly; the Kolmogorov-Smirnov statistic compares the
  two distribution functions at every edge, on both sides of each, so it is within one bin's
  live share of the statistic ``scipy.stats.ks_2samp`` gives on the raw data.
- categorical (and boolean, text): counts per category (``drift.category_key``), with at most
  ``MAX_NEW_CATEGORIES`` categories the reference never saw; more pool into ``OTHER``. PSI,
  the chi-square goodness-of-fit statistic against the reference shares (scipy), its p-value,
  and Cramér's V, the effect size: sqrt(chi2 / (n (k - 1))), capped at 1. A category the
  reference never saw is expected at 0.5 / reference count (it had no sample there), so the
  statistic stays finite and large.

Live metrics score predictions against feedback labels: accuracy, macro F1 and log loss for
classifiers (labels as category codes), RMSE and MAE for regressors; numpy over the pairs,
the same figures scikit-learn gives.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats

from .drift import EPSILON, reference_cdf

__all__ = [
    "MAX_NEW_CATEGORIES",
    "OTHER",
    "CategoryCounts",
    "NumericHistogram",
    "categorical_drift",
    "classification_metrics",
    "numeric_drift",
    "regression_metrics",
]

MAX_NEW_CATEGORIES = 100
"""Categories the reference never saw that are counted apart, per column; more pool."""
OTHER = "(other)"
"""Where categories beyond MAX_NEW_CATEGORIES are counted."""
_DECILES = slice(10, 100, 10)
_LOG_LOSS_EPS = float(np.finfo(np.float64).eps)  # scikit-learn's clip for float64


@dataclass
class NumericHistogram:
    """Counts of one numeric column on the reference's percentile edges."""

    edges: np.ndarray
    """The distinct reference percentiles, ascending."""
    at_most: np.ndarray = field(init=False)
    """at_most[i]: values in (edges[i-1], edges[i]]; the last bin is above every edge."""
    equal: np.ndarray = field(init=False)
    """equal[i]: values equal to edges[i] (so P(X < edge) is exact too)."""

    def __post_init__(self) -> None:
        self.at_most = np.zeros(len(self.edges) + 1, dtype=np.int64)
        self.equal = np.zeros(len(self.edges), dtype=np.int64)

    @classmethod
    def for_reference(cls, reference: Mapping[str, Any]) -> NumericHistogram:
        return cls(np.unique(np.asarray(reference["quantiles"], dtype=float)))

    def add(self, values: np.ndarray) -> None:
        """Count the values; NaN (a missing value) is left out, as profiles do."""
        values = values[~np.isnan(values)]
        if not values.size:
            return
        index = np.searchsorted(self.edges, values, side="left")
        self.at_most += np.bincount(index, minlength=len(self.at_most))
        inside = index < len(self.edges)
        hits = index[inside][self.edges[index[inside]] == values[inside]]
        self.equal += np.bincount(hits, minlength=len(self.equal))

    def merge(self, other: NumericHistogram) -> None:
        self.at_most += other.at_most
        self.equal += other.equal

    @property
    def count(self) -> int:
        return int(self.at_most.sum())


@dataclass
class CategoryCounts:
    """Counts of one categorical column, keyed as the reference keys its shares."""

    known: frozenset[str]
    """The reference's categories: always counted apart."""
    counts: dict[str, int] = field(default_factory=dict)
    new: int = 0
    """How many categories the reference never saw are counted apart."""

    def add(self, values: pa.Array | pa.ChunkedArray) -> None:
        """Count the values (any Arrow type; nulls are left out)."""
        if not pa.types.is_string(values.type):
            values = pc.cast(values, pa.string())
        for item in pc.value_counts(values.drop_null()).to_pylist():
            self._add(str(item["values"]), int(item["counts"]))

    def merge(self, other: CategoryCounts) -> None:
        for category, count in other.counts.items():
            self._add(category, count)

    def _add(self, category: str, count: int) -> None:
        if category not in self.counts and category not in self.known:
            if self.new >= MAX_NEW_CATEGORIES:
                category = OTHER
            else:
                self.new += 1
        self.counts[category] = self.counts.get(category, 0) + count

    @property
    def count(self) -> int:
        return sum(self.counts.values())


def numeric_drift(reference: Mapping[str, Any], live: NumericHistogram) -> dict[str, float]:
    """PSI on the reference's decile bins and the KS statistic of the live values."""
    n = live.count
    if n == 0:
        return {}
    edges = live.edges
    below_or_at = np.cumsum(live.at_most)[:-1] / n  # live P(X <= edge)
    below = below_or_at - live.equal / n  # live P(X < edge)
    ks = max(
        float(np.abs(below_or_at - reference_cdf(reference, edges, "right")).max()),
        float(np.abs(below - reference_cdf(reference, edges, "left")).max()),
    )
    # PSI bins at the reference deciles, as drift.psi does; each decile is one of the edges.
    deciles = np.unique(np.asarray(reference["quantiles"], dtype=float)[_DECILES])
    at = np.searchsorted(edges, deciles)
    live_shares = np.diff(np.concatenate(([0.0], below_or_at[at], [1.0])))
    reference_shares = np.diff(
        np.concatenate(([0.0], reference_cdf(reference, deciles, "right"), [1.0]))
    )
    return {"psi": _psi(reference_shares, live_shares), "ks": ks}


def categorical_drift(reference: Mapping[str, Any], live: CategoryCounts) -> dict[str, float]:
    """PSI, chi-square against the reference shares with its p-value, and Cramér's V."""
    n = live.count
    if n == 0:
        return {}
    shares: Mapping[str, float] = reference["frequencies"]
    categories = sorted(set(shares) | {c for c, k in live.counts.items() if k})
    observed = np.array([live.counts.get(c, 0) for c in categories], dtype=float)
    reference_shares = np.array([shares.get(c, 0.0) for c in categories], dtype=float)
    result = {"psi": _psi(reference_shares, observed / n)}
    unseen = 0.5 / max(float(reference.get("count") or 0), 1.0)
    expected = np.where(reference_shares > 0, reference_shares, unseen)
    expected = expected / expected.sum() * n
    if len(categories) < 2:
        return {**result, "chi2": 0.0, "p_value": 1.0, "cramers_v": 0.0}
    chi2, p_value = stats.chisquare(observed, expected)
    cramers_v = min(math.sqrt(float(chi2) / (n * (len(categories) - 1))), 1.0)
    return {**result, "chi2": float(chi2), "p_value": float(p_value), "cramers_v": cramers_v}


def _psi(reference: np.ndarray, current: np.ndarray) -> float:
    reference = np.maximum(reference, EPSILON)
    current = np.maximum(current, EPSILON)
    return float(((current - reference) * np.log(current / reference)).sum())


def classification_metrics(
    truth: np.ndarray, predicted: np.ndarray, probability: np.ndarray
) -> dict[str, float]:
    """Accuracy, macro F1 (over the labels seen in either), and log loss over the pairs with
    scores (`probability`: what the model gave the true label, NaN without scores)."""
    if not truth.size:
        return {}
    labels, codes = np.unique(np.concatenate([truth, predicted]), return_inverse=True)
    true_codes, predicted_codes = codes[: truth.size], codes[truth.size :]
    hit = true_codes == predicted_codes
    k = len(labels)
    tp = np.bincount(true_codes[hit], minlength=k)
    fp = np.bincount(predicted_codes, minlength=k) - tp
    fn = np.bincount(true_codes, minlength=k) - tp
    denominator = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros(k), where=denominator > 0)
    metrics = {"accuracy": float(hit.mean()), "f1": float(f1.mean())}
    scored = probability[~np.isnan(probability)]
    if scored.size:
        clipped = np.clip(scored, _LOG_LOSS_EPS, 1 - _LOG_LOSS_EPS)
        metrics["log_loss"] = float(-np.log(clipped).mean())
    return metrics


def regression_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """RMSE and MAE over the pairs where both are numbers."""
    present = ~(np.isnan(truth) | np.isnan(predicted))
    errors = truth[present] - predicted[present]
    if not errors.size:
        return {}
    return {"rmse": float(np.sqrt(np.mean(errors**2))), "mae": float(np.mean(np.abs(errors)))}
