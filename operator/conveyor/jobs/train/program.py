"""The phases of `conveyor train`.

all (one pod)
    1. check the spec (before reading anything: estimator, params, search space, metric, target);
    2. read the snapshot (manifest first), split the rows (spec.split);
    3. search on the training rows (spec.search, cross-validated with spec.split.folds);
    4. refit the best parameters on all training rows, inside the pipeline that serves: the
       FeatureSet's transforms (FeatureStep), then the estimator;
    5. evaluate on the holdout, with a dummy baseline and the Production model (champion) scored
       on the same rows; apply the gates;
    6. upload model.skops, card.json, report.html — then result.json.
trials (Indexed Job pod i of N)
    steps 1-3 for the trials t with t % N == i; the SearchResult goes to trials/part-<i>.json.
final (one pod, after the Indexed Job)
    steps 1-2, merges the N parts instead of searching, then steps 4-6.

A run's result.json marks it complete: a retried pod finds it and trains nothing.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from ...clients.s3 import ObjectNotFound, ObjectStorage, StorageError
from ...contracts.layouts import RunLayout, SnapshotLayout
from ...training.artifacts import build_pipeline
from ...training.card import json_safe
from ...training.estimators import EstimatorError, build_estimator
from ...training.search import (
    SearchError,
    SearchResult,
    assign_trials,
    candidates,
    merge_results,
    run_search,
)
from ...training.splits import (
    can_stratify,
    cv_splitter,
    holdout_fingerprint,
    row_identities,
    split_problems,
    split_rows,
)
from .data import SnapshotData, read_manifest, read_snapshot
from .deadline import deadline
from .errors import InvalidSpec, SearchFailed, TrialsIncomplete, from_storage_error
from .outputs import Evaluation, publish
from .settings import TrainSettings
from .validate import Plan, check_features, plan_run

__all__ = ["train"]

logger = logging.getLogger(__name__)


def train(settings: TrainSettings, plan: Plan | None = None) -> dict[str, Any]:
    """Run the phase `settings.phase`; returns the success payload, raises TrainError.

    `plan` is the spec already checked by `plan_run` (checked here when not given).
    """
    if plan is None:
        plan = plan_run(settings.spec, settings.featureset, settings.featureset_spec)
    try:
        with ObjectStorage(settings.s3) as storage:
            return _Run(settings, plan, storage).run()
    except StorageError as error:
        raise from_storage_error(error) from error


@dataclass
class _Rows:
    """The split, as arrays: `*_all` hold every snapshot feature column (the pipeline's input),
    the others only spec.features (the estimator's input)."""

    train: np.ndarray
    test: np.ndarray
    x_train: np.ndarray
    x_test: np.ndarray
    x_train_all: np.ndarray
    x_test_all: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    holdout: dict[str, Any]
    """The card's `holdout` block: the split settings, what drew the rows, and its fingerprint."""


class _Run:
    def __init__(self, settings: TrainSettings, plan: Plan, storage: ObjectStorage) -> None:
        self.settings = settings
        self.spec = settings.spec
        self.plan = plan
        self.storage = storage
        self.bucket = settings.s3.bucket
        self.layout = RunLayout(self.bucket, settings.namespace, settings.model, settings.run)
        self.snapshot = SnapshotLayout(
            self.bucket, settings.namespace, settings.featureset, settings.snapshot
        )

    def run(self) -> dict[str, Any]:
        done = self._existing(self._done_key())
        if done is not None:
            print(f"run {self.settings.run} already has {self._done_key()}", flush=True)
            if self.settings.phase == "trials":
                done = self._part_summary(SearchResult.from_dict(done["search"]))
            return {"result": done, "existing": True}
        started_at = datetime.now(UTC)
        if self.settings.phase == "final":
            self._require_parts()  # before reading any data: a premature final fails fast
        manifest = read_manifest(self.storage, self.snapshot)
        check_features(self.spec, manifest.feature_columns, self.snapshot.id)
        data = read_snapshot(self.storage, self.snapshot, manifest)
        self.features = list(self.spec.features or data.feature_columns)
        rows = self._split(data)
        logger.info(
            "Training %s (%s) on snapshot %s: %d training rows, %d holdout rows, %d features",
            self.plan.estimator.name,
            self.plan.task,
            data.id,
            len(rows.train),
            len(rows.test),
            len(self.features),
        )
        limit = self.spec.gates.max_training_seconds
        if self.settings.phase == "trials":
            with deadline(limit):
                return {"result": self._trials(rows)}
        clock = time.monotonic()
        if self.settings.phase == "final":
            search, search_seconds = self._merged_parts()
        else:
            with deadline(limit):
                search = self._search(rows, None)
            search_seconds = time.monotonic() - clock
        refit_started = time.monotonic()
        with deadline(limit, spent=search_seconds):
            pipeline, params = self._refit(data, rows, search)
        training_seconds = search_seconds + (time.monotonic() - refit_started)
        evaluation = Evaluation(
            data=data,
            rows_test=rows.test,
            x_test_all=rows.x_test_all,
            x_test=rows.x_test,
            x_train=rows.x_train,
            y_train=rows.y_train,
            y_test=rows.y_test,
            holdout=rows.holdout,
        )
        result = publish(
            self.settings,
            self.plan,
            self.storage,
            self.layout,
            pipeline=pipeline,
            params=params,
            search=search,
            features=self.features,
            evaluation=evaluation,
            training_seconds=training_seconds,
            started_at=started_at,
        )
        return {"result": result}

    # Data ----------------------------------------------------------------------------------------

    def _split(self, data: SnapshotData) -> _Rows:
        split = self.spec.split
        classes = None
        if self.plan.task == "classification":
            labels, counts = np.unique(data.target, return_counts=True)
            classes = dict(zip(labels.tolist(), counts.tolist(), strict=True))
        problems = split_problems(
            data.rows, test_size=split.test_size, folds=split.folds, classes=classes
        )
        if problems:
            raise InvalidSpec([f"{problem} (snapshot {data.id})" for problem in problems])
        identities = row_identities(data.keys, data.features, data.target)
        try:
            train, test = split_rows(
                split.strategy,
                data.target,
                data.event_times,
                identities,
                test_size=split.test_size,
                seed=split.seed,
                stratify=split.stratify,
                task=self.plan.task,
            )
        except ValueError as error:
            raise InvalidSpec(
                [f"spec.split: {error} (snapshot {data.id}, {data.rows} rows)"]
            ) from error
        selected = data.columns(self.features)
        return _Rows(
            train=train,
            test=test,
            x_train=selected[train],
            x_test=selected[test],
            x_train_all=data.features[train],
            x_test_all=data.features[test],
            y_train=data.target[train],
            y_test=data.target[test],
            holdout=self._holdout(data, identities, test),
        )

    def _holdout(
        self, data: SnapshotData, identities: list[bytes], test: np.ndarray
    ) -> dict[str, Any]:
        split, manifest = self.spec.split, data.manifest
        if split.strategy == "time":
            drawn_by = manifest.event_time
        else:
            drawn_by = manifest.entity_key if data.keys is not None else "row values"
        return {
            "strategy": split.strategy,
            "test_size": split.test_size,
            "seed": split.seed,
            "stratified": split.strategy != "time"
            and split.stratify
            and self.plan.task == "classification"
            and can_stratify(data.target, split.test_size),
            "assigned_by": drawn_by,
            "rows": len(test),
            "fingerprint": holdout_fingerprint(data.id, identities, test),
        }

    # Search --------------------------------------------------------------------------------------

    def _search(self, rows: _Rows, trial_numbers: list[int] | None) -> SearchResult:
        search, split = self.spec.search, self.spec.split
        cv = cv_splitter(
            folds=split.folds,
            seed=split.seed,
            task=self.plan.task,
            stratify=split.stratify,
            y=rows.y_train,
        )
        try:
            return run_search(
                self.plan.estimator,
                self.spec.model.params,
                search.strategy,
                search.space,
                rows.x_train,
                rows.y_train,
                metric=self.plan.metric,
                cv=cv,
                trials=search.trials,
                seed=split.seed,
                timeout_seconds=search.timeout_seconds,
                trial_numbers=trial_numbers,
            )
        except SearchError as error:
            raise SearchFailed(
                f"The {search.strategy} search of {self.plan.estimator.name} found no usable "
                f"model: {error}. {what_to_fix(str(error))}"
            ) from error

    def _trial_numbers(self) -> list[int]:
        """This pod's share of the trials: t with t % partitions == index.

        Grid and random candidates are the same list on every pod (seeded); Bayesian trials
        only count (each pod samples its own, seeded by its first number). Halving and a single
        fit cannot be divided: pod 0 runs them, the others report no trials.
        """
        search, count = self.spec.search, self.settings.partitions
        index = self.settings.index
        if search.strategy in ("none", "halving"):
            return [0] if index == 0 else []
        total = search.trials
        if search.strategy == "grid":
            total = len(
                candidates("grid", search.space, trials=search.trials, seed=self.spec.split.seed)
            )
        return assign_trials(index, count, total)

    def _trials(self, rows: _Rows) -> dict[str, Any]:
        numbers = self._trial_numbers()
        clock = time.monotonic()
        if not numbers:
            result = SearchResult(
                best_params={},
                best_score=None,
                trials=[],
                strategy=self.spec.search.strategy,
                metric=self.plan.metric,
            )
        elif self.spec.search.strategy in ("none", "halving"):
            result = self._search(rows, None)
        else:
            result = self._search(rows, numbers)
        seconds = time.monotonic() - clock
        key = self.layout.trial_part(self.settings.index)
        part = {
            "index": self.settings.index,
            "partitions": self.settings.partitions,
            "seconds": seconds,
            "search": result.to_dict(),
        }
        self.storage.put_bytes(self.bucket, key, _json_bytes(part), "application/json")
        logger.info("Wrote %d trials to %s", len(result.trials), self.layout.uri(key))
        return self._part_summary(result)

    def _part_summary(self, result: SearchResult) -> dict[str, Any]:
        return {
            "run": self.settings.run,
            "phase": "trials",
            "index": self.settings.index,
            "partitions": self.settings.partitions,
            "trials": len(result.trials),
            "bestScore": result.best_score,
            "part": self.layout.uri(self.layout.trial_part(self.settings.index)),
        }

    def _require_parts(self) -> list[str]:
        count = self.settings.partitions
        keys = [self.layout.trial_part(index) for index in range(count)]
        present = {item.key for item in self.storage.list_objects(self.bucket, self.layout.trials)}
        missing = [key for key in keys if key not in present]
        if missing:
            raise TrialsIncomplete(
                f"{len(missing)} of {count} trial parts are missing: "
                f"{', '.join(self.layout.uri(key) for key in missing)}. Run the trials Indexed "
                "Job to completion (with the same --partitions) before --phase final."
            )
        return keys

    def _merged_parts(self) -> tuple[SearchResult, float]:
        count = self.settings.partitions
        keys = self._require_parts()
        parts = [json.loads(self.storage.get_bytes(self.bucket, key)) for key in keys]
        results = [SearchResult.from_dict(part["search"]) for part in parts]
        with_trials = [result for result in results if result.trials]
        if not with_trials or all(r.best_score is None for r in with_trials):
            raise SearchFailed(
                f"The {count} trial parts under {self.layout.uri(self.layout.trials)} hold no "
                f"completed trial; see the trial pods' logs. {what_to_fix(_first_error(parts))}"
            )
        merged = merge_results([r for r in with_trials if r.best_score is not None])
        return merged, max(float(part.get("seconds", 0.0)) for part in parts)

    # Refit ---------------------------------------------------------------------------------------

    def _refit(
        self, data: SnapshotData, rows: _Rows, search: SearchResult
    ) -> tuple[Pipeline, dict[str, Any]]:
        params = {**self.spec.model.params, **search.best_params}
        try:
            estimator = build_estimator(self.plan.estimator, params)
        except EstimatorError as error:
            raise SearchFailed(f"The best parameters {params} are unusable: {error}") from error
        schema = self.settings.featureset_spec.schema_.model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        pipeline = build_pipeline(estimator, schema=schema, transforms=data.transforms)
        if self.features != data.feature_columns:
            # spec.features picks a subset: a plain scikit-learn column selection (trusted by
            # skops, unlike a function) between the feature step and the estimator.
            positions = [data.feature_columns.index(name) for name in self.features]
            select = ColumnTransformer([("features", "passthrough", positions)], remainder="drop")
            pipeline.steps.insert(1, ("select", select))
        try:
            pipeline.fit(rows.x_train_all, rows.y_train)
        except Exception as error:  # the estimator's own complaint, for a person to read
            raise SearchFailed(
                f"Refitting {self.plan.estimator.name} with {params} on the training rows "
                f"failed: {type(error).__name__}: {error}. {what_to_fix(str(error))}"
            ) from error
        return pipeline, params

    # Storage -------------------------------------------------------------------------------------

    def _done_key(self) -> str:
        if self.settings.phase == "trials":
            return self.layout.trial_part(self.settings.index)
        return self.layout.result

    def _existing(self, key: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.storage.get_bytes(self.bucket, key))
        except ObjectNotFound:
            return None
        return data


# What an estimator's complaint points at: scikit-learn's own wording, matched loosely.
_SPLIT_COMPLAINTS = re.compile(r"n_splits|number of splits|least populated class|\bone class")
_VALUE_COMPLAINTS = re.compile(r"infinity|\bnan\b|too large for dtype")


def what_to_fix(complaint: str) -> str:
    """The field a person should change for an estimator's complaint: the split when there
    are too few rows or classes, the FeatureSet when the features hold non-finite values, the
    parameters otherwise."""
    text = complaint.lower()
    if _SPLIT_COMPLAINTS.search(text):
        return "Too few rows or classes to train on: fix spec.split (testSize, folds) or add data."
    if _VALUE_COMPLAINTS.search(text):
        return (
            "The features hold values the estimator cannot take: fix the FeatureSet's "
            "spec.transforms (or impute the missing values there)."
        )
    return "Fix spec.model.params or spec.search.space."


def _first_error(parts: list[dict[str, Any]]) -> str:
    errors = (trial.get("error") for part in parts for trial in part["search"].get("trials", []))
    return next((error for error in errors if error), "")


def _json_bytes(value: Any) -> bytes:
    return json.dumps(json_safe(value), indent=2, allow_nan=False).encode()
