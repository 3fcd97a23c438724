"""Model versions side by side: holdout metrics, footprint and live quality, best values marked.

`compare()` is pure: it takes the versions (`Candidate`: a ModelVersion and its card, read by
`conveyor.ui.comparisons`) and returns a `Comparison`, which `comparison_text.render_text()`
prints as the table of `conveyor compare` and `comparison_report` draws as HTML.

Fairness: a holdout metric says how a model did on particular rows. Two cards with the same
`holdout.fingerprint` were judged on exactly the same rows of the same snapshot, so their
metrics are ranked against each other; across different holdouts (or a card from before
holdouts were fingerprinted) they are not: the best holdout values are marked only within a
group that shares one holdout, and the comparison carries a warning that names the groups.
Footprint (training time, size, latency) and live quality do not depend on the holdout and are
ranked across every version.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConveyorError
from .comparison_format import MISSING, describe_holdout, format_value
from .metrics import (
    CLASSIFICATION,
    REGRESSION,
    default_metric,
    greater_is_better,
    live_metric_name,
)

__all__ = [
    "MISSING",
    "Candidate",
    "Column",
    "Comparison",
    "ComparisonError",
    "Row",
    "compare",
    "format_value",
]

"""What a cell shows when the card lacks the figure (an older card, or no card at all)."""
_METRIC_ORDER = {name: i for i, name in enumerate(CLASSIFICATION + REGRESSION)}


class ComparisonError(ConveyorError):
    """The versions cannot be compared as asked (a task mix, an unknown sort column)."""


@dataclass(frozen=True)
class Candidate:
    """One ModelVersion to compare, with its model card."""

    name: str
    """The ModelVersion's name, e.g. "iris-classifier-v1"."""
    namespace: str
    pipeline: str
    model: str
    version: int
    stage: str
    """status.stage (what is served), else spec.stage."""
    card: Mapping[str, Any]
    """The model card; {} when it could not be read (`problem` says why)."""
    live: Mapping[str, Any] | None
    """status.liveMetrics, None before the monitor measured the version."""
    report_uri: str | None
    """spec.artifact.reportUri: the version's own training report."""
    problem: str | None = None
    """Why the card is missing or unreadable; shown beside the row."""


@dataclass(frozen=True)
class Column:
    """A column of the comparison: `name` is what --sort takes, `heading` what the table shows."""

    name: str
    heading: str
    kind: str
    """text, metric, baseline, seconds, latency, bytes, count or live: how a value is shown."""
    description: str
    higher_is_better: bool | None = None
    """The direction of "best"; None: not ranked (text, the baseline, the feature count)."""
    per_holdout: bool = False
    """Ranked only among versions judged on the same holdout (the holdout metrics)."""
    metric: str | None = None
    """The metric the column shows (metric, baseline and live columns)."""

    @property
    def numeric(self) -> bool:
        return self.kind != "text"


@dataclass(frozen=True)
class Row:
    """One version's values (None where the card lacks one) and the columns it is best in."""

    candidate: Candidate
    values: Mapping[str, Any]
    best: frozenset[str] = frozenset()
    holdout: str | None = None
    """The card's holdout.fingerprint."""
    live_metric: str | None = None
    live_samples: int | None = None

    def text(self, column: Column) -> str:
        """The cell as the table shows it, without the best marker."""
        if column.kind == "live" and self.values.get(column.name) is not None:
            samples = f" (n={self.live_samples})" if self.live_samples is not None else ""
            value = format_value(column, self.values[column.name])
            return f"{self.live_metric} {value}{samples}"
        return format_value(column, self.values.get(column.name))


