"""Benchmark: the live-quality monitor against "load everything", over logs in the local S3 server.

    .venv/bin/python bench/monitor.py [--rows 1000000] [--per-object 4000] [--labelled 0.3]

Writes ROWS prediction records x 20 raw input columns (12 numbers, 8 categories; a classifier
over 3 classes with scores) as log objects of --per-object records in the prediction log format
(`features/predictionlog.encode_records`), and feedback for the --labelled share of them, into
the sandbox S3 server; half the columns drift. Then measures, each in a fresh process so each
peak RSS (ru_maxrss) is its own:

  monitor    one cold `ModelMonitor.refresh()`: list, fetch and decode every object, join the
             feedback, live metrics and drift per column against the model card's reference;
  reference  the same figures the plain way: every object read into one pandas table, joined
             with pandas, metrics with scikit-learn, KS with scipy.stats.ks_2samp against the
             training sample, PSI over percentiles of the whole column, chi-square with scipy.

Both print their figures, so their agreement is visible beside their cost. Both run with the
allocator settings the operator's Deployment sets (`conveyor.settings.ALLOCATOR_ENV`); the
monitor runs once more without them, to show what they are worth.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from conveyor.clients.s3 import ObjectStorage, S3Settings
from conveyor.contracts.layouts import PredictionLogLayout, feedback_key, prediction_key
from conveyor.features.drift import reference_from_values
from conveyor.features.predictionlog import FeedbackRecord, PredictionRecord, encode_records
from conveyor.sandbox.objectstore import ObjectStore
from conveyor.settings import ALLOCATOR_ENV

BUCKET = "conveyor"
MODEL = "bench"
CLASSES = ["setosa", "versicolor", "virginica"]
CATEGORIES = np.array(["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"])
NUMERIC = [f"x{i:02d}" for i in range(12)]
CATEGORICAL = [f"c{i:02d}" for i in range(8)]
NOW = datetime.now(UTC).replace(microsecond=0)


def columns(rng: np.random.Generator, rows: int, drift: bool) -> dict[str, np.ndarray]:
    """Raw inputs; with `drift`, the odd columns move."""
    data: dict[str, np.ndarray] = {}
    for i, name in enumerate(NUMERIC):
        shift = 0.5 * (i % 2) if drift else 0.0
        data[name] = np.round(rng.normal(loc=shift, scale=1.0 + i / 10, size=rows), 3)
    for i, name in enumerate(CATEGORICAL):
        weights = np.linspace(1, 2, len(CATEGORIES))
        if drift and i % 2:
            weights = weights[::-1]
        data[name] = rng.choice(CATEGORIES, size=rows, p=weights / weights.sum())
    return data


def card(training: dict[str, np.ndarray]) -> dict[str, Any]:
    profile = [
        {
            "name": name,
            "role": "feature",
            "reference": reference_from_values(
                pa.array(values), "numeric" if name in NUMERIC else "categorical"
            ),
        }
        for name, values in training.items()
    ]
    return {"task": "classification", "reference_profile": {"columns": profile}}


def write_logs(storage: ObjectStorage, rows: int, per_object: int, labelled: float) -> int:
    """The prediction and feedback objects; returns how many objects were written."""
    rng = np.random.default_rng(1)
    objects = 0
    for start in range(0, rows, per_object):
        count = min(per_object, rows - start)
        data = columns(rng, count, drift=True)
        scores = rng.dirichlet([2, 2, 2], count)
        truth = rng.integers(0, 3, count)
        guess = np.where(rng.random(count) < 0.8, truth, scores.argmax(axis=1))
        when = NOW - timedelta(seconds=600) + timedelta(microseconds=start)
        records = [
            PredictionRecord(
                request_id=f"req-{(start + i) // 8:x}/{(start + i) % 8}",  # batches of 8
                time=when,
                model=MODEL,
                version=1,
                inputs={name: values[i].item() for name, values in data.items()},
                prediction=CLASSES[guess[i]],
                scores=dict(zip(CLASSES, np.round(scores[i], 4).tolist(), strict=True)),
            )
            for i in range(count)
        ]
        key = prediction_key("ml", MODEL, 1, when, "bench-pod", start // per_object)
        storage.put_bytes(BUCKET, key, encode_records(records), content_encoding="gzip")
        feedback = [
            FeedbackRecord(r.request_id, when, MODEL, CLASSES[truth[i]])
            for i, r in enumerate(records)
            if rng.random() < labelled
        ]
        key = feedback_key("ml", MODEL, when, "bench-pod", start // per_object)
        storage.put_bytes(BUCKET, key, encode_records(feedback), content_encoding="gzip")
        objects += 2
    return objects


def run_monitor(storage: ObjectStorage, model_card: dict[str, Any]) -> dict[str, Any]:
    from conveyor.features.livequality import ModelMonitor, VersionReference

    reference = {1: VersionReference.from_card(1, "classification", model_card)}
    monitor = ModelMonitor(storage, BUCKET, PredictionLogLayout("ml", MODEL))
    [report], counts = monitor.refresh(reference, datetime.now(UTC))
    return {
        "rows": report.served,
        "labelled": report.labelled,
        "objects": sum(counts.objects.values()),
        "metrics": report.metrics,
        "ks": {n: d["ks"] for n, d in report.drift.items() if "ks" in d},
        "psi": {n: d["psi"] for n, d in report.drift.items()},
        "chi2": {n: d["chi2"] for n, d in report.drift.items() if "chi2" in d},
    }


def run_reference(storage: ObjectStorage, model_card: dict[str, Any]) -> dict[str, Any]:
    """Load everything: every record decoded (`predictionlog.decode_records`), every column in
    memory, joined in a dict, then scikit-learn and scipy on the whole columns."""
    from scipy import stats
    from sklearn.metrics import accuracy_score, f1_score, log_loss

    from conveyor.features.drift import psi
    from conveyor.features.predictionlog import decode_records

    def load(prefix: str, kind: Any) -> list[Any]:
        records = []
        for item in storage.list_objects(BUCKET, prefix):
            records += decode_records(storage.get_bytes(BUCKET, item.key), kind)
        return records

    served = load(f"logs/ml/predictions/model={MODEL}/", PredictionRecord)
    inputs = {n: np.array([r.inputs[n] for r in served]) for n in NUMERIC + CATEGORICAL}
    truth = {
        f.request_id: f.label for f in load(f"logs/ml/feedback/model={MODEL}/", FeedbackRecord)
    }
    joined = [(truth[r.request_id], r) for r in served if r.request_id in truth]
    labels = [label for label, _ in joined]
    guesses = [r.prediction for _, r in joined]
    scores = np.array([[r.scores[c] for c in CLASSES] for _, r in joined])
    training = columns(np.random.default_rng(0), 100_000, drift=False)
    references = {c["name"]: c["reference"] for c in model_card["reference_profile"]["columns"]}
    ks = {n: float(stats.ks_2samp(training[n], inputs[n]).statistic) for n in NUMERIC}
    drift_psi = {
        n: psi(references[n], reference_from_values(pa.array(inputs[n]), references[n]["kind"]))
        for n in NUMERIC + CATEGORICAL
    }
    chi2 = {}
    for n in CATEGORICAL:
        categories, observed = np.unique(inputs[n], return_counts=True)
        shares = np.array([references[n]["frequencies"][c] for c in categories])
        expected = shares / shares.sum() * observed.sum()
        chi2[n] = float(stats.chisquare(observed, expected).statistic)
    metrics = {
        "accuracy": accuracy_score(labels, guesses),
        "f1": f1_score(labels, guesses, average="macro"),
        "log_loss": log_loss(labels, scores / scores.sum(axis=1)[:, None], labels=CLASSES),
    }
    return {
        "rows": len(served),
        "labelled": len(joined),
        "metrics": metrics,
        "ks": ks,
        "psi": drift_psi,
        "chi2": chi2,
    }


def child(which: str, endpoint: str, card_file: str) -> None:
    """One measured run in this fresh process: prints its figures, seconds and peak RSS."""
    settings = S3Settings(endpoint=endpoint, access_key="conveyor", secret_key="conveyor-secret")
    model_card = json.loads(Path(card_file).read_text())
    import scipy.stats  # noqa: F401  imported before the clock by both: an operator has them
    import sklearn.metrics  # noqa: F401

    import conveyor.features.livequality  # noqa: F401

    with ObjectStorage(settings) as storage:
        storage.list_objects(BUCKET, "none/")  # connect before the clock starts
        idle = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        started = time.perf_counter()
        run = run_monitor if which == "monitor" else run_reference
        figures = run(storage, model_card)
        seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({**figures, "seconds": seconds, "peak_rss": peak, "idle_rss": idle}))


def measure(which: str, endpoint: str, card_file: Path, env: dict[str, str]) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", which, endpoint, str(card_file)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env})
    if done.returncode:
        raise SystemExit(f"{which} failed:\n{done.stderr}")
    output = done.stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def report(monitor: dict[str, Any], reference: dict[str, Any], default: dict[str, Any]) -> None:
    mb = 1 << 20
    print(f"{'':<22}{'monitor':>14}{'load everything':>18}")
    for label, key, scale, form in (
        ("seconds", "seconds", 1, "{:.2f}"),
        ("peak RSS (MB)", "peak_rss", mb, "{:.0f}"),
        ("RSS before (MB)", "idle_rss", mb, "{:.0f}"),
        ("rows", "rows", 1, "{:,}"),
        ("labelled", "labelled", 1, "{:,}"),
    ):
        cells = [
            form.format(run[key] / scale if scale != 1 else run[key])
            for run in (monitor, reference)
        ]
        print(f"{label:<22}{cells[0]:>14}{cells[1]:>18}")
    for name in ("accuracy", "f1", "log_loss"):
        print(f"{name:<22}{monitor['metrics'][name]:>14.4f}{reference['metrics'][name]:>18.4f}")
    for method in ("ks", "psi", "chi2"):
        gaps = [abs(monitor[method][n] - reference[method][n]) for n in reference[method]]
        largest = max(reference[method], key=lambda n: reference[method][n])
        print(
            f"{method + ' (largest)':<22}{monitor[method][largest]:>14.4f}"
            f"{reference[method][largest]:>18.4f}   max |gap| over columns {max(gaps):.4f}"
        )
    print(
        f"monitor without the operator's allocator settings (ALLOCATOR_ENV): "
        f"{default['seconds']:.2f} s, peak RSS {default['peak_rss'] / mb:.0f} MB"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--per-object", type=int, default=4000)
    parser.add_argument("--labelled", type=float, default=0.3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with ObjectStore(data_dir=work / "s3", log_file=work / "s3.log") as store:
            store.ensure_buckets(BUCKET)
            print(f"S3: {store.describe()}")
            settings = S3Settings(
                endpoint=store.endpoint,
                access_key=store.credentials.access_key,
                secret_key=store.credentials.secret_key,
            )
            started = time.perf_counter()
            with ObjectStorage(settings) as storage:
                objects = write_logs(storage, args.rows, args.per_object, args.labelled)
            print(
                f"wrote {args.rows:,} predictions x {len(NUMERIC) + len(CATEGORICAL)} columns "
                f"in {objects} objects in {time.perf_counter() - started:.0f} s"
            )
            card_file = work / "card.json"
            card_file.write_text(
                json.dumps(card(columns(np.random.default_rng(0), 100_000, False)))
            )
            # Both as the operator runs: with its allocator settings (conveyor.settings).
            monitor = measure("monitor", store.endpoint, card_file, ALLOCATOR_ENV)
            reference = measure("reference", store.endpoint, card_file, ALLOCATOR_ENV)
            default = measure("monitor", store.endpoint, card_file, {})
    report(monitor, reference, default)


if __name__ == "__main__":
    main()
