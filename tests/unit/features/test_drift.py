"""Drift scores: PSI and KS from compact reference payloads, and per-column drift of profiles."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from conveyor.features.drift import ks_statistic, numeric_reference, psi, reference_from_values
from conveyor.features.profile import ProfileBuilder, drift_scores

RNG_SEED = 7


def numbers(values: np.ndarray) -> dict:
    return reference_from_values(pa.array(values), "numeric")


def test_psi_is_near_zero_for_two_samples_of_one_distribution() -> None:
    rng = np.random.default_rng(RNG_SEED)
    before, after = rng.normal(5, 2, 50_000), rng.normal(5, 2, 50_000)

    assert psi(numbers(before), numbers(after)) < 0.01


def test_psi_is_large_for_a_shifted_distribution() -> None:
    rng = np.random.default_rng(RNG_SEED)
    before, after = rng.normal(0, 1, 50_000), rng.normal(1, 1, 50_000)

    assert psi(numbers(before), numbers(after)) > 0.5


def test_psi_of_the_textbook_category_example() -> None:
    reference = {"kind": "categorical", "frequencies": {"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.25}}
    current = {"kind": "categorical", "frequencies": {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4}}

    # sum (c - r) ln(c / r) = 0.15 ln 2.5 + 0.05 ln 1.25 + 0.05 ln 1.2 + 0.15 ln 1.6
    assert psi(reference, current) == pytest.approx(0.228218, abs=1e-6)


def test_psi_bins_numbers_at_the_reference_deciles_and_floors_empty_bins() -> None:
    uniform_0_100 = numeric_reference(np.linspace(0, 100, 101), count=101)
    uniform_0_50 = numeric_reference(np.linspace(0, 50, 101), count=101)

    # Current puts 0.2 in each of the five deciles below 50 and nothing in the five above,
    # where the empty share counts as 1e-4.
    expected = 5 * 0.1 * math.log(2) + 5 * (1e-4 - 0.1) * math.log(1e-4 / 0.1)
    assert psi(uniform_0_100, uniform_0_50) == pytest.approx(expected, rel=1e-9)


def test_psi_counts_a_new_category_as_drift() -> None:
    before = reference_from_values(pa.array(["a"] * 500 + ["b"] * 500), "categorical")
    after = reference_from_values(
        pa.array(["a"] * 500 + ["b"] * 400 + ["new"] * 100), "categorical"
    )

    assert psi(before, after) > 0.5


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (("normal", 0, 1), ("normal", 0, 1)),
        (("normal", 0, 1), ("normal", 0.3, 1)),
        (("normal", 0, 1), ("normal", 0, 2)),
        (("exponential", 1), ("exponential", 1.5)),
        (("integers", 0, 5), ("integers", 1, 6)),
    ],
)
def test_ks_statistic_matches_scipy_on_samples(before: tuple, after: tuple) -> None:
    rng = np.random.default_rng(RNG_SEED)
    sample_before = getattr(rng, before[0])(*before[1:], size=20_000).astype(float)
    sample_after = getattr(rng, after[0])(*after[1:], size=20_000).astype(float)

    expected = stats.ks_2samp(sample_before, sample_after).statistic
    actual = ks_statistic(numbers(sample_before), numbers(sample_after))

    assert actual == pytest.approx(expected, abs=0.02)


def test_ks_statistic_refuses_categories() -> None:
    categories = reference_from_values(pa.array(["a", "b"]), "categorical")

    with pytest.raises(ValueError, match="numeric"):
        ks_statistic(categories, categories)


def test_psi_refuses_to_compare_numbers_with_categories() -> None:
    with pytest.raises(ValueError, match="both must be numeric or both categorical"):
        psi(numbers(np.arange(10.0)), reference_from_values(pa.array(["a"]), "categorical"))


def test_reference_from_values_leaves_out_nulls_and_nan() -> None:
    reference = reference_from_values(pa.array([1.0, None, math.nan, 3.0]), "numeric")
    flags = reference_from_values(pa.array([True, None, False, True]), "boolean")

    assert reference["count"] == 2
    assert reference["quantiles"][0] == 1.0
    assert reference["quantiles"][-1] == 3.0
    assert flags == {
        "kind": "categorical",
        "count": 3,
        "frequencies": {"false": pytest.approx(1 / 3), "true": pytest.approx(2 / 3)},
    }


def test_drift_scores_flag_the_shifted_column_only() -> None:
    rng = np.random.default_rng(RNG_SEED)

    def profile_of(shift: float, colour_weights: list[float]):
        rows = 20_000
        builder = ProfileBuilder(target=None, categorical=["colour"])
        builder.add(
            pa.table(
                {
                    "stable": rng.normal(0, 1, rows),
                    "moving": rng.normal(shift, 1, rows),
                    "colour": rng.choice(["red", "green", "blue"], rows, p=colour_weights),
                    "seen": pa.array(np.arange(rows), pa.timestamp("s")),
                }
            )
        )
        return builder.finish()

    previous = profile_of(0.0, [0.6, 0.3, 0.1])
    current = profile_of(2.0, [0.1, 0.3, 0.6])

    by_psi = drift_scores(previous, current)
    by_ks = drift_scores(previous, current, method="ks")
    only_stable = drift_scores(previous, current, columns=["stable"])

    assert set(by_psi) == {"stable", "moving", "colour"}  # timestamps always move: not scored
    assert by_psi["stable"] < 0.05
    assert by_psi["moving"] > 1.0
    assert by_psi["colour"] > 0.5
    assert by_ks["stable"] < 0.05
    assert by_ks["moving"] == pytest.approx(0.68, abs=0.03)  # 2 * Phi(1) - 1
    assert by_ks["colour"] == pytest.approx(0.5, abs=0.03)  # total variation distance
    assert set(only_stable) == {"stable"}
