"""Validation gates: whether a trained model may be registered as a Candidate, or is Rejected.

Each configured gate gives one outcome whose message states the measured value against the bound,
so a Rejected ModelVersion says what to improve:

- `threshold:<metric>:min` / `threshold:<metric>:max`: a holdout metric within a bound;
- `beatProduction`: the pipeline's metric beats the current Production version, scored on this
  run's holdout rows, by at least `beatProductionBy` (a tie passes a margin of 0); passes when
  there is no Production version yet;
- `maxTrainingSeconds`: training, search included, finished in time;
- `maxModelBytes`: the model file is small enough.

A metric that was not computed (say roc_auc of a model without probabilities) or is not a number
fails its gate: a bound that cannot be checked is not met.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from conveyor.api.v1alpha1.trainingpipeline import Gates

from .metrics import greater_is_better

__all__ = ["GateOutcome", "evaluate_gates", "rejection_reasons"]


@dataclass(frozen=True)
class GateOutcome:
    """The outcome of one gate; mirrors the API's GateResult."""

    name: str
    passed: bool
    message: str

    def to_wire(self) -> dict[str, object]:
        return {"name": self.name, "passed": self.passed, "message": self.message}


def evaluate_gates(
    gates: Gates,
    *,
    metric: str,
    metrics: Mapping[str, float],
    champion_score: float | None,
    training_seconds: float,
    model_bytes: int,
) -> list[GateOutcome]:
    """The outcome of every configured gate, in the order listed in the module docstring."""
    outcomes = []
    for threshold in gates.thresholds:
        value = metrics.get(threshold.metric)
        if threshold.min is not None:
            outcomes.append(_bound(threshold.metric, value, threshold.min, "min"))
        if threshold.max is not None:
            outcomes.append(_bound(threshold.metric, value, threshold.max, "max"))
    if gates.beat_production_by is not None:
        outcomes.append(
            _beat_production(metric, metrics.get(metric), champion_score, gates.beat_production_by)
        )
    if gates.max_training_seconds is not None:
        limit = gates.max_training_seconds
        passed = training_seconds <= limit
        verdict = f"<= {limit} s" if passed else f"is over the limit of {limit} s"
        message = f"training took {training_seconds:.1f} s {verdict}"
        outcomes.append(GateOutcome("maxTrainingSeconds", passed, message))
    if gates.max_model_bytes is not None:
        limit = gates.max_model_bytes
        passed = model_bytes <= limit
        verdict = f"<= {limit} bytes" if passed else f"is over the limit of {limit} bytes"
        outcomes.append(
            GateOutcome("maxModelBytes", passed, f"the model file of {model_bytes} bytes {verdict}")
        )
    return outcomes


def rejection_reasons(outcomes: Iterable[GateOutcome]) -> list[str]:
    """One sentence per failed gate, e.g. "threshold:accuracy:min: accuracy 0.8 is below ..."."""
    return [f"{outcome.name}: {outcome.message}" for outcome in outcomes if not outcome.passed]


def _bound(metric: str, value: float | None, bound: float, side: str) -> GateOutcome:
    name = f"threshold:{metric}:{side}"
    missing = _missing(metric, value)
    if missing:
        return GateOutcome(name, False, missing)
    assert value is not None
    shown = _number(value, against=bound)
    if side == "min":
        passed = value >= bound
        text = f">= {_number(bound)}" if passed else f"is below the minimum {_number(bound)}"
    else:
        passed = value <= bound
        text = f"<= {_number(bound)}" if passed else f"is above the maximum {_number(bound)}"
    return GateOutcome(name, passed, f"{metric} {shown} {text}")


def _beat_production(
    metric: str, value: float | None, champion: float | None, margin: float
) -> GateOutcome:
    name = "beatProduction"
    if champion is None:
        return GateOutcome(name, True, "no Production version to beat")
    missing = _missing(metric, value)
    if missing:
        return GateOutcome(name, False, missing)
    assert value is not None
    higher = greater_is_better(metric)
    gain = value - champion if higher else champion - value
    direction = "" if higher else " (lower is better)"
    shown = _number(value, against=champion)
    production = _number(champion, against=value)
    if math.isfinite(champion) and gain >= margin:
        return GateOutcome(
            name,
            True,
            f"{metric} {shown} beats Production {production} by "
            f"{_number(gain)} >= {_number(margin)}{direction}",
        )
    return GateOutcome(
        name,
        False,
        f"{metric} {shown} does not beat Production {production} by {_number(margin)}{direction}",
    )


def _missing(metric: str, value: float | None) -> str | None:
    if value is None:
        return f"{metric} was not computed for this model"
    if not math.isfinite(value):
        return f"{metric} is {value}, not a finite number"
    return None


def _number(value: float, *, against: float | None = None) -> str:
    """Short, but with the digits that tell `value` apart from the bound it is compared with."""
    for digits in range(3, 16):
        text = f"{value:.{digits}g}"
        if against is None or value == against or text != f"{against:.{digits}g}":
            return text
    return repr(value)
