"""Benchmark: Conveyor's model server against MLServer and a bare floor, in one run.

    .venv/bin/python bench/serving.py [--seconds 10] [--mlserver-workers N] [--mlserver-venv DIR]

Two models trained on 20 numeric features (a logistic regression and a 100-tree random forest
of depth 10, each behind the FeatureSet's standardScale), served by three servers, each pinned
to core 0 while wrk (Debian's package: apt-get install wrk) loads it from core 1:

  conveyor   `conveyor serve` as a serving pod runs it, its files from a local S3 server: V2
             parsing and validation, the feature transform, the ONNX estimator, the response,
             request ids and metrics — the whole request path a user gets;
  mlserver   MLServer with its scikit-learn runtime (mlserver, mlserver-sklearn from PyPI, in
             a virtual environment of their own that this script makes), serving the same
             scaler and estimator as a scikit-learn Pipeline (joblib: what that runtime loads);
  floor      a raw ASGI app on the same stack (bench/serving_floor.py) that parses the same V2
             body and calls onnxruntime, nothing else.

Single-row requests at 8 and 32 connections and 1000-row batches at 4: requests/s, p50 and p99
side by side, then the in-process predict time of each model. Then the prediction log's cost:
`conveyor serve` with logging off against logging on (every prediction logged, the default),
run after run on the same models (`--logging-only` runs just that; the S3 server taking the
log's objects runs on wrk's core, as it runs off the pod in a cluster). Prints figures; asserts
nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import timeit
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pyarrow as pa
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from conveyor.api.v1alpha1.featureset import FeatureSetSpec
from conveyor.contracts.invocations import ServeArgs
from conveyor.features.conform import conform
from conveyor.features.transforms import fit_transforms
from conveyor.sandbox.objectstore import ObjectStore
from conveyor.sandbox.processes import free_port
from conveyor.serving.model import ServedModel
from conveyor.training.artifacts import build_pipeline, digest, dump_model, load_model
from conveyor.training.onnx import export_onnx

ROOT = Path(__file__).resolve().parents[1]
# uvloop 0.22 and newer fail in MLServer 1.7.1's inference workers ("There is no current event
# loop in thread 'MainThread'"): its default configuration needs an older one.
MLSERVER = ("mlserver==1.7.1", "mlserver-sklearn==1.7.1", "scikit-learn==1.9.1", "uvloop==0.21.0")
FEATURES = [f"f{i:02d}" for i in range(20)]
SCENARIOS = (("1 row", 1, 8), ("1 row", 1, 32), ("1000 rows", 1000, 4))
SPEC = {
    "sources": [{"name": "bench", "uri": "s3://conveyor-raw/bench/*.csv"}],
    "schema": {
        "target": "label",
        "columns": [{"name": n, "type": "float"} for n in FEATURES]
        + [{"name": "label", "type": "int"}],
    },
    "transforms": [{"op": "standardScale", "columns": FEATURES}],
}


@dataclass
class Model:
    name: str
    pipeline: Any  # Conveyor's: FeatureStep, then the estimator
    skops: bytes
    onnx: bytes
    reference: Pipeline  # MLServer's: StandardScaler, then the same kind of estimator
    rows: np.ndarray


@dataclass
class Result:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def train(name: str, estimator: Any, reference: Any, X: np.ndarray, y: np.ndarray) -> Model:
    spec = FeatureSetSpec.model_validate(SPEC)
    records = [
        dict(zip(FEATURES, row, strict=True)) | {"label": int(t)}
        for row, t in zip(X, y, strict=True)
    ]
    batch = conform(pa.Table.from_pylist(records), spec.schema_).batch
    fitted = fit_transforms(spec, lambda: [batch])
    table = fitted.apply(batch)
    features = np.column_stack([table.column(c).to_numpy() for c in fitted.feature_columns])
    pipeline = build_pipeline(estimator, schema=spec.schema_.to_wire(), transforms=fitted.to_json())
    pipeline.fit(features, y)
    exported = export_onnx(pipeline, features[:500])
    assert exported.data is not None, exported.card
    reference = Pipeline([("scale", StandardScaler()), ("model", reference)]).fit(X, y)
    return Model(name, pipeline, dump_model(pipeline), exported.data, reference, X)


def v2_columns(rows: np.ndarray) -> bytes:
    """Conveyor's (and the floor's) V2 body: one tensor per input column."""
    inputs = [
        {"name": n, "shape": [len(rows)], "datatype": "FP64", "data": rows[:, i].tolist()}
        for i, n in enumerate(FEATURES)
    ]
    return json.dumps({"inputs": inputs}).encode()


def v2_matrix(rows: np.ndarray) -> bytes:
    """MLServer's: one [N, 20] tensor, as its scikit-learn runtime takes it."""
    tensor = {
        "name": "input-0",
        "shape": list(rows.shape),
        "datatype": "FP64",
        "data": rows.ravel().tolist(),
    }
    return json.dumps({"inputs": [tensor]}).encode()


