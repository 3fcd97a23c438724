"""Comparing model versions: ranks within one holdout, marks the best value of each column in
the direction that is better, and says when versions were judged on different rows."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)
from sklearn.model_selection import train_test_split

from conveyor.training.artifacts import dump_model
from conveyor.training.comparison import (
    MISSING,
    Candidate,
    Column,
    ComparisonError,
    compare,
    format_value,
)
from conveyor.training.comparison_text import render_text
from conveyor.training.metrics import baseline, evaluate
from conveyor.training.report import feature_importance

FINGERPRINT = "5e0c4f8a9d1b2c3e"
IRIS_FEATURES = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]


# --- cards as the training Job writes them ---------------------------------------------------


def fitted_card(
    estimator: Any,
    *,
    dataset: str = "iris",
    model: str,
    pipeline: str,
    metric: str,
    seed: int = 42,
    fingerprint: str | None = FINGERPRINT,
) -> dict[str, Any]:
    """The card of `estimator` fitted on iris or diabetes, in the format of issue 12's
    contract: metrics and baseline on the holdout, holdout, footprint and evaluation."""
    task = "classification" if dataset == "iris" else "regression"
    bunch = load_iris() if dataset == "iris" else load_diabetes()
    X, y = bunch.data, bunch.target
    columns = IRIS_FEATURES if dataset == "iris" else list(bunch.feature_names)
    if dataset == "iris":
        y = np.asarray(bunch.target_names)[bunch.target]
    stratify = y if task == "classification" else None
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=seed, stratify=stratify
    )
    started = time.perf_counter()
    estimator.fit(X_train, y_train)
    seconds = time.perf_counter() - started
    report = evaluate(task, estimator, X_test, y_test)
    metrics = {k: v for k, v in report.items() if not isinstance(v, dict)}
    evaluation: dict[str, Any] = {
        "feature_importance": feature_importance(estimator, X_test, y_test, columns)
    }
    if task == "classification":
        evaluation |= {
            "confusion_matrix": report["confusion_matrix"],
            **_curves(estimator, X_test, y_test),
        }
    else:
        evaluation["residuals"] = report["residuals"]
    holdout = {
        "strategy": "holdout",
        "test_size": 0.25,
        "seed": seed,
        "stratified": task == "classification",
        "assigned_by": "row values",
        "rows": len(X_test),
        "fingerprint": fingerprint,
    }
    return {
        "format": 1,
        "kind": "ModelCard",
        "model": model,
        "version": 1,
        "task": task,
        "estimator": type(estimator).__name__,
        "params": estimator.get_params(),
        "metric": metric,
        "score": metrics[metric],
        "metrics": metrics,
        "baseline": baseline(task, X_train, y_train, X_test, y_test),
        "pipeline": pipeline,
        "run": f"{pipeline}-20260301-120000-1",
        "featureset": dataset,
        "snapshot": "3f2a9c",
        "feature_columns": columns,
        "training": {"seconds": seconds},
        "holdout": holdout if fingerprint else None,
        "footprint": {
            "training_seconds": seconds,
            "model_bytes": len(dump_model(estimator)),
            "onnx_bytes": None,
            "features": X.shape[1],
            "runtime": "sklearn",
            "latency_one_row_seconds": _latency(estimator, X_test[:1]),
            "latency_1000_rows_seconds": _latency(estimator, X_test[np.arange(1000) % len(X_test)]),
        },
        "evaluation": evaluation,
    }


def _latency(estimator: Any, rows: Any) -> float:
    started = time.perf_counter()
    estimator.predict(rows)
    return time.perf_counter() - started


def _curves(estimator: Any, X: Any, y: Any) -> dict[str, list[dict[str, Any]]]:
    """One-vs-rest ROC and precision-recall curves per class (the contract's shape)."""
    scores = estimator.predict_proba(X)
    truth = np.column_stack([np.asarray(y) == label for label in estimator.classes_])
    roc, pr = [], []
    for i, label in enumerate(estimator.classes_):
        fpr, tpr, _ = roc_curve(truth[:, i], scores[:, i])
        precision, recall, _ = precision_recall_curve(truth[:, i], scores[:, i])
        roc.append(
            {
                "label": str(label),
                "fpr": fpr.tolist(),
                "tpr": tpr.tolist(),
                "auc": float(roc_auc_score(truth[:, i], scores[:, i])),
            }
        )
        pr.append(
            {
                "label": str(label),
                "recall": recall.tolist(),
                "precision": precision.tolist(),
                "average_precision": float(average_precision_score(truth[:, i], scores[:, i])),
            }
        )
    return {"roc": roc, "precision_recall": pr}


def candidate(
    card: Mapping[str, Any],
    *,
    name: str | None = None,
    stage: str = "Candidate",
    live: Mapping[str, Any] | None = None,
    problem: str | None = None,
) -> Candidate:
    model = str(card.get("model", "iris-classifier"))
    version = int(card.get("version") or 1)
    return Candidate(
        name=name or f"{model}-v{version}",
        namespace="default",
        pipeline=str(card.get("pipeline", "iris")),
        model=model,
        version=version,
        stage=stage,
        card=card,
        live=live,
        report_uri=f"s3://conveyor/models/{model}/{version}/report.html",
        problem=problem,
    )


def iris_candidates() -> list[Candidate]:
    forest = fitted_card(
        RandomForestClassifier(n_estimators=30, random_state=7),
        model="iris-classifier",
        pipeline="iris",
        metric="f1_macro",
    )
    logistic = fitted_card(
        LogisticRegression(max_iter=500),
        model="iris-logistic",
        pipeline="iris-logistic",
        metric="f1_macro",
    )
    return [candidate(forest, stage="Production"), candidate(logistic)]


def diabetes_candidates() -> list[Candidate]:
    forest = fitted_card(
        RandomForestRegressor(n_estimators=30, random_state=7),
        dataset="diabetes",
        model="diabetes-forest",
        pipeline="diabetes-forest",
        metric="rmse",
    )
    ridge = fitted_card(
        Ridge(alpha=1.0), dataset="diabetes", model="diabetes", pipeline="diabetes", metric="rmse"
    )
    return [candidate(forest), candidate(ridge, stage="Production")]


def literal_card(
    model: str,
    version: int,
    metrics: Mapping[str, float],
    *,
    metric: str = "f1_macro",
    fingerprint: str | None = FINGERPRINT,
    footprint: Mapping[str, Any] | None = None,
    task: str = "classification",
) -> dict[str, Any]:
    return {
        "model": model,
        "version": version,
        "task": task,
        "estimator": "RandomForestClassifier",
        "metric": metric,
        "score": metrics.get(metric),
        "metrics": dict(metrics),
        "baseline": {name: 0.1667 for name in metrics},
        "pipeline": model,
        "feature_columns": IRIS_FEATURES,
        "training": {"seconds": 2.5},
        **({"holdout": {"fingerprint": fingerprint, "rows": 38}} if fingerprint else {}),
        **({"footprint": dict(footprint)} if footprint is not None else {}),
    }


def footprint(seconds: float, size: int, one: float, thousand: float) -> dict[str, Any]:
    return {
        "training_seconds": seconds,
        "model_bytes": size,
        "features": 4,
        "latency_one_row_seconds": one,
        "latency_1000_rows_seconds": thousand,
    }


def names(rows: Sequence[Any]) -> list[str]:
    return [row.candidate.name for row in rows]


def best(comparison: Any, column: str) -> list[str]:
    return [row.candidate.name for row in comparison.rows if column in row.best]


# --- ranking ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted() -> list[Candidate]:
    return iris_candidates()


def test_two_fitted_iris_models_on_one_holdout_are_ranked_without_a_warning(
    fitted: list[Candidate],
) -> None:
    comparison = compare(fitted)
    assert comparison.task == "classification" and comparison.metric == "f1_macro"
    assert comparison.same_holdout and comparison.warnings == ()
    assert comparison.sort == "f1_macro"
    scores = [row.values["f1_macro"] for row in comparison.rows]
    assert scores == sorted(scores, reverse=True)  # best first
    # the union of the cards' metrics, the primary first
    metric_columns = [c.name for c in comparison.columns if c.kind == "metric"]
    assert metric_columns[0] == "f1_macro"
    assert {"accuracy", "roc_auc", "log_loss", "balanced_accuracy"} <= set(metric_columns)
    for column in ("f1_macro", "log_loss", "size", "latency"):
        assert best(comparison, column), column  # someone is best in each ranked column
    baseline_values = {row.values["baseline"] for row in comparison.rows}
    assert len(baseline_values) == 1  # one holdout, one dummy


def test_the_best_value_of_each_column_is_marked_in_its_direction() -> None:
    comparison = compare(
        [
            candidate(
                literal_card(
                    "forest",
                    1,
                    {"f1_macro": 0.97, "log_loss": 0.20},
                    footprint=footprint(4.0, 900_000, 0.004, 0.02),
                )
            ),
            candidate(
                literal_card(
                    "logistic",
                    1,
                    {"f1_macro": 0.95, "log_loss": 0.10},
                    footprint=footprint(0.3, 2_000, 0.0002, 0.001),
                )
            ),
        ]
    )
    assert best(comparison, "f1_macro") == ["forest-v1"]  # higher is better
    assert best(comparison, "log_loss") == ["logistic-v1"]  # a loss: lower is better
    for column in ("training", "size", "latency", "latency_1000"):
        assert best(comparison, column) == ["logistic-v1"], column  # lower is better
    assert best(comparison, "baseline") == [] and best(comparison, "features") == []
    assert names(comparison.rows) == ["forest-v1", "logistic-v1"]


def test_losses_rank_lowest_first_in_regression() -> None:
    comparison = compare(diabetes_candidates())
    assert comparison.task == "regression" and comparison.metric == "rmse"
    rmse = [row.values["rmse"] for row in comparison.rows]
    assert rmse == sorted(rmse)  # the lowest error first
    assert best(comparison, "rmse") == [comparison.rows[0].candidate.name]
    assert best(comparison, "r2") == [comparison.rows[0].candidate.name]  # r2: higher is better


def test_equal_best_values_are_all_marked_and_a_column_of_equals_not_at_all() -> None:
    cards = [
        literal_card("a", 1, {"accuracy": 1.0, "f1_macro": 1.0}),
        literal_card("b", 1, {"accuracy": 1.0, "f1_macro": 0.9}),
        literal_card("c", 1, {"accuracy": 0.9, "f1_macro": 0.9}),
    ]
    comparison = compare([candidate(card) for card in cards])
    assert best(comparison, "accuracy") == ["a-v1", "b-v1"]
    assert best(comparison, "training") == []  # 2.5 s each: nothing to tell apart


def test_one_version_alone_is_best_at_nothing() -> None:
    comparison = compare(
        [candidate(literal_card("a", 1, {"f1_macro": 0.9}, footprint=footprint(1, 2, 3, 4)))]
    )
    assert comparison.rows[0].best == frozenset()


# --- fairness --------------------------------------------------------------------------------


def test_versions_on_different_holdouts_are_not_ranked_across_them() -> None:
    cards = [
        literal_card("forest", 1, {"f1_macro": 0.97}, fingerprint="aaaaaaaaaaaaaaaa"),
        literal_card("forest", 2, {"f1_macro": 0.93}, fingerprint="aaaaaaaaaaaaaaaa"),
        literal_card("logistic", 1, {"f1_macro": 0.99}, fingerprint="bbbbbbbbbbbbbbbb"),
    ]
    comparison = compare([candidate(card) for card in cards])
    assert not comparison.same_holdout
    assert comparison.holdouts == {
        "aaaaaaaaaaaaaaaa": ("forest-v1", "forest-v2"),
        "bbbbbbbbbbbbbbbb": ("logistic-v1",),
    }
    # ranked within the group that shares a holdout; the lone logistic is best at nothing
    assert best(comparison, "f1_macro") == ["forest-v1"]
    (warning,) = comparison.warnings
    assert "not all judged on the same holdout" in warning
    assert "holdout aaaaaaaaaaaaaaaa (rows 38): forest-v1, forest-v2" in warning
    assert "holdout bbbbbbbbbbbbbbbb (rows 38): logistic-v1" in warning
    text = render_text(comparison)
    assert "warning: These versions were not all judged on the same holdout" in text
    assert "only among versions judged on the same holdout" in text
    assert "HOLDOUT" in table_lines(text)[0]  # which row was judged on which holdout
    # sorted by a holdout metric, one holdout's versions stay together: no order across them
    assert names(comparison.rows) == ["logistic-v1", "forest-v1", "forest-v2"]
    assert [row.holdout for row in compare([candidate(c) for c in reversed(cards)]).rows] == [
        "bbbbbbbbbbbbbbbb",
        "aaaaaaaaaaaaaaaa",
        "aaaaaaaaaaaaaaaa",
    ]
    worse = literal_card("logistic", 2, {"f1_macro": 0.95}, fingerprint="bbbbbbbbbbbbbbbb")
    grouped = compare([candidate(card) for card in [*cards, worse]])
    assert names(grouped.rows) == ["logistic-v1", "logistic-v2", "forest-v1", "forest-v2"]
    assert best(grouped, "f1_macro") == ["logistic-v1", "forest-v1"]


def test_a_card_without_a_holdout_is_named_and_never_ranked() -> None:
    cards = [
        literal_card("forest", 1, {"f1_macro": 0.97}),
        literal_card("old", 1, {"f1_macro": 0.99}, fingerprint=None),
    ]
    comparison = compare([candidate(card) for card in cards])
    (warning,) = comparison.warnings
    assert "no holdout recorded in the card (an older card): old-v1" in warning
    assert best(comparison, "f1_macro") == []


def test_footprint_is_ranked_across_holdouts() -> None:
    cards = [
        literal_card(
            "a",
            1,
            {"f1_macro": 0.9},
            fingerprint="aaaaaaaaaaaaaaaa",
            footprint=footprint(1, 10, 0.1, 1),
        ),
        literal_card(
            "b",
            1,
            {"f1_macro": 0.8},
            fingerprint="bbbbbbbbbbbbbbbb",
            footprint=footprint(2, 20, 0.2, 2),
        ),
    ]
    comparison = compare([candidate(card) for card in cards])
    assert best(comparison, "size") == ["a-v1"] and best(comparison, "f1_macro") == []


def test_a_task_mix_is_refused_with_what_to_do(fitted: list[Candidate]) -> None:
    regression = candidate(
        literal_card("diabetes", 1, {"rmse": 53.0}, metric="rmse", task="regression")
    )
    with pytest.raises(ComparisonError) as error:
        compare([*fitted, regression])
    message = str(error.value)
    assert "classification and regression" in message
    assert "regression: diabetes-v1" in message
    assert "one task at a time" in message


def test_pipelines_scored_on_different_metrics_are_ranked_by_the_most_common() -> None:
    cards = [
        literal_card("a", 1, {"f1_macro": 0.9, "accuracy": 0.95}),
        literal_card("b", 1, {"f1_macro": 0.95, "accuracy": 0.9}),
        literal_card("c", 1, {"f1_macro": 0.8, "accuracy": 0.99}, metric="accuracy"),
    ]
    comparison = compare([candidate(card) for card in cards])
    assert comparison.metric == "f1_macro" and names(comparison.rows)[0] == "b-v1"
    assert (
        "optimise different metrics (a: f1_macro, b: f1_macro, c: accuracy)" in comparison.notes[0]
    )


# --- sorting ---------------------------------------------------------------------------------


@pytest.fixture
def three() -> list[Candidate]:
    return [
        candidate(
            literal_card("b", 2, {"f1_macro": 0.90}, footprint=footprint(9.0, 300, 0.003, 0.2))
        ),
        candidate(
            literal_card("a", 1, {"f1_macro": 0.95}, footprint=footprint(1.0, 200, 0.001, 0.3))
        ),
        candidate(
            literal_card("c", 3, {"f1_macro": 0.80}, footprint=footprint(5.0, 100, 0.002, 0.1))
        ),
    ]


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        (None, ["a-v1", "b-v2", "c-v3"]),
        ("f1_macro", ["a-v1", "b-v2", "c-v3"]),
        ("size", ["c-v3", "a-v1", "b-v2"]),
        ("latency", ["a-v1", "c-v3", "b-v2"]),
        ("latency_1000", ["c-v3", "b-v2", "a-v1"]),
        ("training", ["a-v1", "c-v3", "b-v2"]),
        ("TIME", ["a-v1", "c-v3", "b-v2"]),
        ("version", ["a-v1", "b-v2", "c-v3"]),
    ],
)
def test_sort_takes_any_column_best_first(
    three: list[Candidate], sort: str | None, order: list[str]
) -> None:
    assert names(compare(three, sort=sort).rows) == order


