"""The estimator allowlist: names resolve or are refused helpfully; params and spaces checked."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.datasets import load_iris

from conveyor.training.estimators import (
    ENTRY_POINT_GROUP,
    EstimatorError,
    build_estimator,
    check_params,
    check_search_space,
    infer_task,
    list_estimators,
    resolve_estimator,
    resolve_task,
)


@pytest.mark.parametrize(
    ("estimator", "params"),
    [
        ("RandomForestClassifier", {"n_estimators": 10, "max_depth": 3}),
        ("GradientBoostingClassifier", {"n_estimators": 10}),
        ("LogisticRegression", {"C": 1.0, "max_iter": 500}),
    ],
)
def test_swapping_the_estimator_is_a_one_line_change(estimator: str, params: dict) -> None:
    X, y = load_iris(return_X_y=True)
    info = resolve_estimator(estimator)
    assert (info.name, info.task, info.source) == (estimator, "classification", "scikit-learn")
    assert check_params(info, params) == []
    model = build_estimator(info, params, random_state=0).fit(X, y)
    assert model.score(X, y) > 0.9


def test_misspelled_estimator_suggests_the_close_match() -> None:
    with pytest.raises(EstimatorError) as caught:
        resolve_estimator("RandomForrestClassifier")
    assert caught.value.field == "spec.model.estimator"
    assert str(caught.value) == (
        'unknown estimator "RandomForrestClassifier": did you mean "RandomForestClassifier"? '
        "(`conveyor estimators` lists them)"
    )


def test_wrong_case_suggests_the_right_spelling() -> None:
    with pytest.raises(EstimatorError, match='did you mean "Ridge"'):
        resolve_estimator("ridge")


def test_a_module_path_is_never_imported() -> None:
    with pytest.raises(EstimatorError, match='unknown estimator "os:system"'):
        resolve_estimator("os:system")
    with pytest.raises(EstimatorError, match="unknown estimator"):
        resolve_estimator("sklearn.ensemble.RandomForestClassifier")


def test_listing_holds_buildable_estimators_by_task() -> None:
    names = {info.name for info in list_estimators()}
    assert {"RandomForestClassifier", "Ridge", "HistGradientBoostingRegressor"} <= names
    # Meta-estimators need estimator objects a spec cannot give; multi-output ones need 2-D y.
    assert not names & {"VotingClassifier", "StackingRegressor", "MultiTaskLasso"}
    regressors = list_estimators("regression")
    assert regressors and all(info.task == "regression" for info in regressors)
    assert infer_task(resolve_estimator("Ridge")) == "regression"


def test_task_must_fit_the_estimator() -> None:
    info = resolve_estimator("Ridge")
    assert resolve_task(info, None) == "regression"
    assert resolve_task(info, "regression") == "regression"
    with pytest.raises(EstimatorError, match=r'spec\.task is "classification" but Ridge') as caught:
        resolve_task(info, "classification")
    assert caught.value.field == "spec.task"


def test_unknown_parameter_names_the_field_and_the_close_match() -> None:
    problems = check_params(resolve_estimator("RandomForestClassifier"), {"max_dept": 3})
    assert problems == [
        'spec.model.params.max_dept: RandomForestClassifier has no parameter "max_dept"; '
        'did you mean "max_depth"?'
    ]


def test_invalid_values_use_scikit_learns_own_message() -> None:
    info = resolve_estimator("RandomForestClassifier")
    problems = check_params(info, {"max_depth": "deep", "n_estimators": 0, "criterion": "gini"})
    assert len(problems) == 2
    assert problems[0].startswith("spec.model.params.max_depth: The 'max_depth' parameter")
    assert "Got 'deep' instead" in problems[0]
    assert problems[1].startswith("spec.model.params.n_estimators:")
    with pytest.raises(EstimatorError, match="n_estimators") as caught:
        build_estimator(info, {"n_estimators": 0})
    assert caught.value.field == "spec.model.params"


def test_build_seeds_only_an_unset_random_state() -> None:
    info = resolve_estimator("RandomForestClassifier")
    assert build_estimator(info, {}, random_state=5).random_state == 5
    assert build_estimator(info, {"random_state": 7}, random_state=5).random_state == 7
    ridge = build_estimator(resolve_estimator("LinearRegression"), {}, random_state=5)
    assert "random_state" not in ridge.get_params()


def test_a_valid_space_has_no_problems() -> None:
    info = resolve_estimator("RandomForestClassifier")
    space = {"max_depth": [2, 3, None], "min_samples_leaf": {"low": 1, "high": 8, "type": "int"}}
    assert check_search_space(info, "random", space) == []
    assert check_search_space(info, "bayesian", space) == []
    assert check_search_space(info, "grid", {"max_depth": [2, None]}) == []
    assert check_search_space(info, "none", {}) == []


def test_space_problems_name_the_exact_field() -> None:
    info = resolve_estimator("RandomForestClassifier")
    space = {
        "max_depth": [2, 0],
        "min_samples_leaf": {"low": 0, "high": 8},
        "max_features": {"low": 0.9, "high": 0.1},
        "ccp_alpha": {"low": 0.0, "high": 1.0, "log": True},
        "n_estimators": 50,
        "max_leaf": [4],
        "min_samples_split": [],
    }
    problems = check_search_space(info, "random", space)
    assert problems[0].startswith("spec.search.space.max_depth[1]: The 'max_depth' parameter")
    assert problems[1].startswith("spec.search.space.min_samples_leaf.low: The 'min_samples_leaf'")
    assert problems[2] == (
        "spec.search.space.max_features.low (0.9) must be less than "
        "spec.search.space.max_features.high (0.1)"
    )
    assert problems[3] == (
        "spec.search.space.ccp_alpha.low must be greater than 0 for a log range, not 0.0"
    )
    assert problems[4] == (
        "spec.search.space.n_estimators must be a list of values or a range {low, high}, not int 50"
    )
    assert problems[5].startswith("spec.search.space.max_leaf: RandomForestClassifier has no")
    assert 'did you mean "max_leaf_nodes"?' in problems[5]
    assert problems[6] == (
        "spec.search.space.min_samples_split is an empty list; give at least one value"
    )


def test_range_keys_and_types_are_checked() -> None:
    info = resolve_estimator("Ridge")
    problems = check_search_space(
        info, "bayesian", {"alpha": {"low": "small", "high": 1.0, "lo": 1, "type": "double"}}
    )
    assert 'spec.search.space.alpha: unknown key "lo" in a range' in problems[0]
    assert "spec.search.space.alpha.low must be a number, not 'small'" in problems
    assert 'spec.search.space.alpha.type must be "int" or "float", not \'double\'' in problems
    whole = check_search_space(info, "random", {"alpha": {"low": 0.5, "high": 2, "type": "int"}})
    assert whole == ["spec.search.space.alpha.low must be a whole number for an int range: 0.5"]


def test_grid_and_halving_need_lists_and_none_needs_no_space() -> None:
    info = resolve_estimator("Ridge")
    ranged = {"alpha": {"low": 0.1, "high": 10.0}}
    for strategy in ("grid", "halving"):
        assert check_search_space(info, strategy, ranged) == [
            f"spec.search.space.alpha: {strategy} search needs a list of values; ranges "
            "{low, high} work with random and bayesian search"
        ]
    assert check_search_space(info, "none", {"alpha": [1.0]}) == [
        "spec.search.space is set but spec.search.strategy is none; set spec.search.strategy "
        "to grid, random, halving or bayesian, or remove spec.search.space"
    ]
    assert check_search_space(info, "grid", {}) == [
        "spec.search.space is empty; grid search needs at least one parameter to vary"
    ]


PLUGIN_MODULE = """
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class MajorityClassifier(ClassifierMixin, BaseEstimator):
    def __init__(self, smoothing=1.0):
        self.smoothing = smoothing

    def fit(self, X, y):
        self.classes_, counts = np.unique(y, return_counts=True)
        self.majority_ = self.classes_[np.argmax(counts)]
        return self

    def predict(self, X):
        return np.full(len(X), self.majority_)


