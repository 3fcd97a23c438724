"""Evaluation, gates and the run's files: model.skops, model.onnx (when the estimator converts and
answers the holdout as scikit-learn does), card.json, report.html, result.json.

The Production model (champion) is scored on this run's holdout rows, through its own pipeline:
on the snapshot's raw rows when the snapshot keeps them, or on the stored features when its
fitted transforms are exactly this snapshot's (then its feature step would compute the same
numbers). Otherwise the comparison is skipped and the gate says why.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from ...clients.s3 import ObjectStorage, StorageError, split_uri
from ...contracts.layouts import RunLayout
from ...contracts.results import RunResult
from ...training.artifacts import ArtifactError, digest, dump_model, load_model
from ...training.card import build_card, json_safe, request_row, sample_answer
from ...training.curves import classifier_curves
from ...training.gates import evaluate_gates, rejection_reasons
from ...training.latency import measure_latency
from ...training.metrics import baseline, evaluate, score
from ...training.onnx import OnnxExport, export_onnx
from ...training.report import feature_importance, render_training_report
from ...training.search import SearchResult
from .data import SnapshotData
from .errors import ChampionUnavailable
from .settings import TrainSettings
from .validate import Plan

__all__ = ["NO_RAW_ROWS", "Evaluation", "publish"]

logger = logging.getLogger(__name__)

NO_RAW_ROWS = "cannot compare with Production: snapshot has no raw rows"


@dataclass
class Evaluation:
    """The rows the model is judged on."""

    data: SnapshotData
    rows_test: np.ndarray
    x_test_all: np.ndarray
    x_test: np.ndarray
    x_train: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    holdout: dict[str, Any]
    """The card's `holdout` block (strategy, seed, rows, fingerprint)."""


def publish(
    settings: TrainSettings,
    plan: Plan,
    storage: ObjectStorage,
    layout: RunLayout,
    *,
    pipeline: Pipeline,
    params: dict[str, Any],
    search: SearchResult,
    features: list[str],
    evaluation: Evaluation,
    training_seconds: float,
    started_at: datetime,
) -> dict[str, Any]:
    """Evaluate, gate, upload the files (result.json last) and return the run's result."""
    metric = plan.metric
    report = evaluate(plan.task, pipeline, evaluation.x_test_all, evaluation.y_test)
    metrics = {name: value for name, value in report.items() if not isinstance(value, dict)}
    for name in {metric, *(t.metric for t in settings.spec.gates.thresholds)} - set(metrics):
        metrics[name] = score(name, pipeline, evaluation.x_test_all, evaluation.y_test)
    metrics = json_safe(metrics)
    dummy = json_safe(
        baseline(
            plan.task, evaluation.x_train, evaluation.y_train, evaluation.x_test, evaluation.y_test
        )
    )
    model_bytes = dump_model(pipeline)
    exported = _export_onnx(pipeline, evaluation)
    champion, compared_on, skipped = _champion_score(settings, plan, storage, evaluation)
    gates = evaluate_gates(
        settings.spec.gates,
        metric=metric,
        metrics=metrics,
        champion_score=champion,
        training_seconds=training_seconds,
        model_bytes=len(model_bytes),
    )
    if skipped is not None:
        gates = [
            dataclasses.replace(gate, message=skipped) if gate.name == "beatProduction" else gate
            for gate in gates
        ]
    result = RunResult.model_validate(
        json_safe(
            {
                "run": settings.run,
                "model": settings.model,
                "pipeline": settings.pipeline,
                "featureset": settings.featureset,
                "snapshot": evaluation.data.id,
                "image": settings.image,
                "task": plan.task,
                "target": plan.target,
                "estimator": plan.estimator.name,
                "params": params,
                "metric": metric,
                "score": metrics.get(metric),
                "metrics": metrics,
                "baseline": dummy,
                "gates": [gate.to_wire() for gate in gates],
                "passed": all(gate.passed for gate in gates),
                "rejection_reasons": rejection_reasons(gates),
                "championScore": champion,
                "championInput": compared_on,
                "artifact": {
                    "uri": layout.uri(layout.model_file),
                    "digest": digest(model_bytes),
                    "format": "skops",
                    "sizeBytes": len(model_bytes),
                    "cardUri": layout.uri(layout.card),
                    "reportUri": layout.uri(layout.report),
                    "onnx": _onnx_artifact(exported, layout),
                },
                "holdout": evaluation.holdout["fingerprint"],
                "trainingSeconds": training_seconds,
                "startedAt": started_at,
                "finishedAt": datetime.now(UTC),
            }
        )
    )
    sample_row, sample_prediction = _sample(pipeline, evaluation, plan.target)
    importance = _importance(pipeline, evaluation, features, plan)
    card = build_card(
        result,
        feature_schema=settings.featureset_spec.schema_.model_dump(
            mode="json", by_alias=True, exclude_none=True
        ),
        feature_columns=features,
        reference_profile=evaluation.data.profile,
        search=_search_summary(settings, search),
        sample_row=sample_row,
        sample_prediction=sample_prediction,
        onnx=exported.card,
        holdout=evaluation.holdout,
        footprint=_footprint(pipeline, exported, evaluation, plan, result),
        evaluation=_evaluation_block(pipeline, evaluation, plan, report, importance),
    )
    html = render_training_report(
        card,
        trials=[dataclasses.asdict(trial) for trial in search.trials],
        evaluation=report,
        feature_importance=importance,
    )
    bucket = layout.bucket
    storage.put_bytes(bucket, layout.model_file, model_bytes, "application/octet-stream")
    if exported.data is not None:
        storage.put_bytes(bucket, layout.onnx_file, exported.data, "application/octet-stream")
    storage.put_bytes(bucket, layout.card, _json_bytes(card), "application/json")
    storage.put_bytes(bucket, layout.report, html.encode(), "text/html; charset=utf-8")
    document = result.to_json()
    storage.put_bytes(bucket, layout.result, _json_bytes(document), "application/json")
    logger.info(
        "Run %s: %s %s = %s, gates %s; artifact %s",
        settings.run,
        plan.estimator.name,
        metric,
        result.score,
        "passed" if result.passed else "FAILED",
        result.artifact.uri,
    )
    return document