def test_missing_values_sort_last(three: list[Candidate]) -> None:
    old = candidate(literal_card("d", 1, {"f1_macro": 0.99}))
    assert names(compare([*three, old], sort="size").rows)[-1] == "d-v1"


def test_an_unknown_sort_column_lists_the_valid_ones(three: list[Candidate]) -> None:
    with pytest.raises(ComparisonError) as error:
        compare(three, sort="speed")
    message = str(error.value)
    assert 'cannot sort by "speed"' in message
    for column in ("version", "f1_macro", "size", "latency", "latency_1000", "training", "live"):
        assert column in message


# --- the text table --------------------------------------------------------------------------


def table_lines(text: str) -> list[str]:
    return text.split("\n\n")[0].splitlines()


def cell(text: str, row: int, heading: str) -> str:
    """The cell under `heading` in `row` (1: the first row after the header)."""
    lines = table_lines(text)
    header = lines[0]
    start = header.index(heading)
    # columns are separated by two spaces; a right-aligned number ends where its heading does
    spans = [m.span() for m in re.finditer(r"\S+(?: \S+)*", lines[row])]
    end = start + len(heading)
    return next(lines[row][a:b] for a, b in spans if a <= end and b >= start)


def test_the_table_is_aligned_marked_and_formatted(fitted: list[Candidate]) -> None:
    text = render_text(compare(fitted))
    lines = table_lines(text)
    header = lines[0].split()
    assert header[:5] == ["VERSION", "PIPELINE", "ESTIMATOR", "STAGE", "F1_MACRO"]
    for heading in ("BASELINE", "TRAINING", "SIZE", "LATENCY", "LATENCY_1000", "FEATURES", "LIVE"):
        assert heading in header
    # numbers are right-aligned under their heading, with a place for the marker
    f1_end = lines[0].index("F1_MACRO") + len("F1_MACRO")
    for line in lines[1:]:
        assert line[f1_end - 1].isdigit() or line[f1_end - 1] == "*" or line[f1_end] == "*"
    assert re.search(r"\d\.\d{4}\*", lines[1])  # the first row is best at the primary metric
    assert re.search(r"\d+\.\d (KiB|MiB)", text)
    assert re.search(r"\d+\.\d+ ms", text)
    assert "Every version was judged on the same holdout 5e0c4f8a9d1b2c3e" in text
    assert "warning" not in text and "HOLDOUT" not in text


