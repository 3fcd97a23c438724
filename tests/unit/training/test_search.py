"""Hyper-parameter search: every strategy finds sensible params, deterministically, on budget."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris

from conveyor.training.estimators import resolve_estimator
from conveyor.training.search import (
    SearchError,
    SearchResult,
    Trial,
    assign_trials,
    candidates,
    merge_results,
    run_search,
)
from conveyor.training.splits import cv_splitter

IRIS_SPACE = {
    "max_depth": [2, 3, 4, 6, None],
    "min_samples_leaf": {"low": 1, "high": 8, "type": "int"},
}
DIABETES_SPACE = {"alpha": {"low": 0.001, "high": 100.0, "log": True}}


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def diabetes() -> tuple[np.ndarray, np.ndarray]:
    return load_diabetes(return_X_y=True)


def search_iris(strategy: str, space: dict, iris: tuple, **options: object) -> SearchResult:
    X, y = iris
    settings: dict = {
        "metric": "f1_macro",
        "cv": cv_splitter(folds=3, seed=1, task="classification", stratify=True, y=y),
        "trials": 5,
        "seed": 1,
        "timeout_seconds": None,
    }
    settings.update(options)
    info = resolve_estimator("RandomForestClassifier")
    return run_search(info, {"n_estimators": 8}, strategy, space, X, y, **settings)


def search_diabetes(strategy: str, space: dict, diabetes: tuple, **options: object) -> SearchResult:
    X, y = diabetes
    settings: dict = {
        "metric": "rmse",
        "cv": cv_splitter(folds=3, seed=1, task="regression", stratify=False),
        "trials": 8,
        "seed": 1,
        "timeout_seconds": None,
    }
    settings.update(options)
    return run_search(resolve_estimator("Ridge"), {}, strategy, space, X, y, **settings)


def test_grid_candidates_are_the_full_product_in_a_fixed_order() -> None:
    space = {"b": [1, 2], "a": ["x", "y", None]}
    grid = candidates("grid", space, trials=1, seed=0)
    assert grid == [{"a": a, "b": b} for a, b in itertools.product(["x", "y", None], [1, 2])]
    assert candidates("none", {}, trials=5, seed=0) == [{}]


def test_random_candidates_are_seeded_within_bounds_and_json_safe() -> None:
    space = {**IRIS_SPACE, "ccp_alpha": {"low": 0.001, "high": 0.1, "log": True}}
    first = candidates("random", space, trials=12, seed=42)
    assert first == candidates("random", space, trials=12, seed=42)
    assert first != candidates("random", space, trials=12, seed=43)
    assert len(first) == 12 and len({json.dumps(c, sort_keys=True) for c in first}) == 12
    for candidate in first:
        assert candidate["max_depth"] in IRIS_SPACE["max_depth"]
        assert (
            type(candidate["min_samples_leaf"]) is int and 1 <= candidate["min_samples_leaf"] <= 8
        )
        assert type(candidate["ccp_alpha"]) is float and 0.001 <= candidate["ccp_alpha"] <= 0.1
    json.dumps(first)


def test_random_candidates_of_a_tiny_space_repeat_in_order() -> None:
    tiny = candidates("random", {"max_depth": [2, 3]}, trials=5, seed=0)
    assert len(tiny) == 5 and {c["max_depth"] for c in tiny} == {2, 3}
    assert tiny[2:4] == tiny[0:2]


def test_no_search_scores_the_base_params(iris: tuple) -> None:
    result = search_iris("none", {}, iris)
    assert len(result.trials) == 1 and result.trials[0].state == "complete"
    assert result.best_params == {"n_estimators": 8}
    assert 0.9 < result.best_score <= 1


@pytest.mark.parametrize("strategy", ["grid", "random", "halving", "bayesian"])
def test_every_strategy_tunes_iris(strategy: str, iris: tuple) -> None:
    space = IRIS_SPACE if strategy in ("random", "bayesian") else {"max_depth": [1, 3, None]}
    result = search_iris(strategy, space, iris)
    assert (result.strategy, result.metric) == (strategy, "f1_macro")
    assert result.best_params["n_estimators"] == 8, "base params are kept"
    assert result.best_params["max_depth"] in space["max_depth"]
    assert 1 <= result.best_params.get("min_samples_leaf", 1) <= 8
    assert 0.9 < result.best_score <= 1
    complete = [trial.score for trial in result.trials if trial.state == "complete"]
    assert result.best_score == pytest.approx(max(complete)) or strategy == "halving"
    json.dumps(result.to_dict(), allow_nan=False)


@pytest.mark.parametrize("strategy", ["grid", "random", "halving", "bayesian"])
def test_every_strategy_tunes_diabetes_with_a_loss(strategy: str, diabetes: tuple) -> None:
    lists = {"alpha": [0.001, 0.1, 10.0, 100.0]}
    result = search_diabetes(
        strategy, DIABETES_SPACE if strategy == "bayesian" else lists, diabetes
    )
    assert 0.001 <= result.best_params["alpha"] <= 100.0
    scores = [trial.score for trial in result.trials if trial.state == "complete"]
    assert all(score > 0 for score in scores), "rmse is reported positive"
    if strategy != "halving":
        assert result.best_score == pytest.approx(min(scores)), "the lowest rmse wins"
    assert 50 < result.best_score < 65
    assert result.best_params["alpha"] < 100.0, "heavy regularisation is not chosen"


def test_searches_are_deterministic(iris: tuple, diabetes: tuple) -> None:
    for strategy in ("random", "bayesian"):
        first, again = (search_iris(strategy, IRIS_SPACE, iris) for _ in range(2))
        assert [t.params for t in first.trials] == [t.params for t in again.trials]
        assert first.best_score == again.best_score
    first, again = (search_diabetes("bayesian", DIABETES_SPACE, diabetes) for _ in range(2))
    assert first.best_params == again.best_params


class SteppingClock:
    """Each reading is `step` seconds after the previous one."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_a_spent_budget_marks_the_remaining_trials_timeout(iris: tuple) -> None:
    result = search_iris("random", IRIS_SPACE, iris, timeout_seconds=5, clock=SteppingClock(2))
    states = [trial.state for trial in result.trials]
    assert states == ["complete", "timeout", "timeout", "timeout", "timeout"]
    assert result.best_params == {"n_estimators": 8, **result.trials[0].params}
    assert all(t.score is None for t in result.trials[1:])