def _export_onnx(pipeline: Pipeline, evaluation: Evaluation) -> OnnxExport:
    """The estimator as ONNX, checked on the holdout; without it the server uses the skops file."""
    exported = export_onnx(pipeline, evaluation.x_test_all)
    if exported.exported:
        logger.info("Exported the estimator to ONNX: %s", exported.card["parity"])
    else:
        logger.warning(
            "No ONNX file; serving will use the skops pipeline: %s", exported.card["reason"]
        )
    return exported


def _onnx_artifact(exported: OnnxExport, layout: RunLayout) -> dict[str, Any] | None:
    if exported.data is None:
        return None
    return {
        "uri": layout.uri(layout.onnx_file),
        "digest": digest(exported.data),
        "sizeBytes": len(exported.data),
    }


def _sample(
    pipeline: Pipeline, evaluation: Evaluation, target: str
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The first holdout row as a request sends it, and the pipeline's answer to it (the
    server's warm-up); (None, None) when the snapshot keeps no raw rows."""
    raw = evaluation.data.raw
    if raw is None or not len(evaluation.rows_test):
        return None, None
    row = request_row(raw, int(evaluation.rows_test[0]), leave_out=(target,))
    try:
        return row, sample_answer(pipeline, row)
    except Exception as error:  # the server's warm-up would fail alike, and say so
        logger.warning("The model cannot answer its sample row %s: %s", row, error)
        return row, None


def _champion_score(
    settings: TrainSettings, plan: Plan, storage: ObjectStorage, evaluation: Evaluation
) -> tuple[float | None, str | None, str | None]:
    """(Production's score on this holdout, what it scored: "raw" rows or stored "features",
    why it was not compared)."""
    if settings.spec.gates.beat_production_by is None or settings.champion_uri is None:
        return None, None, None
    assert settings.champion_digest is not None
    champion = _load_champion(storage, settings.champion_uri, settings.champion_digest)
    data = evaluation.data
    if data.raw is not None:
        rows: Any = data.raw.take(evaluation.rows_test)
        compared_on = "raw"
    elif _same_transforms(champion, data):
        rows, compared_on = evaluation.x_test_all, "features"
    else:
        return None, None, NO_RAW_ROWS
    try:
        value = score(plan.metric, champion, rows, evaluation.y_test)
    except Exception as error:  # e.g. the schema changed since Production was trained
        logger.warning("Production model cannot score this holdout: %s", error)
        return (
            None,
            None,
            (
                f"cannot compare with Production: it cannot score this snapshot's rows "
                f"({type(error).__name__}: {error})"
            ),
        )
    logger.info("Production scores %s = %s on this holdout", plan.metric, value)
    return value, compared_on, None


def _load_champion(storage: ObjectStorage, uri: str, expected_digest: str) -> Pipeline:
    try:
        bucket, key = split_uri(uri)
        data = storage.get_bytes(bucket, key)
    except (StorageError, ValueError) as error:
        raise ChampionUnavailable(
            f"Cannot read the Production model {uri}: {error}. Check the Production "
            "ModelVersion's spec.artifact.uri."
        ) from error
    try:
        return load_model(data, expected_digest=expected_digest)
    except ArtifactError as error:
        raise ChampionUnavailable(
            f"The Production model {uri} cannot be loaded safely: {error}."
        ) from error


def _same_transforms(champion: Pipeline, data: SnapshotData) -> bool:
    step = champion.named_steps.get("features")
    return step is not None and getattr(step, "transforms", None) == data.transforms


def _importance(
    pipeline: Pipeline, evaluation: Evaluation, features: list[str], plan: Plan
) -> dict[str, float] | None:
    """Feature importance for the report; a report without it beats a failed run."""
    try:
        return feature_importance(
            pipeline.named_steps["model"], evaluation.x_test, evaluation.y_test, features
        )
    except Exception as error:
        logger.warning("No feature importance for %s: %s", plan.estimator.name, error)
        return None


def _footprint(
    pipeline: Pipeline,
    exported: OnnxExport,
    evaluation: Evaluation,
    plan: Plan,
    result: RunResult,
) -> dict[str, Any]:
    """The card's `footprint`: sizes, feature count and predict latency on the serving path."""
    figures: dict[str, Any] = {
        "training_seconds": result.training_seconds,
        "model_bytes": result.artifact.size_bytes,
        "onnx_bytes": len(exported.data) if exported.data is not None else None,
        "features": evaluation.x_test.shape[1],
        "runtime": "onnx" if exported.data is not None else "sklearn",
        "latency_input": None,
        "latency_one_row_seconds": None,
        "latency_1000_rows_seconds": None,
    }
    raw = evaluation.data.raw
    try:
        latency = measure_latency(
            pipeline,
            exported.data,
            raw=raw.take(evaluation.rows_test) if raw is not None else None,
            features=evaluation.x_test_all,
            leave_out=plan.target,
        )
    except Exception as error:  # a card without latency beats a failed run
        logger.warning("Could not measure the predict latency: %s", error)
        return figures
    logger.info(
        "Predict latency (%s, %s input): %.3f ms a row, %.1f ms for 1,000 rows",
        latency.runtime,
        latency.input,
        latency.one_row_seconds * 1e3,
        latency.rows_1000_seconds * 1e3,
    )
    figures.update(
        latency_input=latency.input,
        latency_one_row_seconds=latency.one_row_seconds,
        latency_1000_rows_seconds=latency.rows_1000_seconds,
    )
    return figures


def _evaluation_block(
    pipeline: Pipeline,
    evaluation: Evaluation,
    plan: Plan,
    report: dict[str, Any],
    importance: dict[str, float] | None,
) -> dict[str, Any]:
    """The card's `evaluation`: what a comparison of models plots, on this holdout."""
    block: dict[str, Any] = {
        key: report[key] for key in ("confusion_matrix", "residuals") if key in report
    }
    if plan.task == "classification":
        try:
            block.update(classifier_curves(pipeline, evaluation.x_test_all, evaluation.y_test))
        except Exception as error:  # curves are for people; the run stands without them
            logger.warning("No ROC or precision-recall curves: %s", error)
            block.update(roc=[], precision_recall=[])
    block["feature_importance"] = importance
    return block


def _search_summary(settings: TrainSettings, search: SearchResult) -> dict[str, Any]:
    states = [trial.state for trial in search.trials]
    return {
        "strategy": search.strategy,
        "metric": search.metric,
        "trials": len(states),
        "complete": states.count("complete"),
        "failed": states.count("failed"),
        "timeout": states.count("timeout"),
        "bestScore": search.best_score,
        "bestParams": search.best_params,
        "space": settings.spec.search.space,
        "timeoutSeconds": settings.spec.search.timeout_seconds,
        "partitions": settings.partitions if settings.phase == "final" else 1,
        "trialList": [
            {"number": t.number, "params": t.params, "score": t.score, "state": t.state}
            for t in search.trials
        ],
    }


def _json_bytes(value: Any) -> bytes:
    return json.dumps(json_safe(value), indent=2, allow_nan=False).encode()