@pytest.mark.parametrize(
    ("kind", "value", "text"),
    [
        ("metric", 0.973684, "0.9737"),
        ("metric", 5312.25, "5,312.2"),
        ("latency", 0.0000123, "12.3 µs"),
        ("latency", 0.000123, "0.12 ms"),
        ("latency", 0.0042, "4.20 ms"),
        ("latency", 0.25, "250.0 ms"),
        ("latency", 2.5, "2.50 s"),
        ("seconds", 0.031, "31.0 ms"),
        ("seconds", 3.2, "3.20 s"),
        ("seconds", 42.0, "42.0 s"),
        ("seconds", 1800.0, "30.0 min"),
        ("bytes", 512, "512 B"),
        ("bytes", 9_318, "9.1 KiB"),
        ("bytes", 1_363_148, "1.3 MiB"),
        ("count", 4.0, "4"),
        ("text", "iris", "iris"),
        ("metric", None, MISSING),
        ("bytes", None, MISSING),
    ],
)
def test_numbers_are_formatted_for_reading(kind: str, value: Any, text: str) -> None:
    assert format_value(Column("x", "X", kind, ""), value) == text


def test_a_card_without_the_new_keys_shows_dashes(three: list[Candidate]) -> None:
    old = literal_card("old", 1, {"f1_macro": 0.99, "accuracy": 0.98})
    del old["holdout"]
    text = render_text(compare([three[0], candidate(old)]))
    row = next(line for line in table_lines(text) if line.startswith("old-v1"))
    assert cell(text, table_lines(text).index(row), "SIZE").strip() == MISSING
    assert cell(text, table_lines(text).index(row), "LATENCY").strip() == MISSING
    assert cell(text, table_lines(text).index(row), "LIVE").strip() == MISSING
    assert (
        cell(text, table_lines(text).index(row), "TRAINING").strip() == "2.50 s*"
    )  # training.seconds
    assert cell(text, table_lines(text).index(row), "FEATURES").strip() == "4"  # feature_columns