NOT_AN_ESTIMATOR = 42
"""


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A distribution installed on sys.path that registers two estimator entry points."""
    (tmp_path / "conveyor_majority.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    dist_info = tmp_path / "conveyor_majority-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: conveyor-majority\n")
    (dist_info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n"
        "Majority = conveyor_majority:MajorityClassifier\n"
        "Broken = conveyor_majority:NOT_AN_ESTIMATOR\n"
        "Ridge = conveyor_majority:MajorityClassifier\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "conveyor_majority"
    sys.modules.pop("conveyor_majority", None)


def test_plugins_resolve_by_entry_point_name(installed_plugin: str) -> None:
    info = resolve_estimator("Majority")
    assert (info.task, info.source) == ("classification", "plugin conveyor-majority")
    X, y = load_iris(return_X_y=True)
    assert check_params(info, {"smothing": 2}) == [
        'spec.model.params.smothing: Majority has no parameter "smothing"; '
        'did you mean "smoothing"?'
    ]
    assert build_estimator(info, {"smoothing": 2.0}).fit(X, y).predict(X[:2]).tolist() == [0, 0]
    assert "Majority" in {item.name for item in list_estimators("classification")}


def test_a_plugin_that_is_not_an_estimator_is_refused(installed_plugin: str) -> None:
    with pytest.raises(EstimatorError, match="not a scikit-learn classifier or regressor"):
        resolve_estimator("Broken")
    assert "Broken" not in {item.name for item in list_estimators()}


def test_scikit_learn_names_win_over_plugins(installed_plugin: str) -> None:
    assert resolve_estimator("Ridge").source == "scikit-learn"
    with pytest.raises(EstimatorError, match='did you mean "Majority"'):
        resolve_estimator("Majorty")
