"""Hyper-parameter search: grid, random, successive halving (scikit-learn's) and Bayesian (Optuna).

Candidates are scored by cross-validation on the training rows with the pipeline's metric.
Scores are "higher is better" inside (scikit-learn's convention, losses negated) but every
`Trial.score` and `SearchResult.best_score` is reported in the metric's natural sign (rmse
positive); `metrics.greater_is_better` says which way is better.

Spreading trials across the pods of an Indexed Job: `assign_trials(index, pods, total)` gives each
pod its trial numbers. Grid and random candidates are a deterministic list (`candidates`), so
trial i is the same on every pod. Bayesian search proposes candidates as it learns, so a pod runs
`len(trial_numbers)` trials of its own study, seeded with `seed + trial_numbers[0]` so that pods
explore differently; its trials are numbered with the pod's trial numbers. Successive halving is a
single tournament whose rounds depend on each other: it runs whole wherever it is called and
ignores `trial_numbers` (give it parallelism 1; `n_jobs` spreads its fits over local cores).
Each pod's `SearchResult` goes to S3 (`to_dict`), and `merge_results` combines them.

`SearchResult.best_params` are the complete estimator parameters (base params updated by the
best candidate); `Trial.params` are only the candidate's searched values.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

import numpy as np

from .estimators import EstimatorInfo, build_estimator, range_type
from .metrics import greater_is_better, scorer

__all__ = [
    "SearchError",
    "SearchResult",
    "Trial",
    "assign_trials",
    "candidates",
    "merge_results",
    "run_search",
]

logger = logging.getLogger(__name__)

TrialState = Literal["complete", "failed", "timeout"]
_MAX_SAMPLING_ROUNDS = 20  # random search: draws per wanted candidate before accepting repeats


class SearchError(RuntimeError):
    """No candidate could be trained; the message carries the first candidate's error."""


@dataclass
class Trial:
    """One candidate of a search."""

    number: int
    params: dict[str, Any]
    score: float | None
    seconds: float
    state: TrialState
    error: str | None = None


@dataclass
class SearchResult:
    """The outcome of a search (or of one pod's share of it)."""

    best_params: dict[str, Any]
    best_score: float | None
    trials: list[Trial] = field(default_factory=list)
    strategy: str = "none"
    metric: str = "accuracy"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, to share through S3 between the pods of an Indexed Job."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchResult:
        fields = dict(data)
        fields["trials"] = [Trial(**trial) for trial in data.get("trials", [])]
        return cls(**fields)


def assign_trials(pod_index: int, pods: int, total: int) -> list[int]:
    """The trial numbers pod `pod_index` of `pods` runs, out of `total` (round robin)."""
    if not 0 <= pod_index < pods:
        raise ValueError(f"pod index {pod_index} is outside 0..{pods - 1}")
    return list(range(pod_index, total, pods))


def candidates(
    strategy: str, space: Mapping[str, Any], *, trials: int, seed: int
) -> list[dict[str, Any]]:
    """The deterministic candidate list of grid (and halving) or random search.

    grid: every combination, parameters in name order, values in the order given. random:
    `trials` seeded samples (ranges uniform, or log-uniform with log; int ranges rounded), without
    repeats while the space has unseen combinations. none: one empty candidate.
    """
    if strategy == "none":
        return [{}]
    names = sorted(space)
    if strategy in ("grid", "halving"):
        _require_lists(strategy, space)
        combinations = itertools.product(*(space[name] for name in names))
        return [dict(zip(names, values, strict=True)) for values in combinations]
    if strategy == "random":
        return _sample(space, names, trials=trials, seed=seed)
    raise ValueError(
        f"{strategy} search has no fixed candidate list; candidates() takes none, grid, "
        "halving or random"
    )


def run_search(
    info: EstimatorInfo,
    base_params: Mapping[str, Any],
    strategy: str,
    space: Mapping[str, Any],
    X: Any,
    y: Any,
    *,
    metric: str,
    cv: Any,
    trials: int,
    seed: int,
    timeout_seconds: float | None,
    trial_numbers: Sequence[int] | None = None,
    n_jobs: int = 1,
    clock: Callable[[], float] = time.monotonic,
) -> SearchResult:
    """Search `space` around `base_params` and return every trial and the best parameters.

    A candidate whose training raises is a failed trial; SearchError when all fail. The time
    budget is checked before each trial after the first (a trial in progress is not cut short):
    grid and random mark the trials left "timeout"; Bayesian search passes it to Optuna.
    """
    search = _Search(info, dict(base_params), X, y, metric, cv, seed, n_jobs, clock)
    if strategy in ("none", "grid", "random"):
        listed = candidates(strategy, space, trials=trials, seed=seed)
        numbers = range(len(listed)) if trial_numbers is None else trial_numbers
        chosen = [(number, listed[number]) for number in numbers if 0 <= number < len(listed)]
        found = search.listed(chosen, timeout_seconds)
    elif strategy == "halving":
        found = search.halving(space, trials)
    elif strategy == "bayesian":
        numbers = list(range(trials) if trial_numbers is None else trial_numbers)
        found = search.bayesian(space, numbers, timeout_seconds)
    else:
        raise ValueError(
            "spec.search.strategy must be none, grid, random, halving or bayesian, "
            f'not "{strategy}"'
        )
    return _result(found, dict(base_params), strategy, metric)


