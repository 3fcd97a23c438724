"""The estimator allowlist: which estimators a spec may name, and checks of their parameters.

A spec names an estimator by a plain name and never makes the operator or the trainer import a
module of its choosing. Two sources make up the allowlist:

- scikit-learn's own classifiers and regressors, as listed by `sklearn.utils.all_estimators()`,
  named by their class name ("RandomForestClassifier", "Ridge"). Meta-estimators that need an
  estimator object as a constructor argument (VotingClassifier, StackingRegressor, ...) and
  multi-output-only estimators are left out: a spec cannot build them. So are deprecated ones
  (they warn when built and disappear in the next scikit-learn release).
- plugins: entry points of the group `conveyor.estimators`, named by the entry point's name.
  Loading one runs its distribution's code; that is allowed because an administrator chose to
  install that distribution in the image — the spec only picks among the installed names.
  A scikit-learn name always wins over a plugin of the same name.

Parameters are checked with scikit-learn's own validation (`_validate_params`), so messages match
what `fit` would have said, but before any Job starts and prefixed with the spec field to fix.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import logging
import numbers
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Literal

__all__ = [
    "ENTRY_POINT_GROUP",
    "EstimatorError",
    "EstimatorInfo",
    "build_estimator",
    "check_params",
    "check_search_space",
    "infer_task",
    "list_estimators",
    "param_names",
    "range_type",
    "resolve_estimator",
    "resolve_task",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "conveyor.estimators"

Task = Literal["classification", "regression"]
RANGE_KEYS = frozenset({"low", "high", "log", "type"})
LIST_ONLY_STRATEGIES = frozenset({"grid", "halving"})
_LISTING_HINT = "(`conveyor estimators` lists them)"


class EstimatorError(ValueError):
    """A spec names an estimator, parameter or task that cannot be used.

    `field` is the spec field path to fix (e.g. "spec.model.estimator"); the message is the full
    sentence to show in a condition.
    """

    def __init__(self, message: str, *, field: str = "spec.model.estimator") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class EstimatorInfo:
    """One allowlisted estimator."""

    name: str
    """The name a spec uses."""
    cls: type
    """The estimator class."""
    task: Task
    """What it predicts."""
    source: str
    """"scikit-learn" or "plugin <distribution>"."""


def resolve_estimator(name: str) -> EstimatorInfo:
    """The allowlisted estimator called `name`; EstimatorError naming a close match otherwise."""
    builtin = _sklearn_estimators().get(name)
    if builtin is not None:
        return builtin
    for entry_point in _plugin_entry_points():
        if entry_point.name == name:
            return _load_plugin(entry_point)
    raise EstimatorError(_unknown_estimator_message(name), field="spec.model.estimator")


def list_estimators(task: str | None = None) -> list[EstimatorInfo]:
    """Every allowlisted estimator (of `task` when given), sorted by name.

    A plugin that fails to load is logged and left out rather than hiding the others.
    """
    found = dict(_sklearn_estimators())
    for entry_point in _plugin_entry_points():
        if entry_point.name in found:
            continue
        try:
            found[entry_point.name] = _load_plugin(entry_point)
        except EstimatorError as error:
            logger.warning("Estimator plugin left out: %s", error)
    infos = sorted(found.values(), key=lambda info: info.name)
    return [info for info in infos if task is None or info.task == task]


def infer_task(info: EstimatorInfo) -> str:
    """The task an estimator solves: "classification" or "regression"."""
    return info.task


def resolve_task(info: EstimatorInfo, declared: str | None, *, field: str = "spec.task") -> str:
    """The pipeline's task: the declared one when it fits the estimator, else inferred."""
    if declared is None or declared == info.task:
        return info.task
    raise EstimatorError(
        f'{field} is "{declared}" but {info.name} is a {_task_noun(info.task)}; '
        f"choose a {_task_noun(declared)} estimator or set {field} to {info.task}",
        field=field,
    )


def check_params(
    info: EstimatorInfo, params: Mapping[str, Any], *, field: str = "spec.model.params"
) -> list[str]:
    """Problems with constructor parameters, each a sentence starting with its field path."""
    known = _parameter_names(info)
    problems: list[str] = []
    for name, value in params.items():
        if name not in known:
            problems.append(_unknown_parameter_message(info, name, known, f"{field}.{name}"))
            continue
        problem = _value_problem(info, name, value)
        if problem is not None:
            problems.append(f"{field}.{name}: {problem}")
    return problems


