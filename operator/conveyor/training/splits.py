"""Which rows train and which rows judge: holdout, time-based and cross-validation splits.

Every function returns row indices (sorted numpy int arrays, so reading them back follows the
snapshot's order) and is deterministic: the same rows and seed give the same split on every pod
and every re-run, which is what makes champion/challenger comparisons on "this run's holdout" fair.

The random holdout is drawn by row identity, not position: each row is ranked by a hash of the
seed and its identity (the entity key, or its values when the FeatureSet has none) and the
lowest-ranked rows are held out (per class, when stratified). Pipelines that read the same
snapshot with the same split settings therefore judge on exactly the same rows whatever their
order, and `holdout_fingerprint()` names that set of rows so comparisons can check it.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "can_stratify",
    "cv_splitter",
    "holdout_fingerprint",
    "holdout_split",
    "row_identities",
    "split_problems",
    "split_rows",
    "time_split",
]

logger = logging.getLogger(__name__)


def split_problems(
    rows: int,
    *,
    test_size: float,
    folds: int,
    classes: Mapping[Any, int] | None = None,
) -> list[str]:
    """Why a snapshot of `rows` rows (with these class counts, for classification, when known)
    cannot be split as the spec says; each problem names the field to change.

    The operator checks this before a run's Job starts (rows from the FeatureSet's status,
    classes from the snapshot's profile); the trainer checks it again on the rows it read.
    The search always scores candidates by cross-validation on the training rows, so they must
    fill `folds` folds, and each class needs a row to train on.
    """
    holdout = _test_count(rows, test_size)
    train = rows - holdout
    problems = []
    if rows < 2 or train < 1 or holdout < 1:
        problems.append(
            f"spec.split.testSize: {test_size} of {rows} rows leaves {max(train, 0)} to train "
            f"on and {holdout} to judge; lower spec.split.testSize or add data"
        )
    elif train < folds:
        problems.append(
            f"spec.split.testSize: {test_size} of {rows} rows leaves {train} rows to train on, "
            f"fewer than the {folds} cross-validation folds (spec.split.folds); lower "
            f"spec.split.testSize{_largest_test_size(rows, folds)} or spec.split.folds"
        )
    if classes is not None:
        present = {label: n for label, n in classes.items() if n > 0}
        if len(present) < 2:
            problems.append(
                f"spec.split: the target has {len(present)} class(es) in {rows} rows; a "
                "classifier needs at least two"
            )
        elif train < len(present) and not problems:
            problems.append(
                f"spec.split.testSize: {test_size} of {rows} rows leaves {train} rows to train "
                f"on, fewer than the target's {len(present)} classes; lower spec.split.testSize"
            )
    return problems


def _largest_test_size(rows: int, folds: int) -> str:
    """' (at most 0.96 here)': the largest two-decimal testSize that leaves `folds` rows."""
    size = math.floor((rows - folds) / rows * 100) / 100 if rows > folds else 0.0
    while size > 0 and rows - _test_count(rows, size) < folds:
        size = round(size - 0.01, 2)
    return f" (at most {size:.2f} here)" if size > 0 else ""


def holdout_split(
    y: np.ndarray,
    identities: Sequence[bytes],
    *,
    test_size: float,
    seed: int,
    stratify: bool,
    task: str,
) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, holdout rows): the ceil(rows * test_size) rows that rank lowest by
    hash(seed, identity) — `identities` from row_identities(), one per row of `y`.

    Stratified (each class holds out its share, by largest remainder) only for classification
    when every class has at least two rows and both sides can hold one row of each class;
    otherwise the lowest-ranked rows overall, because a stratified split is impossible there.
    """
    rows = len(y)
    _check_sizes(rows, test_size)
    if len(identities) != rows:
        raise ValueError(f"{len(identities)} row identities for {rows} rows")
    order = _ranked(identities, seed)
    count = _test_count(rows, test_size)
    in_holdout = np.zeros(rows, dtype=bool)
    if stratify and task == "classification" and can_stratify(y, test_size):
        ranked_labels = np.asarray(y)[order]
        labels, sizes = np.unique(ranked_labels, return_counts=True)
        for label, quota in zip(labels, _quotas(sizes, count), strict=True):
            in_holdout[order[ranked_labels == label][:quota]] = True
    else:
        if stratify and task == "classification":
            logger.info("Holdout split is not stratified: some class has too few rows")
        in_holdout[order[:count]] = True
    return np.flatnonzero(~in_holdout), np.flatnonzero(in_holdout)


def row_identities(keys: Sequence[Any] | None, features: np.ndarray, y: np.ndarray) -> list[bytes]:
    """What identifies each row for the holdout draw: its entity key (`keys`), or — without an
    entity key, or where it is null — its feature values and target, so the draw never depends
    on where a row sits in the snapshot."""
    identities = []
    for index in range(len(y)):
        key = None if keys is None else keys[index]
        if key is not None:
            identities.append(b"k" + str(key).encode())
        else:
            identities.append(b"v" + features[index].tobytes() + str(y[index]).encode())
    return identities


def holdout_fingerprint(snapshot: str, identities: Sequence[bytes], holdout: np.ndarray) -> str:
    """16 hex digits naming the holdout: the snapshot and the identities of its rows (in any
    order). Equal fingerprints mean the models were judged on exactly the same rows."""
    digests = sorted(hashlib.sha256(identities[int(row)]).digest() for row in holdout)
    whole = hashlib.sha256(snapshot.encode() + b"\n")
    for item in digests:
        whole.update(item)
    return whole.hexdigest()[:16]


