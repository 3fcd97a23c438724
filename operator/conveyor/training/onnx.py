"""The estimator as ONNX: exported at training where skl2onnx converts it, and used for serving
only when it answered the holdout rows as scikit-learn does.

What is exported is the served pipeline after its feature step: the optional `select` step
(spec.features) and the estimator. The feature step stays in the skops file; a server runs it on
the raw rows, then this model on its output. The file's interface (input "features", outputs
"label" and "probabilities", or "prediction") and its safe loading are in `onnx_file.py`.

The model's first node casts the features to float32, the precision it computes in: skl2onnx's
converters and onnxruntime's kernels are float32 throughout (the double path fails in
onnxruntime for every tree ensemble, SVR, bagging and AdaBoost model), and scikit-learn's own
trees compare float32 features.

The parity check runs the file through `load_onnx()`, as a server would, on the holdout rows:

- classifiers: every label equal, probabilities within `PROBABILITY_TOLERANCE` (absolute);
- regressors: predictions within `REGRESSION_TOLERANCE` of the largest |prediction| (relative).

Float32 rounding gives at most 5e-6 on probabilities and 5e-7 relative on predictions (measured
over the allowlist on iris, diabetes and 20-feature synthetic data): the tolerances leave a
margin of 20x and more, and lie far below the fourth digit a metric shows. Rows with a missing
value (NaN) are checked apart, on the holdout rows that have one and on complete ones with one
feature blanked at a time: skl2onnx 1.20 ignores the NaN routing scikit-learn's decision trees and
forests learn, so they answer such rows differently. `answers_missing_values` in the card tells a
server whether such rows may go through ONNX or must go through the skops pipeline.

No converter, a failed conversion or a failed check: no ONNX file, and the card's `reason` says
why (a server then serves the skops pipeline). A run never fails because of ONNX.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnx.utils
import onnxruntime as ort
import skl2onnx
from skl2onnx import convert_sklearn, get_model_alias
from skl2onnx.common._registration import get_converter  # options: no public way to ask
from skl2onnx.common.data_types import FloatTensorType
from sklearn.base import is_classifier
from sklearn.pipeline import Pipeline

from .artifacts import digest
from .onnx_file import (
    INPUT_NAME,
    LABEL_OUTPUT,
    ONNX_FILE,
    PREDICTION_OUTPUT,
    PROBABILITIES_OUTPUT,
    describe_error,
    load_onnx,
)

__all__ = [
    "MISSING_VALUE_ROWS",
    "PROBABILITY_TOLERANCE",
    "REGRESSION_TOLERANCE",
    "OnnxExport",
    "Parity",
    "estimator_part",
    "export_onnx",
]

PROBABILITY_TOLERANCE = 1e-4
"""Largest absolute difference allowed between ONNX's and scikit-learn's class probabilities."""
REGRESSION_TOLERANCE = 1e-4
"""Largest difference allowed between the predictions, relative to the largest |prediction|."""
MISSING_VALUE_ROWS = 16
"""Complete holdout rows blanked one feature at a time to check rows with a missing value."""

_FLOAT_INPUT = "features_float32"  # the converted graph's own input, fed by the Cast


@dataclass(frozen=True)
class Parity:
    """How ONNX's answers compared with scikit-learn's on some rows."""

    rows: int
    passed: bool
    label_agreement: float | None = None
    """Classifiers: the share of rows whose labels are equal (1.0 needed)."""
    max_abs_diff: float | None = None
    """The largest difference of a probability (classifiers) or a prediction (regressors)."""
    max_rel_diff: float | None = None
    """Regressors: max_abs_diff over the largest |prediction|."""
    tolerance: float | None = None
    """The bound max_abs_diff (classifiers) or max_rel_diff (regressors) must stay within."""
    failure: str | None = None
    """Why it did not pass."""

    def to_card(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "label_agreement": self.label_agreement,
            "max_abs_diff": self.max_abs_diff,
            "max_rel_diff": self.max_rel_diff,
            "tolerance": self.tolerance,
            "passed": self.passed,
            "failure": self.failure,
        }


@dataclass(frozen=True)
class OnnxExport:
    """The ONNX file (None when not exported) and the card's `onnx` block."""

    data: bytes | None
    card: dict[str, Any]

    @property
    def exported(self) -> bool:
        return self.data is not None