# Servers -------------------------------------------------------------------------------------


def pinned(core: int) -> list[str]:
    return ["taskset", "-c", str(core)]


@contextmanager
def running(
    argv: list[str], ready_url: str, log: Path, env: dict[str, str] | None = None
) -> Iterator[None]:
    with open(log, "ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{argv[3:6]} exited ({process.returncode}); see {log}")
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ready_url} not ready in 120 s; see {log}")
            time.sleep(0.2)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def conveyor_server(
    model: Model, store: ObjectStore, work: Path, *, logging: bool = True
) -> Iterator[str]:
    prefix = f"models/bench/{model.name}/runs/r1"
    card = {
        "format": 1,
        "kind": "ModelCard",
        "sample_row": dict(zip(FEATURES, model.rows[0].tolist(), strict=True)),
    }
    with closing(store.client()) as s3:
        for key, data in (
            ("model.skops", model.skops),
            ("model.onnx", model.onnx),
            ("card.json", json.dumps(card).encode()),
        ):
            s3.put_object(Bucket="conveyor", Key=f"{prefix}/{key}", Body=data)
    port = free_port()
    uri = f"s3://conveyor/{prefix}"
    args = ServeArgs(
        model=model.name,
        version=1,
        artifact_uri=f"{uri}/model.skops",
        artifact_digest=digest(model.skops),
        onnx_uri=f"{uri}/model.onnx",
        onnx_digest=digest(model.onnx),
        card_uri=f"{uri}/card.json",
        cache_dir=work / f"cache-{model.name}",
    )
    argv = [*pinned(0), sys.executable, "-m", "conveyor", *args.to_argv()]
    env = {
        **os.environ,
        "CONVEYOR_PORT_HTTP": str(port),
        "CONVEYOR_S3_ENDPOINT": store.endpoint,
        "AWS_ACCESS_KEY_ID": store.credentials.access_key,
        "AWS_SECRET_ACCESS_KEY": store.credentials.secret_key,
        "CONVEYOR_LOG_LEVEL": "WARNING",
        "CONVEYOR_SERVE_LOG_PREDICTIONS": "true" if logging else "false",
    }
    url = f"http://127.0.0.1:{port}"
    with running(argv, f"{url}/v2/health/ready", work / f"conveyor-{model.name}.log", env):
        yield f"{url}/v2/models/{model.name}/infer"


@contextmanager
def floor_server(model: Model, work: Path) -> Iterator[str]:
    onnx_file = work / f"{model.name}.onnx"
    onnx_file.write_bytes(model.onnx)
    port = free_port()
    argv = [
        *pinned(0),
        sys.executable,
        str(ROOT / "bench" / "serving_floor.py"),
        str(onnx_file),
        str(port),
    ]
    url = f"http://127.0.0.1:{port}/v2/models/{model.name}"
    with running(argv, f"{url}/ready", work / f"floor-{model.name}.log"):
        yield f"{url}/infer"


def mlserver_venv(directory: Path) -> Path:
    """MLServer and its scikit-learn runtime in a virtual environment of their own."""
    binary = directory / "bin" / "mlserver"
    if not binary.exists():
        print(f"# making {directory} with {', '.join(MLSERVER)} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(directory)], check=True)
        pip = [str(directory / "bin" / "pip"), "install", "--quiet", *MLSERVER]
        subprocess.run(pip, check=True)
    return binary


@contextmanager
def mlserver(models: list[Model], binary: Path, work: Path, workers: int | None) -> Iterator[str]:
    repository = work / "mlserver"
    for model in models:
        folder = repository / model.name
        folder.mkdir(parents=True, exist_ok=True)
        joblib.dump(model.reference, folder / "model.joblib")
        settings = {
            "name": model.name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "version": "v1"},
        }
        (folder / "model-settings.json").write_text(json.dumps(settings))
    port = free_port()
    # MLServer as a user gets it (its defaults), on this machine's ports; --mlserver-workers 0
    # runs inference in the server's own process instead of its worker pool.
    server: dict[str, Any] = {
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "host": "127.0.0.1",
    }
    if workers is not None:
        server["parallel_workers"] = workers
    (repository / "settings.json").write_text(json.dumps(server))
    url = f"http://127.0.0.1:{port}"
    ready = f"{url}/v2/models/{models[-1].name}/ready"
    with running([*pinned(0), str(binary), "start", str(repository)], ready, work / "mlserver.log"):
        yield f"{url}/v2/models/{{model}}/infer"


