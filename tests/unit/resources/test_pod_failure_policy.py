"""A Job fails at the first pod whose program said no retry can help: the builder's
podFailurePolicy and the programs' exit codes come from one table."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from conveyor.api.v1alpha1 import FeatureSet, TrainingPipeline
from conveyor.contracts.outcomes import (
    MATERIALIZE_OUTCOMES,
    TRAIN_OUTCOMES,
    Outcome,
    permanent_exit_codes,
)
from conveyor.jobs.common import EXIT_INTERNAL_ERROR, JobError, run_program
from conveyor.jobs.materialize import errors as materialize_errors
from conveyor.jobs.train import errors as train_errors
from conveyor.resources.jobs import build_materialize_job, build_training_job
from conveyor.resources.workloads import JobSettings, pod_failure_policy
from tests.conftest import EXAMPLES, load_yaml_documents

SETTINGS = JobSettings("conveyor:0.1.0", "http://s3:9000", "us-east-1", "conveyor")


def _example(name: str) -> dict[str, Any]:
    body = load_yaml_documents(EXAMPLES / "iris" / name)[0]
    body["metadata"].update(namespace="team-a", uid="u-1", generation=1)
    return body


def _materialize_job() -> dict[str, Any]:
    featureset = FeatureSet.from_body(_example("featureset.yaml"))
    return build_materialize_job(featureset, "0123456789abcdef", "all", SETTINGS)


def _training_job() -> dict[str, Any]:
    pipeline = TrainingPipeline.from_body(_example("trainingpipeline.yaml"))
    return build_training_job(
        pipeline,
        run="iris-r1",
        snapshot="snap1",
        phase="all",
        featureset=_example("featureset.yaml"),
        champion=None,
        settings=SETTINGS,
    )


def _errors_of(module: Any) -> list[type[JobError]]:
    """Every JobError the program can raise: those its errors module names."""
    return [
        value
        for name in module.__all__
        if isinstance(value := getattr(module, name), type) and issubclass(value, JobError)
    ]


def _fail_job_codes(job: dict[str, Any]) -> set[int]:
    rules = job["spec"]["podFailurePolicy"]["rules"]
    fail = [rule for rule in rules if rule["action"] == "FailJob"]
    assert len(fail) == 1 and fail[0]["onExitCodes"]["operator"] == "In"
    assert fail[0]["onExitCodes"]["containerName"] == "main"
    return set(fail[0]["onExitCodes"]["values"])


PROGRAMS = [
    pytest.param(_materialize_job, materialize_errors, MATERIALIZE_OUTCOMES, id="materialize"),
    pytest.param(_training_job, train_errors, TRAIN_OUTCOMES, id="train"),
]


@pytest.mark.parametrize(("build", "module", "outcomes"), PROGRAMS)
def test_the_job_fails_at_once_on_exactly_the_errors_no_retry_can_fix(
    build: Any, module: Any, outcomes: tuple[Outcome, ...]
) -> None:
    job = build()
    codes = _fail_job_codes(job)
    errors = _errors_of(module)
    assert len(errors) >= 8
    for error in errors:
        if error.retryable:
            assert error.exit_code not in codes, f"{error.__name__} may pass on a retry"
        else:
            assert error.exit_code in codes, f"{error.__name__} would be retried in vain"
    # Each error a program raises is an outcome of its table, so its code says which one.
    named = {error.outcome for error in errors if error.outcome is not None}
    assert named <= set(outcomes)
    assert EXIT_INTERNAL_ERROR not in codes  # a bug, or Python's own exit on an exception


@pytest.mark.parametrize(("build", "module", "outcomes"), PROGRAMS)
def test_the_policy_is_valid_for_kubernetes(
    build: Any, module: Any, outcomes: tuple[Outcome, ...]
) -> None:
    job = build()
    kubernetes_validate.validate(job, kubernetes_validate.latest_version(), strict=True)
    spec = job["spec"]
    assert spec["template"]["spec"]["restartPolicy"] == "Never"  # required by podFailurePolicy
    values = spec["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"]
    assert values == sorted(set(values)) and 0 not in values  # ordered, unique, never 0
    disruption = spec["podFailurePolicy"]["rules"][1]
    assert disruption == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }


def test_an_unexpected_exception_exits_with_a_code_that_is_retried() -> None:
    def crash() -> dict[str, Any]:
        raise KeyError("x")

    code = run_program(crash, output_json=None, keep={}, activity="Testing", env={})
    assert code not in permanent_exit_codes(MATERIALIZE_OUTCOMES)
    assert code not in permanent_exit_codes(TRAIN_OUTCOMES)


def test_one_code_for_two_outcomes_is_refused() -> None:
    twice = [Outcome("Broken", 4, retryable=False), Outcome("Flaky", 4, retryable=True)]
    with pytest.raises(ValueError, match="Exit code 4 stands for both Broken and Flaky"):
        permanent_exit_codes(twice)


def test_exit_codes_stay_clear_of_success_and_signals() -> None:
    with pytest.raises(ValueError, match=r"not in 1\.\.127"):
        Outcome("Killed", 137, retryable=True)
    with pytest.raises(ValueError, match="non-zero exit codes"):
        pod_failure_policy([0, 2])