def estimator_part(pipeline: Pipeline) -> Any:
    """What follows the feature step of a served pipeline: the estimator, or a Pipeline of the
    `select` step and the estimator."""
    if not isinstance(pipeline, Pipeline) or pipeline.steps[0][0] != "features":
        raise ValueError("expected the served Pipeline: a 'features' step, then the estimator")
    steps = pipeline.steps[1:]
    return steps[0][1] if len(steps) == 1 else Pipeline(steps)


def export_onnx(pipeline: Pipeline, holdout: np.ndarray) -> OnnxExport:
    """The estimator part of a fitted served pipeline as ONNX, checked on the holdout rows (the
    feature step's output: every snapshot feature column, float64)."""
    served = estimator_part(pipeline)
    estimator = pipeline.steps[-1][1]
    name = type(estimator).__name__
    classifier = is_classifier(estimator)
    if _converter_alias(estimator) is None:
        return _not_exported(f"skl2onnx {skl2onnx.__version__} has no converter for {name}")
    try:
        model = _convert(served, estimator, width=holdout.shape[1], classifier=classifier)
    except Exception as error:  # a converter's own complaint: the run goes on without ONNX
        return _not_exported(f"skl2onnx could not convert {name}: {describe_error(error)}")
    data = model.SerializeToString()
    interface = _interface(model, estimator, width=holdout.shape[1])
    try:
        with warnings.catch_warnings():
            # Answers are compared, not warnings: scikit-learn warns where it answers NaN (a
            # radius without neighbours), which `-W error` would turn into another outcome.
            warnings.simplefilter("ignore")
            session = load_onnx(data, expected_digest=digest(data))
            parity = _compare(session, served, _complete_rows(holdout), classifier)
            missing = _missing_values_parity(session, served, holdout, classifier)
    except Exception as error:  # onnxruntime's refusal or failure on these rows
        reason = f"the ONNX export of {name} could not be checked: {describe_error(error)}"
        return _not_exported(reason, **interface)
    checked = {**interface, "parity": parity.to_card(), "missing_values": missing.to_card()}
    if not parity.passed:
        return _not_exported(
            f"ONNX does not answer as scikit-learn does: {parity.failure}", **checked
        )
    card = _card(exported=True, reason=None, **checked, answers_missing_values=missing.passed)
    return OnnxExport(data, card)


# Conversion ---------------------------------------------------------------------------------------


def _converter_alias(estimator: Any) -> str | None:
    try:
        alias: str = get_model_alias(type(estimator))
    except RuntimeError:  # skl2onnx's "Unable to find alias ... converter is likely missing"
        return None
    return alias


def _convert(served: Any, estimator: Any, *, width: int, classifier: bool) -> onnx.ModelProto:
    options = None
    if classifier and "zipmap" in _converter_options(estimator):
        options = {id(estimator): {"zipmap": False}}  # probabilities as a tensor, not maps
    outputs = [LABEL_OUTPUT, PROBABILITIES_OUTPUT] if classifier else [PREDICTION_OUTPUT]
    with warnings.catch_warnings():
        # Converters read deprecated attributes (SVC's probA_): the converter's business,
        # not the run's.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        model = convert_sklearn(
            served,
            initial_types=[(_FLOAT_INPUT, FloatTensorType([None, width]))],
            options=options,
            final_types=[(name, None) for name in outputs],
        )
    if classifier and not hasattr(served, "predict_proba"):
        # Without predict_proba the second output holds decision scores, which nobody serves.
        model = onnx.utils.Extractor(model).extract_model([_FLOAT_INPUT], [LABEL_OUTPUT])
    _take_float64(model, width)
    onnx.checker.check_model(model)
    return model


def _converter_options(estimator: Any) -> set[str]:
    """The options skl2onnx's converter of `estimator` accepts (it refuses any other)."""
    try:
        allowed = get_converter(_converter_alias(estimator)).get_allowed_options()
    except (KeyError, ValueError, RuntimeError):
        return set()
    return set(allowed or ())