def _ranked(identities: Sequence[bytes], seed: int) -> np.ndarray:
    """Row positions ordered by hash(seed, identity), ties (equal identities) by position."""
    salt = str(seed).encode()
    ranks = np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(item, digest_size=8, key=salt).digest(), "big")
            for item in identities
        ),
        dtype=np.uint64,
        count=len(identities),
    )
    return np.argsort(ranks, kind="stable")


def _quotas(sizes: np.ndarray, count: int) -> list[int]:
    """Holdout rows per class: `count` shared in proportion to class sizes (largest remainder),
    each class keeping at least one row on either side (the caller checked that this fits)."""
    exact = sizes * count / sizes.sum()
    quotas = np.floor(exact).astype(int)
    for index in np.argsort(-(exact - quotas), kind="stable")[: count - quotas.sum()]:
        quotas[index] += 1
    quotas = np.clip(quotas, 1, sizes - 1)
    while (surplus := int(quotas.sum()) - count) != 0:
        step = 1 if surplus < 0 else -1
        room = quotas < sizes - 1 if step > 0 else quotas > 1
        candidates = np.flatnonzero(room)
        index = candidates[np.argmax((exact - quotas)[candidates] * step)]
        quotas[index] += step
    return [int(value) for value in quotas]


def time_split(event_times: np.ndarray, *, test_size: float) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, holdout rows) where the holdout is the newest `test_size` share of rows.

    Rows that share the boundary's event time all go to training, so no moment is split across
    both sides; the holdout may then be a little smaller than asked. Rows without an event time
    (NaT/NaN) count as old and train.
    """
    times = np.asarray(event_times)
    rows = len(times)
    _check_sizes(rows, test_size)
    known = np.flatnonzero(~_missing(times))
    unknown = np.flatnonzero(_missing(times))
    ordered = np.concatenate([unknown, known[np.argsort(times[known], kind="stable")]])
    train_count = rows - _test_count(rows, test_size)
    holdout = ordered[train_count:]
    last_train = ordered[train_count - 1]
    if last_train not in unknown:
        holdout = holdout[times[holdout] > times[last_train]]  # ties with the boundary train
    in_holdout = np.zeros(rows, dtype=bool)
    in_holdout[holdout] = True
    if not in_holdout.any():
        raise ValueError(
            "spec.split.strategy is time but the newest rows all share one event time, so the "
            "holdout would be empty; use strategy holdout or a larger spec.split.testSize"
        )
    return np.flatnonzero(~in_holdout), np.flatnonzero(in_holdout)


def cv_splitter(
    *, folds: int, seed: int, task: str, stratify: bool, y: np.ndarray | None = None
) -> Any:
    """A shuffled, seeded KFold, or StratifiedKFold for classification with `stratify`.

    With `y`, falls back to KFold when the smallest class has fewer rows than folds (scikit-learn
    would warn and make uneven folds) and raises when there are fewer rows than folds.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    if y is not None and len(y) < folds:
        raise ValueError(
            f"spec.split.folds is {folds} but only {len(y)} training rows exist; "
            "lower spec.split.folds or add data"
        )
    use_strata = stratify and task == "classification"
    if use_strata and y is not None and np.unique(y, return_counts=True)[1].min() < folds:
        logger.info("Cross-validation is not stratified: some class has fewer rows than folds")
        use_strata = False
    splitter = StratifiedKFold if use_strata else KFold
    return splitter(n_splits=folds, shuffle=True, random_state=seed)


def split_rows(
    strategy: str,
    y: np.ndarray,
    event_times: np.ndarray | None,
    identities: Sequence[bytes],
    *,
    test_size: float,
    seed: int,
    stratify: bool,
    task: str,
) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, holdout rows) for a Split strategy.

    holdout and kfold both hold out a seeded share drawn by row identity (kfold's folds serve
    the scores and the search, inside the training rows); time holds out the newest rows.
    """
    if strategy in ("holdout", "kfold"):
        return holdout_split(
            y, identities, test_size=test_size, seed=seed, stratify=stratify, task=task
        )
    if strategy == "time":
        if event_times is None:
            raise ValueError(
                "spec.split.strategy is time but the FeatureSet has no event time column; "
                "set spec.eventTime on the FeatureSet or use strategy holdout"
            )
        return time_split(event_times, test_size=test_size)
    raise ValueError(f'spec.split.strategy must be holdout, kfold or time, not "{strategy}"')


def _test_count(rows: int, test_size: float) -> int:
    # As scikit-learn's train_test_split rounds: the holdout rounds up.
    return math.ceil(rows * test_size)


def _check_sizes(rows: int, test_size: float) -> None:
    if not 0 < test_size < 1:
        raise ValueError(f"spec.split.testSize must be between 0 and 1, not {test_size}")
    test = _test_count(rows, test_size)
    if rows < 2 or test >= rows:
        raise ValueError(
            f"{rows} rows cannot be split into training and holdout with "
            f"spec.split.testSize {test_size}; add data or lower spec.split.testSize"
        )


def can_stratify(y: np.ndarray, test_size: float) -> bool:
    """Whether a stratified holdout fits: every class has two rows, and both sides room for one
    row of each class."""
    classes, counts = np.unique(y, return_counts=True)
    test = _test_count(len(y), test_size)
    return bool(counts.min() >= 2 and test >= len(classes) and len(y) - test >= len(classes))


def _missing(times: np.ndarray) -> np.ndarray:
    if np.issubdtype(times.dtype, np.datetime64) or np.issubdtype(times.dtype, np.floating):
        return np.isnan(times)
    if times.dtype == object:
        return np.array([value is None for value in times], dtype=bool)
    return np.zeros(len(times), dtype=bool)