def check_search_space(
    info: EstimatorInfo,
    strategy: str,
    space: Mapping[str, Any],
    *,
    field: str = "spec.search.space",
) -> list[str]:
    """Problems with a search space, each a sentence starting with its field path.

    An entry is a non-empty list of values, or a range {low, high, log?, type?: int|float}.
    Grid and halving search need lists; random and Bayesian search take both.
    """
    strategy_field = field.rsplit(".", 1)[0] + ".strategy"
    if strategy == "none":
        if space:
            return [
                f"{field} is set but {strategy_field} is none; set {strategy_field} to grid, "
                f"random, halving or bayesian, or remove {field}"
            ]
        return []
    if not space:
        return [f"{field} is empty; {strategy} search needs at least one parameter to vary"]
    known = _parameter_names(info)
    problems: list[str] = []
    for name, entry in space.items():
        entry_field = f"{field}.{name}"
        if name not in known:
            problems.append(_unknown_parameter_message(info, name, known, entry_field))
        elif isinstance(entry, list):
            problems.extend(_list_problems(info, name, entry, entry_field))
        elif isinstance(entry, Mapping):
            if strategy in LIST_ONLY_STRATEGIES:
                problems.append(
                    f"{entry_field}: {strategy} search needs a list of values; ranges "
                    "{low, high} work with random and bayesian search"
                )
            else:
                problems.extend(_range_problems(info, name, entry, entry_field))
        else:
            problems.append(
                f"{entry_field} must be a list of values or a range {{low, high}}, "
                f"not {type(entry).__name__} {entry!r}"
            )
    return problems


def build_estimator(
    info: EstimatorInfo, params: Mapping[str, Any], *, random_state: int | None = None
) -> Any:
    """An unfitted estimator with `params` set.

    `random_state`, when given, seeds estimators that take one and whose params leave it unset,
    so that the same spec and seed train the same model.
    """
    problems = check_params(info, params)
    if problems:
        raise EstimatorError("; ".join(problems), field="spec.model.params")
    estimator = info.cls()
    settings = dict(params)
    if random_state is not None and "random_state" in _parameter_names(info):
        settings.setdefault("random_state", random_state)
    estimator.set_params(**settings)
    return estimator


def param_names(info: EstimatorInfo) -> list[str]:
    """The parameters a spec may set on this estimator, sorted."""
    return sorted(_parameter_names(info))


# --- the allowlist ---------------------------------------------------------------------------


_DISCOVERY = threading.Lock()


def _sklearn_estimators() -> dict[str, EstimatorInfo]:
    # all_estimators() walks and imports every scikit-learn module (about a second), and two
    # threads walking at once break each other's imports: one walk, under a lock, cached.
    with _DISCOVERY:
        return _discover_sklearn_estimators()


@functools.cache
def _discover_sklearn_estimators() -> dict[str, EstimatorInfo]:
    from sklearn.utils import all_estimators

    infos: dict[str, EstimatorInfo] = {}
    kinds: tuple[tuple[str, Task], ...] = (
        ("classifier", "classification"),
        ("regressor", "regression"),
    )
    for type_filter, task in kinds:
        for name, cls in all_estimators(type_filter=type_filter):
            if _buildable_from_spec(cls):
                infos[name] = EstimatorInfo(name=name, cls=cls, task=task, source="scikit-learn")
    return infos


def _buildable_from_spec(cls: type) -> bool:
    """Whether a spec of JSON parameters can build and train this estimator on one target."""
    signature = inspect.signature(cls)
    for parameter in signature.parameters.values():
        required = parameter.default is inspect.Parameter.empty
        if required and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            return False  # needs an estimator object (Voting*, Stacking*, OneVsRest*, ...)
    from sklearn.utils import get_tags

    with warnings.catch_warnings():
        # Deprecated estimators warn when built; they are on their way out of scikit-learn.
        warnings.simplefilter("error", FutureWarning)
        try:
            return bool(get_tags(cls()).target_tags.single_output)
        except (FutureWarning, AttributeError, TypeError, ValueError):
            return False  # deprecated, or useless without an estimator object


def _plugin_entry_points() -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _load_plugin(entry_point: metadata.EntryPoint) -> EstimatorInfo:
    from sklearn.base import ClassifierMixin, RegressorMixin

    distribution = entry_point.dist.name if entry_point.dist is not None else "unknown"
    source = f"plugin {distribution}"
    if entry_point.name in _sklearn_estimators():
        logger.warning(
            'Estimator plugin "%s" from %s is shadowed by the scikit-learn estimator of that name',
            entry_point.name,
            distribution,
        )
    try:
        cls = entry_point.load()
    except Exception as error:
        raise EstimatorError(
            f'estimator plugin "{entry_point.name}" ({entry_point.value}) from the distribution '
            f"{distribution} failed to load: {error}; fix or uninstall that distribution",
            field="spec.model.estimator",
        ) from error
    if inspect.isclass(cls) and issubclass(cls, ClassifierMixin):
        task: Task = "classification"
    elif inspect.isclass(cls) and issubclass(cls, RegressorMixin):
        task = "regression"
    else:
        raise EstimatorError(
            f'estimator plugin "{entry_point.name}" ({entry_point.value}) from the distribution '
            f"{distribution} is not a scikit-learn classifier or regressor class (it must "
            "subclass sklearn.base.ClassifierMixin or RegressorMixin)",
            field="spec.model.estimator",
        )
    return EstimatorInfo(name=entry_point.name, cls=cls, task=task, source=source)