def _take_float64(model: onnx.ModelProto, width: int) -> None:
    """Give the model the feature step's float64 matrix as its input, cast to float32 inside."""
    graph = model.graph
    cast = onnx.helper.make_node(
        "Cast", [INPUT_NAME], [_FLOAT_INPUT], to=onnx.TensorProto.FLOAT, name="features_as_float32"
    )
    graph.node.insert(0, cast)
    del graph.input[:]
    graph.input.append(
        onnx.helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.DOUBLE, [None, width])
    )


def _interface(model: onnx.ModelProto, estimator: Any, *, width: int) -> dict[str, Any]:
    outputs = {output.name for output in model.graph.output}
    if PREDICTION_OUTPUT in outputs:
        named = {"prediction": PREDICTION_OUTPUT}
    else:
        named = {"label": LABEL_OUTPUT}
        if PROBABILITIES_OUTPUT in outputs:
            named["probabilities"] = PROBABILITIES_OUTPUT
    classes = getattr(estimator, "classes_", None)
    return {
        "input": {"name": INPUT_NAME, "type": "double", "shape": [None, width]},
        "outputs": named,
        "classes": None if classes is None else list(np.asarray(classes).tolist()),
        "opset": {(entry.domain or "ai.onnx"): entry.version for entry in model.opset_import},
    }


def _card(
    *,
    exported: bool,
    reason: str | None,
    input: dict[str, Any] | None = None,
    outputs: dict[str, str] | None = None,
    classes: list[Any] | None = None,
    opset: dict[str, int] | None = None,
    parity: dict[str, Any] | None = None,
    missing_values: dict[str, Any] | None = None,
    answers_missing_values: bool = False,
) -> dict[str, Any]:
    """The card's `onnx` block: every key, always, in this order."""
    return {
        "exported": exported,
        "reason": reason,
        "file": ONNX_FILE if exported else None,
        "input": input,
        "outputs": outputs,
        "classes": classes,
        "opset": opset,
        "parity": parity,
        "missing_values": missing_values,
        "answers_missing_values": answers_missing_values,
    }


def _not_exported(reason: str, **known: Any) -> OnnxExport:
    return OnnxExport(None, _card(exported=False, reason=reason, **known))


# The parity check ---------------------------------------------------------------------------------


def _complete_rows(rows: np.ndarray) -> np.ndarray:
    return rows[~np.isnan(rows).any(axis=1)]


def _compare(
    session: ort.InferenceSession, served: Any, rows: np.ndarray, classifier: bool
) -> Parity:
    if not len(rows):
        return Parity(rows=0, passed=False, failure="no holdout row to check on")
    return _compare_answers(session, rows, _sklearn_answers(served, rows, classifier))


def _sklearn_answers(served: Any, rows: np.ndarray, classifier: bool) -> dict[str, np.ndarray]:
    """What the skops pipeline's estimator part answers, under the ONNX output names."""
    if not classifier:
        return {PREDICTION_OUTPUT: np.asarray(served.predict(rows), dtype=np.float64)}
    answers = {LABEL_OUTPUT: np.asarray(served.predict(rows))}
    if hasattr(served, "predict_proba"):
        answers[PROBABILITIES_OUTPUT] = np.asarray(served.predict_proba(rows))
    return answers


def _compare_answers(
    session: ort.InferenceSession, rows: np.ndarray, expected: dict[str, np.ndarray]
) -> Parity:
    answers = dict(zip(_output_names(session), session.run(None, {INPUT_NAME: rows}), strict=True))
    wrong = _shape_problems(answers, expected, len(rows))
    if wrong:  # a server would read such an output wrongly, whatever its values
        return Parity(rows=len(rows), passed=False, failure=wrong)
    if LABEL_OUTPUT in expected:
        return _compare_classes(answers, expected, len(rows))
    wanted = expected[PREDICTION_OUTPUT].ravel()
    largest = _max_abs(answers[PREDICTION_OUTPUT].ravel(), wanted)
    scale = float(np.max(np.abs(wanted))) if np.all(np.isfinite(wanted)) else math.inf
    relative = largest / scale if scale > 0 else (0.0 if largest == 0 else math.inf)
    passed = relative <= REGRESSION_TOLERANCE
    return Parity(
        rows=len(rows),
        passed=passed,
        max_abs_diff=largest,
        max_rel_diff=relative,
        tolerance=REGRESSION_TOLERANCE,
        failure=None
        if passed
        else f"predictions differ by up to {relative:.3g} of the largest prediction on "
        f"{len(rows)} rows (tolerance {REGRESSION_TOLERANCE:g})",
    )


