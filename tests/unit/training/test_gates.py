"""Validation gates: each passes or fails with a message that states the value and the bound."""

from __future__ import annotations

import math
from typing import Any

import pytest

from conveyor.api.v1alpha1.modelversion import GateResult
from conveyor.api.v1alpha1.trainingpipeline import Gates
from conveyor.training.gates import GateOutcome, evaluate_gates, rejection_reasons

METRICS = {"accuracy": 0.912, "f1_macro": 0.9, "roc_auc": 0.97, "log_loss": 0.31}


def gates(**wire: Any) -> Gates:
    return Gates.model_validate(wire)


def outcomes(spec: Gates, **overrides: Any) -> dict[str, GateOutcome]:
    arguments: dict[str, Any] = {
        "metric": "f1_macro",
        "metrics": METRICS,
        "champion_score": None,
        "training_seconds": 12.34,
        "model_bytes": 1000,
    }
    arguments.update(overrides)
    return {outcome.name: outcome for outcome in evaluate_gates(spec, **arguments)}


def test_no_gates_configured_means_no_outcomes() -> None:
    assert (
        evaluate_gates(
            Gates(),
            metric="accuracy",
            metrics=METRICS,
            champion_score=0.99,
            training_seconds=1e6,
            model_bytes=10**12,
        )
        == []
    )


def test_thresholds_pass_and_fail_on_each_side() -> None:
    result = outcomes(
        gates(
            thresholds=[
                {"metric": "accuracy", "min": 0.85},
                {"metric": "f1_macro", "min": 0.95},
                {"metric": "log_loss", "max": 0.5},
                {"metric": "roc_auc", "min": 0.5, "max": 0.9},
            ]
        )
    )
    assert result["threshold:accuracy:min"] == GateOutcome(
        "threshold:accuracy:min", True, "accuracy 0.912 >= 0.85"
    )
    assert result["threshold:f1_macro:min"] == GateOutcome(
        "threshold:f1_macro:min", False, "f1_macro 0.9 is below the minimum 0.95"
    )
    assert result["threshold:log_loss:max"] == GateOutcome(
        "threshold:log_loss:max", True, "log_loss 0.31 <= 0.5"
    )
    assert result["threshold:roc_auc:min"].passed
    assert result["threshold:roc_auc:max"] == GateOutcome(
        "threshold:roc_auc:max", False, "roc_auc 0.97 is above the maximum 0.9"
    )


def test_a_value_just_under_the_bound_shows_the_digits_that_differ() -> None:
    result = outcomes(
        gates(thresholds=[{"metric": "accuracy", "min": 0.85}]), metrics={"accuracy": 0.849996}
    )
    assert result["threshold:accuracy:min"].message == "accuracy 0.849996 is below the minimum 0.85"


def test_a_metric_that_was_not_computed_or_is_nan_fails_its_threshold() -> None:
    result = outcomes(
        gates(thresholds=[{"metric": "roc_auc", "min": 0.8}, {"metric": "accuracy", "min": 0.8}]),
        metrics={"accuracy": math.nan},
    )
    assert result["threshold:roc_auc:min"] == GateOutcome(
        "threshold:roc_auc:min", False, "roc_auc was not computed for this model"
    )
    assert not result["threshold:accuracy:min"].passed
    assert "not a finite number" in result["threshold:accuracy:min"].message


def test_beating_production_when_higher_is_better() -> None:
    spec = gates(beatProductionBy=0.01)
    won = outcomes(spec, champion_score=0.88)["beatProduction"]
    assert won.passed
    assert won.message == "f1_macro 0.9 beats Production 0.88 by 0.02 >= 0.01"
    lost = outcomes(spec, champion_score=0.93)["beatProduction"]
    assert lost == GateOutcome(
        "beatProduction", False, "f1_macro 0.9 does not beat Production 0.93 by 0.01"
    )
    too_close = outcomes(spec, champion_score=0.895)["beatProduction"]
    assert not too_close.passed


def test_beating_production_when_lower_is_better() -> None:
    spec = gates(beatProductionBy=1.0)
    metrics = {"rmse": 52.0, "mae": 40.0}
    won = outcomes(spec, metric="rmse", metrics=metrics, champion_score=55.0)["beatProduction"]
    assert won.passed
    assert won.message == "rmse 52 beats Production 55 by 3 >= 1 (lower is better)"
    lost = outcomes(spec, metric="rmse", metrics=metrics, champion_score=52.5)["beatProduction"]
    assert lost == GateOutcome(
        "beatProduction", False, "rmse 52 does not beat Production 52.5 by 1 (lower is better)"
    )
    worse = outcomes(spec, metric="rmse", metrics=metrics, champion_score=50.0)["beatProduction"]
    assert not worse.passed


def test_a_tie_beats_production_with_a_zero_margin_and_no_champion_passes() -> None:
    spec = gates(beatProductionBy=0.0)
    assert outcomes(spec, champion_score=0.9)["beatProduction"].passed
    first = outcomes(spec, champion_score=None)["beatProduction"]
    assert first == GateOutcome("beatProduction", True, "no Production version to beat")


def test_training_time_and_model_size_limits() -> None:
    spec = gates(maxTrainingSeconds=600, maxModelBytes=2_000_000)
    fine = outcomes(spec, training_seconds=12.34, model_bytes=1_500_000)
    assert fine["maxTrainingSeconds"] == GateOutcome(
        "maxTrainingSeconds", True, "training took 12.3 s <= 600 s"
    )
    assert fine["maxModelBytes"] == GateOutcome(
        "maxModelBytes", True, "the model file of 1500000 bytes <= 2000000 bytes"
    )
    over = outcomes(spec, training_seconds=700.26, model_bytes=3_000_000)
    assert over["maxTrainingSeconds"].message == "training took 700.3 s is over the limit of 600 s"
    assert not over["maxTrainingSeconds"].passed
    assert over["maxModelBytes"].message == (
        "the model file of 3000000 bytes is over the limit of 2000000 bytes"
    )
    assert not over["maxModelBytes"].passed


def test_rejection_reasons_list_only_the_failed_gates_and_outcomes_fit_the_api() -> None:
    result = evaluate_gates(
        gates(
            thresholds=[{"metric": "accuracy", "min": 0.95}], beatProductionBy=0.0, maxModelBytes=10
        ),
        metric="accuracy",
        metrics=METRICS,
        champion_score=0.5,
        training_seconds=3.0,
        model_bytes=100,
    )
    assert [outcome.name for outcome in result] == [
        "threshold:accuracy:min",
        "beatProduction",
        "maxModelBytes",
    ]
    assert rejection_reasons(result) == [
        "threshold:accuracy:min: accuracy 0.912 is below the minimum 0.95",
        "maxModelBytes: the model file of 100 bytes is over the limit of 10 bytes",
    ]
    for outcome in result:
        assert GateResult.model_validate(outcome.to_wire()).to_wire() == outcome.to_wire()


@pytest.mark.parametrize("metric", ["log_loss", "mae", "mape"])
def test_every_loss_compares_lower_as_better(metric: str) -> None:
    result = outcomes(
        gates(beatProductionBy=0.0), metric=metric, metrics={metric: 0.2}, champion_score=0.3
    )
    assert result["beatProduction"].passed