def test_bayesian_search_stops_at_its_time_budget(diabetes: tuple) -> None:
    result = search_diabetes("bayesian", DIABETES_SPACE, diabetes, trials=10_000, timeout_seconds=1)
    ran = [trial for trial in result.trials if trial.state == "complete"]
    assert 1 <= len(ran) < 10_000
    assert {t.state for t in result.trials[len(ran) :]} <= {"timeout"}


def test_a_failing_candidate_is_a_failed_trial(diabetes: tuple) -> None:
    result = search_diabetes("grid", {"alpha": [1.0, -1.0]}, diabetes)
    failed = result.trials[1]
    assert (failed.state, failed.score) == ("failed", None)
    assert "'alpha' parameter of Ridge" in failed.error
    assert result.best_params == {"alpha": 1.0}
    halving = search_diabetes("halving", {"alpha": [1.0, -1.0, 10.0]}, diabetes)
    assert [t.state for t in halving.trials].count("failed") == 1
    assert "'alpha' parameter of Ridge" in next(t.error for t in halving.trials if t.error)


def test_all_candidates_failing_raises_with_the_first_error(diabetes: tuple) -> None:
    with pytest.raises(SearchError, match=r"first error: .*'alpha' parameter of Ridge"):
        search_diabetes("grid", {"alpha": [-1.0, -2.0]}, diabetes)
    with pytest.raises(SearchError, match="bayesian"):
        search_diabetes("bayesian", {"alpha": {"low": -5.0, "high": -1.0}}, diabetes, trials=3)


def test_pods_of_an_indexed_job_split_the_trials_and_merge(iris: tuple) -> None:
    pods = [assign_trials(index, 3, 5) for index in range(3)]
    assert pods == [[0, 3], [1, 4], [2]]
    whole = search_iris("random", IRIS_SPACE, iris)
    parts = [search_iris("random", IRIS_SPACE, iris, trial_numbers=numbers) for numbers in pods]
    merged = merge_results(parts)
    assert [t.number for t in merged.trials] == [0, 1, 2, 3, 4]
    assert [t.params for t in merged.trials] == [t.params for t in whole.trials]
    assert merged.best_score == whole.best_score
    assert merged.best_params == whole.best_params


def test_bayesian_pods_number_their_trials_and_explore_differently(diabetes: tuple) -> None:
    first = search_diabetes("bayesian", DIABETES_SPACE, diabetes, trial_numbers=[0, 2])
    second = search_diabetes("bayesian", DIABETES_SPACE, diabetes, trial_numbers=[1, 3])
    assert [t.number for t in first.trials] == [0, 2]
    assert [t.number for t in second.trials] == [1, 3]
    assert first.trials[0].params != second.trials[0].params


def trial(number: int, score: float | None) -> Trial:
    state = "complete" if score is not None else "failed"
    return Trial(number, {"alpha": number}, score, 0.1, state, None if score else "boom")


def test_merge_picks_the_best_by_the_metric_direction() -> None:
    low = SearchResult({"alpha": 0}, 50.0, [trial(0, 50.0)], "random", "rmse")
    high = SearchResult({"alpha": 1}, 60.0, [trial(1, 60.0), trial(2, None)], "random", "rmse")
    assert merge_results([high, low]).best_params == {"alpha": 0}
    accuracy = [
        SearchResult(r.best_params, r.best_score, r.trials, r.strategy, "r2") for r in (low, high)
    ]
    assert merge_results(accuracy).best_params == {"alpha": 1}
    with pytest.raises(ValueError, match="different metrics"):
        merge_results([low, accuracy[1]])


def test_results_round_trip_through_json() -> None:
    result = SearchResult({"alpha": 0.5}, 55.0, [trial(0, 55.0), trial(1, None)], "grid", "rmse")
    restored = SearchResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert restored == result


def test_bayesian_lists_of_lists_are_chosen_by_index(iris: tuple) -> None:
    X, y = iris
    space = {"hidden_layer_sizes": [[4], [6, 3]], "alpha": {"low": 1e-4, "high": 1e-2, "log": True}}
    result = run_search(
        resolve_estimator("MLPClassifier"),
        {"max_iter": 2000, "solver": "lbfgs"},
        "bayesian",
        space,
        X,
        y,
        metric="accuracy",
        cv=cv_splitter(folds=3, seed=0, task="classification", stratify=True),
        trials=2,
        seed=0,
        timeout_seconds=None,
    )
    assert result.best_params["hidden_layer_sizes"] in space["hidden_layer_sizes"]
