"""Benchmark: the feature transform of a serving request, batch path against row path, beside an
ONNX model's predict on one row.

    .venv/bin/python bench/transform_row.py [--seconds 0.5]

For the iris and diabetes example FeatureSets (fitted on the sandbox's copy of their data, as the
materialize Job fits them), it times `FeatureStep.transform` on JSON request rows:

  batch path   rows_to_batch + conform + FittedTransforms.apply + the float64 matrix (pyarrow),
               the path every request took before the row path, and still takes above
               ROW_PATH_MAX_ROWS rows;
  row path     FeatureStep.transform(rows) on requests of at most ROW_PATH_MAX_ROWS rows
               (features/rowpath.py);
  model        onnxruntime's predict on one transformed row: a logistic regression (iris) and a
               linear regression (diabetes) converted with skl2onnx.

Then, for the serving benchmark's FeatureSet (20 float features, standardScale; bench/serving.py),
the numeric lane (features/row_lane.py) beside the row path without it and the batch path: on
request rows, and on a 1,000-row table of float64 columns as the server builds a V2 batch.

Each figure is the median of several timed loops of about --seconds each, in microseconds per
request and per row. The sizes bracket ROW_PATH_MAX_ROWS, to show where the two paths cross.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pyarrow as pa
import pyarrow.csv as pacsv
import yaml
from serving import FEATURES, train  # bench/serving.py: the same FeatureSet and model
from skl2onnx import to_onnx
from sklearn.datasets import make_classification
from sklearn.linear_model import LinearRegression, LogisticRegression

from conveyor.api.v1alpha1.featureset import FeatureSet
from conveyor.features.conform import conform, rows_to_batch
from conveyor.features.transforms import fit_transforms
from conveyor.sandbox.datasets import DATASETS, render_csv
from conveyor.training.artifacts import ROW_PATH_MAX_ROWS, FeatureStep

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SIZES = (1, 8, 32, ROW_PATH_MAX_ROWS, 128)


def per_call(function: Callable[[], Any], seconds: float) -> float:
    """Median seconds per call over five loops of about `seconds` each."""
    function()
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < seconds / 10:
        function()
        calls += 1
    loop = max(1, int(calls * 10 / 5))
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(loop):
            function()
        timings.append((time.perf_counter() - start) / loop)
    return statistics.median(timings)


def prepare(name: str) -> tuple[FeatureStep, list[dict[str, Any]], np.ndarray]:
    """The FeatureStep as training saves it, JSON request rows, and their targets."""
    spec = FeatureSet.model_validate(
        yaml.safe_load((EXAMPLES / name / "featureset.yaml").read_text())
    ).spec
    data = render_csv(name)
    text = pacsv.read_csv(
        io.BytesIO(data),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(DATASETS[name].columns, pa.string())
        ),
    )
    table = pa.Table.from_batches([conform(text, spec.schema_).batch])
    fitted = fit_transforms(spec, lambda: iter(table.to_batches(max_chunksize=4096)))
    step = FeatureStep(spec.schema_.to_wire(), fitted.to_json())
    typed = pacsv.read_csv(io.BytesIO(data)).to_pylist()
    target = spec.schema_.target
    rows = json.loads(
        json.dumps(
            [{k: v for k, v in row.items() if k != target} for row in typed],
            default=lambda value: value.isoformat(),
        )
    )
    return step, rows, np.array([row[target] for row in typed])


def onnx_predict(name: str, features: np.ndarray, target: np.ndarray) -> Callable[[], Any]:
    """One-row predict of an ONNX model trained on the features."""
    if name == "iris":
        model: Any = LogisticRegression(max_iter=1000).fit(features, target)
        options: dict[Any, Any] = {id(model): {"zipmap": False}}
    else:
        model = LinearRegression().fit(features, target)
        options = {}
    sample = features[:1].astype(np.float32)
    onnx = to_onnx(model, sample, options=options, target_opset=17)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(onnx.SerializeToString(), options)
    feed = {session.get_inputs()[0].name: sample}
    return lambda: session.run(None, feed)


def report(name: str, seconds: float) -> None:
    step, rows, target = prepare(name)
    schema, _ = step._parsed()
    features = step.transform(rows)
    model = per_call(onnx_predict(name, features, target), seconds)
    model_kind = "logistic regression" if name == "iris" else "linear regression"
    print(
        f"\n{name}: {len(features[0])} features; ONNX {model_kind} predict, 1 row: "
        f"{model * 1e6:.1f} us"
    )
    print(f"{'rows':>6} {'batch path':>12} {'per row':>9} {'row path':>10} {'per row':>9}")
    for size in SIZES:
        request = rows[:size]

        def batch(request: list[dict[str, Any]] = request) -> Any:
            return step.transform(pa.Table.from_batches([rows_to_batch(request, schema)]))

        row_figure = ""
        if size <= ROW_PATH_MAX_ROWS:
            row = per_call(lambda request=request: step.transform(request), seconds)
            assert np.array_equal(step.transform(request), batch())
            row_figure = f"{row * 1e6:10.1f} {row / size * 1e6:9.2f}"
        whole = per_call(batch, seconds)
        print(f"{size:>6} {whole * 1e6:12.1f} {whole / size * 1e6:9.2f} {row_figure}")
    large = (rows * (1000 // len(rows) + 1))[:1000]
    thousand = per_call(lambda: step.transform(large), seconds)
    print(f"{1000:>6} {thousand * 1e6:12.1f} {thousand / 1000 * 1e6:9.2f}  (batch path)")


def report_lane(seconds: float) -> None:
    X, y = make_classification(n_samples=5000, n_features=20, n_informative=12, random_state=0)
    step = train("lr", LogisticRegression(max_iter=1000), LogisticRegression(), X, y).pipeline[0]
    schema, fitted = step._parsed()
    path = fitted.row_path(schema)
    assert path is not None and path.lane is not None
    rows = [dict(zip(FEATURES, row, strict=True)) for row in X.tolist()]
    print("\n20 scaled floats (bench/serving.py's FeatureSet)")
    print(f"{'rows':>6} {'batch path':>12} {'row path':>10} {'lane':>8} {'lane per row':>13}")
    for size in (1, 8, ROW_PATH_MAX_ROWS):
        request = rows[:size]
        as_batch = rows_to_batch(request, schema)
        batch = per_call(lambda r=request: step.transform(rows_to_batch(r, schema)), seconds)
        row = per_call(lambda r=request: path.every_row(r), seconds)
        lane = per_call(lambda r=request: step.transform(r), seconds)
        assert step.transform(request).tobytes() == step.transform(as_batch).tobytes()
        print(f"{size:>6} {batch * 1e6:12.1f} {row * 1e6:10.1f} {_lane(lane, size)}")
    table = pa.table({name: X[:1000, i] for i, name in enumerate(FEATURES)})
    (as_batch,) = table.to_batches()
    batch = per_call(lambda: step.transform(as_batch), seconds)
    lane = per_call(lambda: step.transform(table), seconds)
    assert step.transform(table).tobytes() == step.transform(as_batch).tobytes()
    print(f"{1000:>6} {batch * 1e6:12.1f} {'':>10} {_lane(lane, 1000)}  (a table)")


def _lane(seconds: float, rows: int) -> str:
    return f"{seconds * 1e6:8.1f} {seconds / rows * 1e6:13.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="length of one timed loop")
    seconds = parser.parse_args().seconds
    print(f"ROW_PATH_MAX_ROWS = {ROW_PATH_MAX_ROWS}; figures in us (medians of 5 loops)")
    for name in ("iris", "diabetes"):
        report(name, seconds)
    report_lane(seconds)


if __name__ == "__main__":
    main()