# Load ----------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, body: bytes, connections: int, seconds: float, work: Path) -> Result:
    script = work / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
    )
    argv = [
        *pinned(1),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", output, re.M))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    return Result(
        float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        _milliseconds(latency["50"]),
        _milliseconds(latency["99"]),
        errors,
    )


def _milliseconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def load(url: str, body: bytes, connections: int, seconds: float, work: Path) -> Result:
    """A short warm-up, then the measured run."""
    wrk(url, body, connections, min(2.0, seconds), work)
    return wrk(url, body, connections, seconds, work)


# In-process ----------------------------------------------------------------------------------


def predict_micros(model: Model) -> dict[str, float]:
    """µs per single-row predict, in this process: scikit-learn's estimator on its features,
    the ONNX estimator, and Conveyor's whole path from a raw record (feature step + ONNX)."""
    served = ServedModel(
        model.name, 1, load_model(model.skops, expected_digest=digest(model.skops)), model.onnx
    )
    record = [dict(zip(FEATURES, model.rows[0].tolist(), strict=True))]
    features = served.features.transform(record)
    estimator = model.pipeline.steps[-1][1]

    def best(call: Any) -> float:
        timer = timeit.Timer(call)
        number, _ = timer.autorange()
        return min(timer.repeat(5, number)) / number * 1e6

    return {
        "scikit-learn predict_proba": best(lambda: estimator.predict_proba(features)),
        "ONNX estimator": best(lambda: served.runtime.predict(features)),
        "Conveyor raw record → answer": best(lambda: served.predict(record)),
    }


# Report --------------------------------------------------------------------------------------


def report(results: dict[tuple[str, str, str], Result]) -> None:
    header = ("model", "request", "server", "req/s", "p50 ms", "p99 ms", "errors", "vs MLServer")
    print("\n{:<6} {:<16} {:<9} {:>9} {:>8} {:>8} {:>6} {:>12} {:>9}".format(*header, "vs floor"))
    for (model, scenario, server), result in results.items():
        mls = results[(model, scenario, "mlserver")].requests_per_second
        floor = results[(model, scenario, "floor")].requests_per_second
        rate = result.requests_per_second
        print(
            f"{model:<6} {scenario:<16} {server:<9} {rate:>9,.0f} {result.p50_ms:>8.2f} "
            f"{result.p99_ms:>8.2f} {result.errors:>6} {rate / mls:>11.1f}x {rate / floor:>8.2f}x"
        )
    print(
        "\nTargets (issue #9): single-row >= 10x MLServer (lr), >= 80x (rf), >= 2/3 of the floor;"
        " p99 below MLServer's; 1000-row batches >= 4x MLServer"
    )
    for model, scenario, server in results:
        if server == "conveyor":
            print(f"  {model:<4} {scenario:<16} " + "; ".join(_checks(results, model, scenario)))


def _checks(results: dict[tuple[str, str, str], Result], model: str, scenario: str) -> list[str]:
    ours, mls = results[(model, scenario, "conveyor")], results[(model, scenario, "mlserver")]
    ratio = ours.requests_per_second / mls.requests_per_second
    batch = scenario.startswith("1000")
    wanted = 4 if batch else (10 if model == "lr" else 80)
    lower = ours.p99_ms < mls.p99_ms
    checks = [
        f"{ratio:.1f}x MLServer (target {wanted}x): {'met' if ratio >= wanted else 'NOT met'}",
        f"p99 {ours.p99_ms:.2f} vs {mls.p99_ms:.2f} ms: {'lower' if lower else 'NOT lower'}",
    ]
    if not batch:
        share = ours.requests_per_second / results[(model, scenario, "floor")].requests_per_second
        met = "met" if share >= 2 / 3 else "NOT met"
        checks.append(f"{share:.2f} of the floor (target 0.67): {met}")
    return checks