@dataclass(frozen=True)
class Comparison:
    """The rows in display order, the columns, and what a reader must know before ranking."""

    rows: tuple[Row, ...]
    columns: tuple[Column, ...]
    task: str | None
    metric: str | None
    """The primary metric: the one the pipelines were scored on (the most common)."""
    sort: str
    """The column the rows are ordered by, best (or first) first."""
    holdouts: Mapping[str | None, tuple[str, ...]] = field(default_factory=dict)
    """holdout fingerprint (None: not recorded) → the versions judged on it."""
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def same_holdout(self) -> bool:
        """Whether every version with a card was judged on one and the same holdout."""
        return len(self.holdouts) <= 1 and None not in self.holdouts

    def column(self, name: str) -> Column:
        return next(column for column in self.columns if column.name == name)

    @property
    def holdout_details(self) -> Mapping[str, Mapping[str, Any]]:
        """fingerprint → the card's holdout record (strategy, test_size, seed, rows...)."""
        details: dict[str, Mapping[str, Any]] = {}
        for row in self.rows:
            holdout = row.candidate.card.get("holdout")
            if row.holdout and isinstance(holdout, Mapping):
                details.setdefault(row.holdout, holdout)
        return details


def compare(candidates: Sequence[Candidate], *, sort: str | None = None) -> Comparison:
    """Compare the versions: one row each, the best value of each column marked, sorted by
    `sort` (any column name; default: the primary metric, best first).

    ComparisonError when classification and regression models are mixed, or `sort` names no
    column.
    """
    task = _task(candidates)
    metric = _primary_metric(candidates, task)
    live_names = [
        live_metric_name(_mapping(_mapping(c.live).get("metrics")), metric) for c in candidates
    ]
    live = Counter(name for name in live_names if name).most_common(1)
    holdouts = _holdouts(candidates)
    columns = _columns(candidates, metric, live[0][0] if live else None, _split(holdouts))
    rows = [_row(c, columns, metric, name) for c, name in zip(candidates, live_names, strict=True)]
    rows = _mark_best(rows, columns)
    chosen = _sort_column(columns, sort, metric)
    return Comparison(
        rows=tuple(_sorted(rows, chosen, grouped=_split(holdouts))),
        columns=tuple(columns),
        task=task,
        metric=metric,
        sort=chosen.name,
        holdouts=holdouts,
        warnings=tuple(_holdout_warning(holdouts, rows)),
        notes=tuple(_metric_note(candidates, metric)),
    )


# --- what the cards say ----------------------------------------------------------------------


def _task(candidates: Sequence[Candidate]) -> str | None:
    tasks: dict[str, list[str]] = {}
    for candidate in candidates:
        if task := candidate.card.get("task"):
            tasks.setdefault(str(task), []).append(candidate.name)
    if len(tasks) > 1:
        listed = "; ".join(f"{task}: {', '.join(names)}" for task, names in sorted(tasks.items()))
        raise ComparisonError(
            f"cannot rank {' and '.join(sorted(tasks))} models against each other ({listed}); "
            "compare the versions of one task at a time, e.g. the pipelines of one FeatureSet"
        )
    return next(iter(tasks), None)


def _primary_metric(candidates: Sequence[Candidate], task: str | None) -> str | None:
    named = Counter(str(c.card["metric"]) for c in candidates if c.card.get("metric"))
    if named:
        return named.most_common(1)[0][0]  # ties: the first candidate's
    return default_metric(task) if task else None


def _metric_note(candidates: Sequence[Candidate], metric: str | None) -> list[str]:
    scored = {c.pipeline: str(c.card["metric"]) for c in candidates if c.card.get("metric")}
    if len(set(scored.values())) <= 1:
        return []
    listed = ", ".join(f"{pipeline}: {name}" for pipeline, name in sorted(scored.items()))
    return [f"The pipelines optimise different metrics ({listed}); the table ranks by {metric}."]


