"""Splits: deterministic, stratified when possible, newest rows held out by time."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.model_selection import KFold, StratifiedKFold

from conveyor.training.splits import (
    cv_splitter,
    holdout_fingerprint,
    holdout_split,
    row_identities,
    split_rows,
    time_split,
)


def _keys(rows: int) -> list[bytes]:
    return row_identities(list(range(1, rows + 1)), np.zeros((rows, 1)), np.zeros(rows))


def test_holdout_is_deterministic_and_covers_every_row_once() -> None:
    _, y = load_iris(return_X_y=True)
    keys = _keys(150)
    first = holdout_split(y, keys, test_size=0.25, seed=42, stratify=True, task="classification")
    again = holdout_split(y, keys, test_size=0.25, seed=42, stratify=True, task="classification")
    other = holdout_split(y, keys, test_size=0.25, seed=7, stratify=True, task="classification")
    train, test = first
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(test, other[1])
    assert len(test) == 38 and len(train) == 112
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(150))
    assert np.all(np.diff(test) > 0), "indices come sorted, in the snapshot's order"


def test_the_holdout_follows_the_rows_not_their_positions() -> None:
    """Two pipelines reading the same rows in another order hold out the same rows."""
    X, y = load_iris(return_X_y=True)
    ids = np.arange(1000, 1150)
    shuffled = np.random.default_rng(3).permutation(150)
    _, test = holdout_split(
        y,
        row_identities(ids.tolist(), X, y),
        test_size=0.25,
        seed=42,
        stratify=True,
        task="classification",
    )
    moved = row_identities(ids[shuffled].tolist(), X[shuffled], y[shuffled])
    _, test_moved = holdout_split(
        y[shuffled], moved, test_size=0.25, seed=42, stratify=True, task="classification"
    )
    assert sorted(ids[test].tolist()) == sorted(ids[shuffled][test_moved].tolist())
    assert holdout_fingerprint("s1", row_identities(ids.tolist(), X, y), test) == (
        holdout_fingerprint("s1", moved, test_moved)
    )


def test_without_an_entity_key_the_row_values_identify_it() -> None:
    X, y = load_iris(return_X_y=True)
    shuffled = np.random.default_rng(5).permutation(150)
    _, test = holdout_split(
        y, row_identities(None, X, y), test_size=0.2, seed=1, stratify=False, task="classification"
    )
    _, moved = holdout_split(
        y[shuffled],
        row_identities(None, X[shuffled], y[shuffled]),
        test_size=0.2,
        seed=1,
        stratify=False,
        task="classification",
    )
    rows = {tuple(row) for row in X[test]}
    assert rows == {tuple(row) for row in X[shuffled][moved]}


def test_the_fingerprint_names_the_rows_and_the_snapshot() -> None:
    keys = _keys(20)
    y = np.arange(20) % 2
    _, test = holdout_split(y, keys, test_size=0.25, seed=0, stratify=True, task="classification")
    _, other = holdout_split(y, keys, test_size=0.25, seed=9, stratify=True, task="classification")
    fingerprint = holdout_fingerprint("snap-a", keys, test)
    assert len(fingerprint) == 16
    assert fingerprint != holdout_fingerprint("snap-a", keys, other)
    assert fingerprint != holdout_fingerprint("snap-b", keys, test)


def test_stratified_holdout_keeps_class_proportions() -> None:
    y = np.array([0] * 80 + [1] * 20)
    _, test = holdout_split(
        y, _keys(100), test_size=0.2, seed=1, stratify=True, task="classification"
    )
    assert np.bincount(y[test]).tolist() == [16, 4]


def test_stratified_quotas_add_up_and_leave_each_class_on_both_sides() -> None:
    y = np.array([0] * 2 + [1] * 3 + [2] * 45)
    train, test = holdout_split(
        y, _keys(50), test_size=0.1, seed=4, stratify=True, task="classification"
    )
    assert len(test) == 5
    assert set(y[test].tolist()) == {0, 1, 2} and set(y[train].tolist()) == {0, 1, 2}


def test_a_class_with_one_row_falls_back_to_a_plain_split() -> None:
    y = np.array([0] * 10 + [1] * 10 + [2])
    train, test = holdout_split(
        y, _keys(21), test_size=0.2, seed=1, stratify=True, task="classification"
    )
    assert len(train) + len(test) == 21 and len(test) == 5


def test_regression_is_never_stratified() -> None:
    y = np.linspace(0, 1, 50)
    train, test = holdout_split(
        y, _keys(50), test_size=0.2, seed=3, stratify=True, task="regression"
    )
    assert len(test) == 10 and len(train) == 40


def test_too_few_rows_name_the_setting() -> None:
    with pytest.raises(ValueError, match=r"spec\.split\.testSize"):
        holdout_split(
            np.array([1]), _keys(1), test_size=0.2, seed=0, stratify=False, task="regression"
        )


def test_time_split_holds_out_the_newest_rows() -> None:
    times = np.arange("2024-01-01", "2024-01-11", dtype="datetime64[D]")[::-1]  # newest first
    train, test = time_split(times, test_size=0.3)
    assert test.tolist() == [0, 1, 2]
    assert train.tolist() == list(range(3, 10))
    assert times[test].min() > times[train].max()


def test_time_split_keeps_ties_together_in_training() -> None:
    days = [5, 1, 2, 3, 4, 5, 5, 1, 2, 3]
    times = np.array([f"2024-01-0{day}" for day in days], dtype="datetime64[D]")
    train, test = time_split(times, test_size=0.4)
    # The 4th-newest row is the only "day 4"; the three "day 5" rows are newer.
    assert test.tolist() == [0, 4, 5, 6]
    train, test = time_split(times, test_size=0.3)
    assert test.tolist() == [0, 5, 6]
    assert set(times[train].tolist()).isdisjoint(times[test].tolist())


def test_rows_without_an_event_time_train() -> None:
    times = np.array([np.nan, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    train, test = time_split(times, test_size=0.2)
    assert test.tolist() == [8, 9] and 0 in train


def test_an_empty_time_holdout_is_refused() -> None:
    with pytest.raises(ValueError, match=r"spec\.split\.strategy is time.*share one event time"):
        time_split(np.ones(10), test_size=0.2)


def test_split_rows_dispatches_by_strategy() -> None:
    y = np.arange(20) % 2
    times = np.arange(20.0)
    keys = _keys(20)
    _, test = split_rows(
        "time", y, times, keys, test_size=0.25, seed=0, stratify=True, task="classification"
    )
    assert test.tolist() == [15, 16, 17, 18, 19]
    holdout = split_rows("holdout", y, None, keys, test_size=0.25, seed=0, stratify=True, task="x")
    kfold = split_rows("kfold", y, None, keys, test_size=0.25, seed=0, stratify=True, task="x")
    assert np.array_equal(holdout[1], kfold[1])
    with pytest.raises(
        ValueError, match=r"spec\.split\.strategy is time but the FeatureSet has no"
    ):
        split_rows(
            "time", y, None, keys, test_size=0.25, seed=0, stratify=True, task="classification"
        )


def test_cv_splitter_is_seeded_and_stratified_for_classification() -> None:
    _, y = load_iris(return_X_y=True)
    splitter = cv_splitter(folds=5, seed=4, task="classification", stratify=True, y=y)
    assert isinstance(splitter, StratifiedKFold)
    folds = [test.tolist() for _, test in splitter.split(np.zeros(len(y)), y)]
    again = cv_splitter(folds=5, seed=4, task="classification", stratify=True)
    assert folds == [test.tolist() for _, test in again.split(np.zeros(len(y)), y)]
    assert all(np.bincount(y[test]).tolist() == [10, 10, 10] for test in folds)
    regression = cv_splitter(folds=3, seed=4, task="regression", stratify=True)
    assert type(regression) is KFold


def test_cv_splitter_falls_back_when_a_class_is_smaller_than_the_folds() -> None:
    y = np.array([0] * 20 + [1] * 3)
    assert type(cv_splitter(folds=5, seed=0, task="classification", stratify=True, y=y)) is KFold
    with pytest.raises(ValueError, match=r"spec\.split\.folds is 5 but only 3 training rows"):
        cv_splitter(folds=5, seed=0, task="regression", stratify=False, y=np.arange(3))


def test_split_problems_name_the_field_and_the_largest_test_size_that_fits() -> None:
    from conveyor.training.splits import split_problems

    (problem,) = split_problems(150, test_size=0.99, folds=5)
    assert problem.startswith("spec.split.testSize: 0.99 of 150 rows leaves 1 rows to train on")
    assert "(at most 0.96 here)" in problem and "spec.split.folds" in problem
    assert split_problems(150, test_size=0.96, folds=5) == []
    (problem,) = split_problems(1, test_size=0.5, folds=2)
    assert "leaves 0 to train on and 1 to judge" in problem


def test_split_problems_count_the_classes_when_known() -> None:
    from conveyor.training.splits import split_problems

    (problem,) = split_problems(100, test_size=0.2, folds=5, classes={"yes": 100, "no": 0})
    assert problem == (
        "spec.split: the target has 1 class(es) in 100 rows; a classifier needs at least two"
    )
    many = {str(label): 2 for label in range(12)}
    (problem,) = split_problems(24, test_size=0.6, folds=5, classes=many)
    assert "leaves 9 rows to train on, fewer than the target's 12 classes" in problem
    assert split_problems(24, test_size=0.2, folds=5, classes=many) == []