def merge_results(results: Sequence[SearchResult]) -> SearchResult:
    """One result from the pods' partial ones: all trials by number, the best by the metric."""
    if not results:
        raise ValueError("merge_results needs at least one search result")
    metrics = {result.metric for result in results}
    if len(metrics) > 1:
        raise ValueError(f"cannot merge searches of different metrics: {sorted(metrics)}")
    metric = results[0].metric
    scored = [result for result in results if result.best_score is not None]
    if not scored:
        errors = [trial.error for result in results for trial in result.trials if trial.error]
        raise SearchError(f"every trial failed; first error: {errors[0] if errors else 'none'}")
    pick = max if greater_is_better(metric) else min
    best = pick(scored, key=lambda result: cast(float, result.best_score))
    trials = sorted((trial for result in results for trial in result.trials), key=_trial_number)
    return SearchResult(
        best_params=dict(best.best_params),
        best_score=best.best_score,
        trials=trials,
        strategy=results[0].strategy,
        metric=metric,
    )


# --- candidates ------------------------------------------------------------------------------


def _require_lists(strategy: str, space: Mapping[str, Any]) -> None:
    for name, entry in space.items():
        if not isinstance(entry, list) or not entry:
            raise ValueError(
                f"spec.search.space.{name}: {strategy} search needs a non-empty list of values"
            )


def _sample(
    space: Mapping[str, Any], names: list[str], *, trials: int, seed: int
) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    chosen: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _ in range(trials * _MAX_SAMPLING_ROUNDS):
        candidate = {name: _draw(rng, space[name]) for name in names}
        key = json.dumps(candidate, sort_keys=True, default=repr)
        if key not in seen:
            seen.add(key)
            chosen.append(candidate)
        if len(chosen) == trials:
            return chosen
    # A small discrete space: repeat its combinations, in the same seeded order, up to `trials`.
    return [chosen[index % len(chosen)] for index in range(trials)]


def _draw(rng: np.random.Generator, entry: Any) -> Any:
    if isinstance(entry, list):
        return entry[int(rng.integers(len(entry)))]
    low, high, log = float(entry["low"]), float(entry["high"]), bool(entry.get("log", False))
    value = math.exp(rng.uniform(math.log(low), math.log(high))) if log else rng.uniform(low, high)
    if range_type(entry) == "int":
        return int(min(max(round(value), int(low)), int(high)))
    return float(value)


# --- running ---------------------------------------------------------------------------------


@dataclass
class _Found:
    trials: list[Trial]
    best_number: int | None = None  # the strategy's own pick; None: the best complete trial