def _all_names() -> list[str]:
    names = set(_sklearn_estimators())
    names.update(entry_point.name for entry_point in _plugin_entry_points())
    return sorted(names)


def _unknown_estimator_message(name: str) -> str:
    match = _close_match(name, _all_names())
    if match is None:
        return f'unknown estimator "{name}" {_LISTING_HINT}'
    return f'unknown estimator "{name}": did you mean "{match}"? {_LISTING_HINT}'


def _close_match(word: str, candidates: list[str]) -> str | None:
    by_case = {candidate.lower(): candidate for candidate in candidates}
    if word.lower() in by_case:
        return by_case[word.lower()]
    matches = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _task_noun(task: str) -> str:
    return "classifier" if task == "classification" else "regressor"


# --- parameters ------------------------------------------------------------------------------


def _default_instance(info: EstimatorInfo) -> Any:
    try:
        return info.cls()
    except Exception as error:
        raise EstimatorError(
            f"{info.name} ({info.source}) cannot be built without arguments: {error}",
            field="spec.model.estimator",
        ) from error


def _parameter_names(info: EstimatorInfo) -> set[str]:
    return set(_default_instance(info).get_params(deep=True))


def _unknown_parameter_message(info: EstimatorInfo, name: str, known: set[str], field: str) -> str:
    match = _close_match(name, sorted(known))
    hint = f'; did you mean "{match}"?' if match else f"; it takes {', '.join(sorted(known))}"
    return f'{field}: {info.name} has no parameter "{name}"{hint}'


def _value_problem(info: EstimatorInfo, name: str, value: Any) -> str | None:
    """scikit-learn's own complaint about `name=value`, or None when it is accepted."""
    estimator = _default_instance(info)
    try:
        estimator.set_params(**{name: value})
        if hasattr(estimator, "_parameter_constraints"):
            estimator._validate_params()
    except (ValueError, TypeError) as error:
        return str(error)
    return None


def _list_problems(info: EstimatorInfo, name: str, values: list[Any], field: str) -> list[str]:
    if not values:
        return [f"{field} is an empty list; give at least one value"]
    problems = []
    for index, value in enumerate(values):
        problem = _value_problem(info, name, value)
        if problem is not None:
            problems.append(f"{field}[{index}]: {problem}")
    return problems


def _range_problems(
    info: EstimatorInfo, name: str, entry: Mapping[str, Any], field: str
) -> list[str]:
    problems = [
        f'{field}: unknown key "{key}" in a range; a range has low, high, log and type'
        for key in entry
        if key not in RANGE_KEYS
    ]
    low: Any = entry.get("low")
    high: Any = entry.get("high")
    for key, bound in (("low", low), ("high", high)):
        if not _is_number(bound):
            problems.append(f"{field}.{key} must be a number, not {bound!r}")
    log = entry.get("log", False)
    if not isinstance(log, bool):
        problems.append(f"{field}.log must be true or false, not {log!r}")
    kind = entry.get("type")
    if kind not in (None, "int", "float"):
        problems.append(f'{field}.type must be "int" or "float", not {kind!r}')
    if problems:
        return problems
    kind = range_type(entry)
    if kind == "int":
        for key, bound in (("low", low), ("high", high)):
            if float(bound) != int(bound):
                problems.append(f"{field}.{key} must be a whole number for an int range: {bound}")
    if not low < high:
        problems.append(f"{field}.low ({low}) must be less than {field}.high ({high})")
    if log and low <= 0:
        problems.append(f"{field}.low must be greater than 0 for a log range, not {low}")
    if problems:
        return problems
    as_type = int if kind == "int" else float
    for key, bound in (("low", low), ("high", high)):
        problem = _value_problem(info, name, as_type(bound))
        if problem is not None:
            problems.append(f"{field}.{key}: {problem}")
    return problems


def range_type(entry: Mapping[str, Any]) -> Literal["int", "float"]:
    """A range's value type: as given, else int when both bounds are whole JSON integers."""
    kind = entry.get("type")
    if kind in ("int", "float"):
        return kind
    bounds = (entry.get("low"), entry.get("high"))
    return "int" if all(isinstance(bound, numbers.Integral) for bound in bounds) else "float"


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