def _shape_problems(
    answers: dict[str, np.ndarray], expected: dict[str, np.ndarray], rows: int
) -> str | None:
    """Outputs missing, or not shaped as the file's interface says: label [N], probabilities
    [N, classes], prediction [N, 1]."""
    shapes = {
        LABEL_OUTPUT: (rows,),
        PROBABILITIES_OUTPUT: (rows, expected.get(PROBABILITIES_OUTPUT, np.empty((0, 0))).shape[1]),
        PREDICTION_OUTPUT: (rows, 1),
    }
    for name in expected:
        if name not in answers:
            return f"the ONNX model has no {name!r} output"
        shape = tuple(np.shape(answers[name]))
        if shape != shapes[name]:
            return f"the {name!r} output has shape {shape}, not {shapes[name]}"
    return None


def _compare_classes(
    answers: dict[str, np.ndarray], expected: dict[str, np.ndarray], rows: int
) -> Parity:
    labels = np.asarray(answers[LABEL_OUTPUT]).tolist()
    agreement = sum(map(_same_label, labels, expected[LABEL_OUTPUT].tolist())) / rows
    largest = None
    if PROBABILITIES_OUTPUT in expected:
        largest = _max_abs(answers[PROBABILITIES_OUTPUT], expected[PROBABILITIES_OUTPUT])
    problems = []
    if agreement < 1.0:
        problems.append(f"{round((1 - agreement) * rows)} of {rows} labels differ")
    if largest is not None and not largest <= PROBABILITY_TOLERANCE:
        problems.append(
            f"probabilities differ by up to {largest:.3g} on {rows} rows "
            f"(tolerance {PROBABILITY_TOLERANCE:g})"
        )
    return Parity(
        rows=rows,
        passed=not problems,
        label_agreement=agreement,
        max_abs_diff=largest,
        tolerance=PROBABILITY_TOLERANCE if largest is not None else None,
        failure="; ".join(problems) or None,
    )


def _missing_values_parity(
    session: ort.InferenceSession, served: Any, holdout: np.ndarray, classifier: bool
) -> Parity:
    """Parity on rows with a missing value: the holdout's own, and complete rows with one
    feature blanked at a time."""
    probe = np.concatenate([holdout[np.isnan(holdout).any(axis=1)], *_blanked(holdout)])
    if not len(probe):
        return Parity(rows=0, passed=False, failure="no row with a missing value to check on")
    try:
        expected = _sklearn_answers(served, probe, classifier)
    except ValueError as error:  # "Input X contains NaN": the estimator takes none
        return Parity(
            rows=0,
            passed=False,
            failure=f"scikit-learn refuses missing values here: {describe_error(error)}",
        )
    return _compare_answers(session, probe, expected)


def _blanked(holdout: np.ndarray) -> Iterator[np.ndarray]:
    complete = _complete_rows(holdout)[:MISSING_VALUE_ROWS]
    for column in range(holdout.shape[1]):
        rows = complete.copy()
        rows[:, column] = np.nan
        yield rows


def _same_label(onnx_label: Any, sklearn_label: Any) -> bool:
    return bool(onnx_label == sklearn_label)


def _max_abs(actual: np.ndarray, expected: np.ndarray) -> float:
    """The largest |actual - expected|; inf where only one of them is NaN or the shapes differ."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        return math.inf
    both_missing = np.isnan(actual) & np.isnan(expected)
    difference = np.abs(actual - expected)
    difference[both_missing] = 0.0
    difference[np.isnan(difference)] = math.inf
    return float(difference.max()) if difference.size else 0.0


def _output_names(session: ort.InferenceSession) -> list[str]:
    return [output.name for output in session.get_outputs()]