class _Search:
    """What every strategy shares: building, cross-validating and timing one candidate."""

    def __init__(
        self,
        info: EstimatorInfo,
        base_params: dict[str, Any],
        X: Any,
        y: Any,
        metric: str,
        cv: Any,
        seed: int,
        n_jobs: int,
        clock: Callable[[], float],
    ) -> None:
        self.info, self.base_params, self.X, self.y = info, base_params, X, y
        self.metric, self.cv, self.seed, self.n_jobs, self.clock = metric, cv, seed, n_jobs, clock
        self.sign = 1.0 if greater_is_better(metric) else -1.0

    def estimator(self, candidate: Mapping[str, Any]) -> Any:
        return build_estimator(self.info, {**self.base_params, **candidate}, random_state=self.seed)

    def cross_validate(self, number: int, candidate: dict[str, Any]) -> Trial:
        from sklearn.model_selection import cross_val_score

        started = self.clock()
        try:
            scores = cross_val_score(
                self.estimator(candidate),
                self.X,
                self.y,
                scoring=scorer(self.metric),
                cv=self.cv,
                n_jobs=self.n_jobs,
                error_score="raise",
            )
        except Exception as error:
            logger.info("Trial %d (%s) failed: %s", number, candidate, error)
            return Trial(
                number, candidate, None, self.clock() - started, "failed", _describe(error)
            )
        natural = self.sign * float(np.mean(scores))
        if not math.isfinite(natural):
            return Trial(number, candidate, None, self.clock() - started, "failed", "score is NaN")
        return Trial(number, candidate, natural, self.clock() - started, "complete")

    def listed(
        self, chosen: list[tuple[int, dict[str, Any]]], timeout_seconds: float | None
    ) -> _Found:
        deadline = None if timeout_seconds is None else self.clock() + timeout_seconds
        trials: list[Trial] = []
        for position, (number, candidate) in enumerate(chosen):
            if position > 0 and deadline is not None and self.clock() >= deadline:
                trials.append(Trial(number, candidate, None, 0.0, "timeout"))
                continue
            trials.append(self.cross_validate(number, candidate))
        return _Found(trials)

    def halving(self, space: Mapping[str, Any], trials: int) -> _Found:
        from sklearn.exceptions import FitFailedWarning
        from sklearn.experimental import enable_halving_search_cv  # noqa: F401 - enables the import
        from sklearn.model_selection import HalvingGridSearchCV, HalvingRandomSearchCV

        grid = candidates("halving", space, trials=trials, seed=self.seed)
        common: dict[str, Any] = {
            "scoring": scorer(self.metric),
            "cv": self.cv,
            "n_jobs": self.n_jobs,
            "random_state": self.seed,
            "error_score": np.nan,
        }
        estimator = self.estimator({})
        lists = {name: list(values) for name, values in space.items()}
        # The whole grid when it fits in `trials`, else `trials` sampled combinations.
        tournament = (
            HalvingGridSearchCV(estimator, lists, **common)
            if len(grid) <= trials
            else HalvingRandomSearchCV(estimator, lists, n_candidates=trials, **common)
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", FitFailedWarning)
            warnings.simplefilter("ignore", UserWarning)  # "one or more test scores are non-finite"
            tournament.fit(self.X, self.y)
        failures = [
            _last_line(str(w.message)) for w in caught if issubclass(w.category, FitFailedWarning)
        ]
        # The tournament's winner was scored with the most rows, in its last round; an early
        # round's score on a few rows is not comparable, so its pick is kept.
        return _Found(
            self._halving_trials(tournament.cv_results_, failures), tournament.best_index_
        )

    def _halving_trials(self, results: Mapping[str, Any], failures: list[str]) -> list[Trial]:
        folds = sum(1 for key in results if key.startswith("split") and key.endswith("test_score"))
        trials = []
        for number, candidate in enumerate(results["params"]):
            internal = float(results["mean_test_score"][number])
            seconds = (
                float(results["mean_fit_time"][number] + results["mean_score_time"][number]) * folds
            )
            params = {name: _plain(value) for name, value in candidate.items()}
            if math.isfinite(internal):
                trials.append(Trial(number, params, self.sign * internal, seconds, "complete"))
            else:
                error = failures[0] if failures else "the candidate could not be scored"
                trials.append(Trial(number, params, None, seconds, "failed", error))
        return trials

    def bayesian(
        self, space: Mapping[str, Any], numbers: list[int], timeout_seconds: float | None
    ) -> _Found:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(seed=self.seed + (numbers[0] if numbers else 0))
        study = optuna.create_study(direction="maximize", sampler=sampler)
        trials: list[Trial] = []

        def objective(proposal: optuna.Trial) -> float:
            number = numbers[proposal.number]
            trial = self.cross_validate(number, _suggest(proposal, space))
            trials.append(trial)
            if trial.state != "complete" or trial.score is None:
                raise optuna.TrialPruned  # neither a result nor a crash of the study
            return self.sign * trial.score

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.optimize(objective, n_trials=len(numbers), timeout=timeout_seconds)
        for number in numbers[len(trials) :]:
            trials.append(Trial(number, {}, None, 0.0, "timeout"))
        return _Found(trials)


def _suggest(proposal: Any, space: Mapping[str, Any]) -> dict[str, Any]:
    candidate: dict[str, Any] = {}
    for name in sorted(space):
        entry = space[name]
        if isinstance(entry, list):
            # Optuna's choices must be plain scalars: choose an index when values are lists.
            if all(value is None or isinstance(value, str | int | float) for value in entry):
                candidate[name] = proposal.suggest_categorical(name, entry)
            else:
                index = proposal.suggest_categorical(name, list(range(len(entry))))
                candidate[name] = entry[index]
        elif range_type(entry) == "int":
            log = bool(entry.get("log", False))
            candidate[name] = proposal.suggest_int(
                name, int(entry["low"]), int(entry["high"]), log=log
            )
        else:
            log = bool(entry.get("log", False))
            candidate[name] = proposal.suggest_float(
                name, float(entry["low"]), float(entry["high"]), log=log
            )
    return candidate


def _result(found: _Found, base_params: dict[str, Any], strategy: str, metric: str) -> SearchResult:
    complete = [trial for trial in found.trials if trial.state == "complete"]
    if not complete:
        errors = [trial.error for trial in found.trials if trial.error]
        raise SearchError(
            f"every {strategy} search trial failed; first error: {errors[0] if errors else 'none'}"
        )
    pick = max if greater_is_better(metric) else min
    best = pick(complete, key=lambda trial: cast(float, trial.score))
    if found.best_number is not None:
        best = next(trial for trial in complete if trial.number == found.best_number)
    return SearchResult(
        best_params={**base_params, **best.params},
        best_score=best.score,
        trials=found.trials,
        strategy=strategy,
        metric=metric,
    )


def _trial_number(trial: Trial) -> int:
    return trial.number


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _last_line(text: str) -> str:
    """The exception line that ends a traceback scikit-learn folded into a warning."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