def logging_cost(
    models: list[Model], bodies: dict[int, tuple[bytes, bytes]], seconds: float, work: Path
) -> None:
    """Requests/s with the prediction log off and on, same models, same run."""
    rows = []
    with ObjectStore(data_dir=work / "s3-logs", log_file=work / "s3-logs.log") as store:
        store.ensure_buckets("conveyor")
        # The S3 server answering the log's PUTs is no part of a serving pod's cost (it runs
        # elsewhere in a cluster): keep it off the server's core, with wrk.
        subprocess.run(
            ["taskset", "-apc", "1", str(store.process.pid)], check=True, stdout=subprocess.DEVNULL
        )
        for model in models:
            rates: dict[tuple[str, bool], Result] = {}
            for logging in (False, True):
                with conveyor_server(model, store, work, logging=logging) as url:
                    for scenario, size, connections in SCENARIOS:
                        name = f"{scenario}, c={connections}"
                        rates[(name, logging)] = load(
                            url, bodies[size][0], connections, seconds, work
                        )
                        print(f"# {model.name} {name} logging={logging}: {rates[(name, logging)]}")
            for scenario, _, connections in SCENARIOS:
                name = f"{scenario}, c={connections}"
                off, on = rates[(name, False)], rates[(name, True)]
                rows.append((model.name, name, off, on))
    print("\nPrediction log cost (target: under 10%)")
    print(
        f"{'model':<6} {'request':<16} {'off req/s':>10} {'on req/s':>10} {'cost':>7} "
        f"{'p99 off':>8} {'p99 on':>8}"
    )
    for model_name, name, off, on in rows:
        cost = 1 - on.requests_per_second / off.requests_per_second
        print(
            f"{model_name:<6} {name:<16} {off.requests_per_second:>10,.0f} "
            f"{on.requests_per_second:>10,.0f} {cost:>7.1%} {off.p99_ms:>8.2f} {on.p99_ms:>8.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="each measured wrk run")
    parser.add_argument(
        "--mlserver-workers",
        type=int,
        help="MLServer's parallel_workers (default: MLServer's own default)",
    )
    parser.add_argument(
        "--mlserver-venv", type=Path, default=Path.home() / ".cache" / "conveyor-bench" / "mlserver"
    )
    parser.add_argument(
        "--logging-only", action="store_true", help="measure the prediction log's cost only"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        sys.exit("bench/serving.py needs wrk and taskset: apt-get install wrk util-linux")
    if (os.cpu_count() or 1) < 2:
        sys.exit("bench/serving.py needs two cores: the server on one, wrk on the other")
    X, y = make_classification(n_samples=5000, n_features=20, n_informative=12, random_state=0)
    models = [
        train("lr", LogisticRegression(max_iter=1000), LogisticRegression(max_iter=1000), X, y),
        train(
            "rf",
            RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0),
            RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0),
            X,
            y,
        ),
    ]
    bodies = {
        size: (v2_columns(X[:size]), v2_matrix(X[:size])) for size in {s for _, s, _ in SCENARIOS}
    }
    if args.logging_only:
        with tempfile.TemporaryDirectory(prefix="conveyor-bench-serving-") as tmp:
            logging_cost(models, bodies, args.seconds, Path(tmp))
        return
    binary = mlserver_venv(args.mlserver_venv)
    results: dict[tuple[str, str, str], Result] = {}
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-serving-") as tmp:
        work = Path(tmp)
        store = ObjectStore(data_dir=work / "s3", log_file=work / "s3.log")
        with store:
            store.ensure_buckets("conveyor")
            for model in models:
                with conveyor_server(model, store, work) as url:
                    for scenario, size, connections in SCENARIOS:
                        key = (model.name, f"{scenario}, c={connections}", "conveyor")
                        results[key] = load(url, bodies[size][0], connections, args.seconds, work)
                        print(f"# {key}: {results[key]}", flush=True)
        with mlserver(models, binary, work, args.mlserver_workers) as template:
            for model in models:
                for scenario, size, connections in SCENARIOS:
                    key = (model.name, f"{scenario}, c={connections}", "mlserver")
                    url = template.format(model=model.name)
                    results[key] = load(url, bodies[size][1], connections, args.seconds, work)
                    print(f"# {key}: {results[key]}", flush=True)
        for model in models:
            with floor_server(model, work) as url:
                for scenario, size, connections in SCENARIOS:
                    key = (model.name, f"{scenario}, c={connections}", "floor")
                    results[key] = load(url, bodies[size][0], connections, args.seconds, work)
                    print(f"# {key}: {results[key]}", flush=True)
    ordered = dict(
        sorted(
            results.items(),
            key=lambda item: (
                item[0][0],
                item[0][1],
                ["conveyor", "mlserver", "floor"].index(item[0][2]),
            ),
        )
    )
    report(ordered)
    print("\nIn-process, one row (µs, best of 5):")
    for model in models:
        times = predict_micros(model)
        print(
            f"  {model.name}: " + "; ".join(f"{name} {value:.1f}" for name, value in times.items())
        )
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-serving-") as tmp:
        logging_cost(models, bodies, args.seconds, Path(tmp))


if __name__ == "__main__":
    main()