def _columns(
    candidates: Sequence[Candidate], metric: str | None, live_metric: str | None, split: bool
) -> list[Column]:
    """The columns: what a version is (and its holdout, when they differ), every holdout
    metric (the primary first, then in the usual order), the baseline, the footprint and the
    live metric most versions have."""
    names = {
        str(name)
        for c in candidates
        for name, value in _mapping(c.card.get("metrics")).items()
        if _number(value) is not None or value is None
    }
    ordered = sorted(
        names, key=lambda n: (n != metric, _METRIC_ORDER.get(n, len(_METRIC_ORDER)), n)
    )
    return [
        Column("version", "VERSION", "text", "the ModelVersion"),
        Column("pipeline", "PIPELINE", "text", "the TrainingPipeline that trained it"),
        Column("estimator", "ESTIMATOR", "text", "the scikit-learn estimator"),
        Column("stage", "STAGE", "text", "its stage in the registry (as served)"),
        *([Column("holdout", "HOLDOUT", "text", "the holdout's fingerprint")] if split else []),
        *[
            Column(
                name,
                name.upper(),
                "metric",
                f"{name} on the holdout" + (" (the pipelines' metric)" if name == metric else ""),
                _direction(name),
                per_holdout=True,
                metric=name,
            )
            for name in ordered
        ],
        Column(
            "baseline",
            "BASELINE",
            "baseline",
            f"a dummy model's {metric} on the holdout",
            metric=metric,
        ),
        Column("training", "TRAINING", "seconds", "training time of the run", False),
        Column("size", "SIZE", "bytes", "size of the model file", False),
        Column("latency", "LATENCY", "latency", "time to predict one row", False),
        Column("latency_1000", "LATENCY_1000", "latency", "time to predict 1000 rows", False),
        Column("features", "FEATURES", "count", "number of features the model reads"),
        Column(
            "live",
            "LIVE",
            "live",
            f"live {live_metric or 'metric'} on labelled requests",
            _direction(live_metric) if live_metric else None,
            metric=live_metric,
        ),
    ]


def _direction(metric: str) -> bool | None:
    try:
        return greater_is_better(metric)
    except ValueError:
        return None  # a metric this version of Conveyor does not know: shown, not ranked


