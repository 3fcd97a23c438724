"""Live-quality statistics against scipy and scikit-learn on the same data."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, log_loss, mean_absolute_error

from conveyor.features.drift import psi, reference_from_values
from conveyor.features.livestats import (
    MAX_NEW_CATEGORIES,
    OTHER,
    CategoryCounts,
    NumericHistogram,
    categorical_drift,
    classification_metrics,
    numeric_drift,
    regression_metrics,
)

RNG = np.random.default_rng(7)


def test_classification_metrics_match_scikit_learn() -> None:
    truth = RNG.integers(0, 3, 2000).astype(float)
    predicted = np.where(RNG.random(2000) < 0.7, truth, RNG.integers(0, 4, 2000)).astype(float)
    scores = RNG.dirichlet([1, 1, 1], 2000)
    probability = scores[np.arange(2000), truth.astype(int)]

    metrics = classification_metrics(truth, predicted, probability)

    assert metrics["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert metrics["f1"] == pytest.approx(f1_score(truth, predicted, average="macro"))
    assert metrics["log_loss"] == pytest.approx(log_loss(truth, scores, labels=[0, 1, 2]))


def test_log_loss_leaves_out_pairs_without_scores() -> None:
    probability = np.array([0.5, np.nan, 0.25])
    metrics = classification_metrics(np.zeros(3), np.zeros(3), probability)
    assert metrics["log_loss"] == pytest.approx(-(np.log(0.5) + np.log(0.25)) / 2)
    assert "log_loss" not in classification_metrics(np.zeros(2), np.zeros(2), np.full(2, np.nan))


def test_regression_metrics_match_scikit_learn() -> None:
    truth = RNG.normal(size=500)
    predicted = truth + RNG.normal(scale=0.3, size=500)
    metrics = regression_metrics(truth, predicted)
    rmse = np.sqrt(np.mean((truth - predicted) ** 2))
    assert metrics["rmse"] == pytest.approx(rmse)
    assert metrics["mae"] == pytest.approx(mean_absolute_error(truth, predicted))


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
def test_ks_is_within_the_histograms_resolution_of_scipy(shift: float) -> None:
    training = RNG.normal(size=20_000)
    live = RNG.normal(loc=shift, scale=1.2, size=5_000)
    reference = reference_from_values(pa.array(training), "numeric")
    histogram = NumericHistogram.for_reference(reference)
    histogram.add(live[:2000])
    histogram.add(np.concatenate([live[2000:], [np.nan]]))

    drift = numeric_drift(reference, histogram)

    expected = stats.ks_2samp(training, live).statistic
    widest_bin = histogram.at_most.max() / histogram.count
    assert abs(drift["ks"] - expected) <= widest_bin + 0.01
    live_reference = reference_from_values(pa.array(live), "numeric")
    assert drift["psi"] == pytest.approx(psi(reference, live_reference), abs=0.02)


def test_ks_counts_ties_at_a_point_mass_exactly() -> None:
    training = np.concatenate([np.zeros(500), RNG.integers(1, 5, 500)]).astype(float)
    live = np.concatenate([np.zeros(100), RNG.integers(1, 5, 900)]).astype(float)
    reference = reference_from_values(pa.array(training), "numeric")
    histogram = NumericHistogram.for_reference(reference)
    histogram.add(live)
    drift = numeric_drift(reference, histogram)
    assert drift["ks"] == pytest.approx(stats.ks_2samp(training, live).statistic, abs=0.02)


def test_chi_square_matches_scipy_and_reports_cramers_v() -> None:
    reference = {
        "kind": "categorical",
        "count": 1000,
        "frequencies": {"a": 0.5, "b": 0.3, "c": 0.2},
    }
    live = pa.array(["a"] * 300 + ["b"] * 500 + ["c"] * 200 + [None])
    counts = CategoryCounts(frozenset(reference["frequencies"]))
    counts.add(live)

    drift = categorical_drift(reference, counts)

    expected = stats.chisquare([300, 500, 200], [500, 300, 200])
    assert drift["chi2"] == pytest.approx(expected.statistic)
    assert drift["p_value"] == pytest.approx(expected.pvalue)
    assert drift["cramers_v"] == pytest.approx(np.sqrt(expected.statistic / (1000 * 2)))
    assert drift["psi"] == pytest.approx(psi(reference, reference_from_values(live, "categorical")))


def test_same_distribution_has_small_effect_and_unseen_category_a_large_one() -> None:
    reference = {"kind": "categorical", "count": 1000, "frequencies": {"a": 0.5, "b": 0.5}}
    same = CategoryCounts(frozenset({"a", "b"}))
    same.add(pa.array(["a", "b"] * 500))
    assert categorical_drift(reference, same)["cramers_v"] == pytest.approx(0.0)
    unseen = CategoryCounts(frozenset({"a", "b"}))
    unseen.add(pa.array(["a", "b", "z"] * 300))
    drift = categorical_drift(reference, unseen)
    assert drift["cramers_v"] == 1.0 and np.isfinite(drift["chi2"])


def test_booleans_count_as_the_profile_keys_them() -> None:
    counts = CategoryCounts(frozenset({"true", "false"}))
    counts.add(pa.array([True, False, True, None]))
    assert counts.counts == {"true": 2, "false": 1}


def test_new_categories_are_bounded() -> None:
    counts = CategoryCounts(frozenset({"a"}))
    counts.add(pa.array([f"c{i}" for i in range(MAX_NEW_CATEGORIES + 50)] + ["a"]))
    assert len(counts.counts) == MAX_NEW_CATEGORIES + 2  # the reference's, the new, OTHER
    assert counts.counts[OTHER] == 50 and counts.count == MAX_NEW_CATEGORIES + 51