def test_an_unreadable_card_is_a_row_with_its_problem(three: list[Candidate]) -> None:
    broken = Candidate(
        name="c-v4",
        namespace="default",
        pipeline="c",
        model="c",
        version=4,
        stage="Candidate",
        card={},
        live=None,
        report_uri=None,
        problem="card s3://conveyor/models/c/4/card.json: not found",
    )
    comparison = compare([*three, broken])
    assert names(comparison.rows)[-1] == "c-v4"  # no value: last
    assert comparison.holdouts == {FINGERPRINT: ("b-v2", "a-v1", "c-v3")}  # not "no holdout"
    text = render_text(comparison)
    assert "PROBLEM" in table_lines(text)[0]
    last = table_lines(text)[-1]
    assert last.startswith("c-v4") and "card s3://conveyor/models/c/4/card.json: not found" in last
    assert last.count(MISSING) >= 8


def test_the_live_metric_is_shown_and_ranked(three: list[Candidate]) -> None:
    live = [
        {"metrics": {"accuracy": 0.91, "f1_macro": 0.88}, "labelledSamples": 120},
        {"metrics": {"accuracy": 0.97, "f1_macro": 0.93}, "labelledSamples": 80},
        None,
    ]
    candidates = [
        dataclasses.replace(c, live=figures) for c, figures in zip(three, live, strict=True)
    ]
    comparison = compare(candidates)
    assert comparison.column("live").metric == "f1_macro"
    assert best(comparison, "live") == ["a-v1"]
    text = render_text(comparison)
    assert "f1_macro 0.9300 (n=80)*" in text and "f1_macro 0.8800 (n=120)" in text
    assert names(compare(candidates, sort="live").rows) == ["a-v1", "b-v2", "c-v3"]