def _row(
    candidate: Candidate, columns: Sequence[Column], metric: str | None, live_name: str | None
) -> Row:
    card = candidate.card
    metrics = _mapping(card.get("metrics"))
    footprint = _mapping(card.get("footprint"))
    features = footprint.get("features")
    if features is None and isinstance(card.get("feature_columns"), list):
        features = len(card["feature_columns"])
    live = _mapping(candidate.live)
    values: dict[str, Any] = {
        "version": candidate.name,
        "pipeline": candidate.pipeline or card.get("pipeline"),
        "estimator": card.get("estimator"),
        "stage": candidate.stage,
        "holdout": _fingerprint(card),
        "baseline": _number(_mapping(card.get("baseline")).get(metric or "")),
        "training": _number(
            footprint.get("training_seconds", _mapping(card.get("training")).get("seconds"))
        ),
        "size": _number(footprint.get("model_bytes")),
        "latency": _number(footprint.get("latency_one_row_seconds")),
        "latency_1000": _number(footprint.get("latency_1000_rows_seconds")),
        "features": _number(features),
        "live": _number(_mapping(live.get("metrics")).get(live_name)) if live_name else None,
    }
    for column in columns:
        if column.kind == "metric":
            values[column.name] = _number(metrics.get(column.name))
    samples = live.get("labelledSamples")
    return Row(
        candidate=candidate,
        values=values,
        holdout=_fingerprint(card),
        live_metric=live_name,
        live_samples=int(samples) if isinstance(samples, int) and live_name else None,
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


# --- fairness and ranking --------------------------------------------------------------------


def _fingerprint(card: Mapping[str, Any]) -> str | None:
    fingerprint = _mapping(card.get("holdout")).get("fingerprint")
    return str(fingerprint) if fingerprint else None


def _holdouts(candidates: Sequence[Candidate]) -> dict[str | None, tuple[str, ...]]:
    """fingerprint → the versions judged on it (None: cards without one; no card: left out)."""
    groups: dict[str | None, list[str]] = {}
    for candidate in candidates:
        if candidate.card:
            groups.setdefault(_fingerprint(candidate.card), []).append(candidate.name)
    return {fingerprint: tuple(names) for fingerprint, names in groups.items()}


def _split(holdouts: Mapping[str | None, tuple[str, ...]]) -> bool:
    """Whether some of two or more versions with cards may not share a holdout."""
    judged = sum(len(names) for names in holdouts.values())
    return judged >= 2 and (len(holdouts) > 1 or None in holdouts)


def _holdout_warning(
    holdouts: Mapping[str | None, tuple[str, ...]], rows: Sequence[Row]
) -> list[str]:
    if not _split(holdouts):
        return []
    cards = {
        row.holdout: _mapping(row.candidate.card.get("holdout")) for row in rows if row.holdout
    }
    groups = []
    for fingerprint, names in holdouts.items():
        if fingerprint is None:
            groups.append(f"no holdout recorded in the card (an older card): {', '.join(names)}")
        else:
            groups.append(
                f"{describe_holdout(fingerprint, cards[fingerprint])}: {', '.join(names)}"
            )
    return [
        "These versions were not all judged on the same holdout rows, so their holdout metrics "
        "are not comparable across groups; the best holdout values are marked only within a "
        "group that shares a holdout. " + "; ".join(groups) + "."
    ]


def _mark_best(rows: Sequence[Row], columns: Sequence[Column]) -> list[Row]:
    best: dict[int, set[str]] = {i: set() for i in range(len(rows))}
    for column in columns:
        if column.higher_is_better is None:
            continue
        for members in _rank_groups(rows, column):
            for i in _best_of(rows, members, column):
                best[i].add(column.name)
    return [
        Row(r.candidate, r.values, frozenset(best[i]), r.holdout, r.live_metric, r.live_samples)
        for i, r in enumerate(rows)
    ]


def _rank_groups(rows: Sequence[Row], column: Column) -> list[list[int]]:
    """The sets of rows whose values in `column` may be ranked against each other."""
    if column.per_holdout:
        groups: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            if row.holdout is not None:
                groups.setdefault(row.holdout, []).append(i)
        return list(groups.values())
    if column.kind == "live":  # only the versions measured on the column's live metric
        return [[i for i, row in enumerate(rows) if row.live_metric == column.metric]]
    return [list(range(len(rows)))]


def _best_of(rows: Sequence[Row], members: Sequence[int], column: Column) -> list[int]:
    valued: list[tuple[int, float]] = [
        (i, value) for i in members if (value := rows[i].values.get(column.name)) is not None
    ]
    if len(valued) < 2:
        return []  # nothing to be best against
    pick = max if column.higher_is_better else min
    top = pick(value for _, value in valued)
    tied = [i for i, value in valued if math.isclose(value, top, rel_tol=1e-12, abs_tol=1e-15)]
    return tied if len(tied) < len(valued) else []  # all equal: the column tells them not apart


# --- order -----------------------------------------------------------------------------------

_ALIASES = {
    "name": "version",
    "time": "training",
    "training_seconds": "training",
    "model_bytes": "size",
    "latency_1": "latency",
    "latency_one_row": "latency",
    "latency_1000_rows": "latency_1000",
}


def _sort_column(columns: Sequence[Column], sort: str | None, metric: str | None) -> Column:
    by_name = {column.name: column for column in columns}
    if sort is None:
        return by_name.get(metric or "", by_name["version"])
    key = sort.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in by_name:
        valid = ", ".join(by_name)
        raise ComparisonError(
            f'cannot sort by "{sort}": there is no such column; use one of {valid}'
        )
    return by_name[key]


def _sorted(rows: Sequence[Row], column: Column, *, grouped: bool) -> list[Row]:
    """Best first for ranked columns, ascending otherwise, missing values last, ties by name.

    By a holdout metric when the holdouts differ, the versions of one holdout stay together
    (the group with the best value first): an order across holdouts would be a ranking.
    """
    by_name = sorted(rows, key=lambda r: (r.candidate.model, r.candidate.version, r.candidate.name))
    if column.name == "version":
        return by_name
    if not column.numeric:
        return sorted(by_name, key=lambda r: (_value(r, column) is None, str(_value(r, column))))
    sign = -1.0 if column.higher_is_better else 1.0

    def rank(row: Row) -> tuple[bool, float]:
        value = _value(row, column)
        return (value is None, sign * value if value is not None else 0.0)

    if not (grouped and column.per_holdout):
        return sorted(by_name, key=rank)
    group_rank: dict[str | None, tuple[bool, float]] = {}
    for row in sorted(by_name, key=rank):
        group_rank.setdefault(row.holdout, rank(row))
    group_rank[None] = (True, math.inf)  # versions without a holdout: last
    return sorted(by_name, key=lambda r: (group_rank[r.holdout], r.holdout or "", rank(r)))


def _value(row: Row, column: Column) -> Any:
    return row.values.get(column.name)
