"""`conveyor serve`'s settings: arguments plus environment, every error naming its key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conveyor.contracts.invocations import ServeArgs
from conveyor.errors import SettingsError
from conveyor.serving.settings import ServeSettings

DIGEST = "sha256:" + "a" * 64
ARGS = ServeArgs(
    model="iris-classifier",
    version=3,
    artifact_uri="s3://conveyor/models/ml/iris/runs/r1/model.skops",
    artifact_digest=DIGEST,
    onnx_uri="s3://conveyor/models/ml/iris/runs/r1/model.onnx",
    onnx_digest="sha256:" + "b" * 64,
    card_uri="s3://conveyor/models/ml/iris/runs/r1/card.json",
    cache_dir=Path("/tmp/cache"),
)

SHADOW = {
    "shadow_version": 4,
    "shadow_artifact_uri": "s3://conveyor/models/ml/iris/runs/r2/model.skops",
    "shadow_artifact_digest": "sha256:" + "c" * 64,
}


def test_the_operators_argv_parses_back_into_settings() -> None:
    args = ServeArgs.parse(ARGS.to_argv()[1:])
    env = {
        "CONVEYOR_PORT_HTTP": "9001",
        "CONVEYOR_S3_ENDPOINT": "http://minio:9000",
        "CONVEYOR_SERVE_MAX_BODY_BYTES": "65536",
        "CONVEYOR_SERVE_DRAIN_SECONDS": "0.5",
        "CONVEYOR_LOG_LEVEL": "debug",
    }
    settings = ServeSettings.from_invocation(env, args)
    assert (settings.model, settings.version, settings.port) == ("iris-classifier", 3, 9001)
    assert settings.onnx_digest == ARGS.onnx_digest and settings.cache_dir == Path("/tmp/cache")
    assert settings.s3.endpoint == "http://minio:9000"
    assert (settings.max_body_bytes, settings.drain_seconds) == (65536, 0.5)
    assert settings.log_level == "DEBUG"
    defaults = ServeSettings.from_invocation({}, ServeArgs("m", 1, ARGS.artifact_uri, DIGEST))
    assert (defaults.port, defaults.drain_seconds, defaults.grace_seconds) == (8080, 5.0, 20.0)
    assert defaults.onnx_uri is None and defaults.card_uri is None
    assert defaults.shadow is None and defaults.logs.sample_ratio == 1.0
    shadowed = ServeArgs.parse(ServeArgs(**{**ARGS.__dict__, **SHADOW}).to_argv()[1:])
    shadow = ServeSettings.from_invocation({}, shadowed).shadow
    assert shadow is not None and (shadow.version, shadow.share) == (4, 1.0)


@pytest.mark.parametrize(
    ("change", "env", "key"),
    [
        ({"model": "Iris Classifier"}, {}, "'--model'"),
        ({"version": 0}, {}, "'--version'"),
        ({"artifact_uri": "/models/model.skops"}, {}, "'--artifact-uri'"),
        ({"artifact_uri": "s3://conveyor/"}, {}, "'--artifact-uri'"),
        ({"artifact_digest": "md5:abc"}, {}, "'--artifact-digest'"),
        ({"onnx_digest": None}, {}, "'--onnx-digest' is missing"),
        ({"onnx_uri": None}, {}, "'--onnx-uri' is missing"),
        ({"onnx_digest": "sha256:XYZ"}, {}, "'--onnx-digest'"),
        ({"card_uri": "https://example.com/card.json"}, {}, "'--card-uri'"),
        ({}, {"CONVEYOR_PORT_HTTP": "http"}, "'CONVEYOR_PORT_HTTP' must be an integer"),
        ({}, {"CONVEYOR_PORT_HTTP": "70000"}, "'CONVEYOR_PORT_HTTP' must be 1-65535"),
        ({}, {"CONVEYOR_SERVE_MAX_BODY_BYTES": "10"}, "'CONVEYOR_SERVE_MAX_BODY_BYTES'"),
        ({}, {"CONVEYOR_SERVE_DRAIN_SECONDS": "-1"}, "'CONVEYOR_SERVE_DRAIN_SECONDS'"),
        ({}, {"CONVEYOR_SERVE_GRACE_SECONDS": "soon"}, "'CONVEYOR_SERVE_GRACE_SECONDS'"),
        ({}, {"CONVEYOR_LOG_LEVEL": "LOUD"}, "'CONVEYOR_LOG_LEVEL'"),
        ({}, {"CONVEYOR_S3_ENDPOINT": "minio:9000"}, "'CONVEYOR_S3_ENDPOINT'"),
        ({}, {"AWS_ACCESS_KEY_ID": "key"}, "'AWS_SECRET_ACCESS_KEY' is missing"),
        ({}, {"CONVEYOR_SERVE_LOG_PREDICTIONS": "yes"}, "'CONVEYOR_SERVE_LOG_PREDICTIONS'"),
        ({}, {"CONVEYOR_SERVE_LOG_SAMPLE_RATIO": "2"}, "'CONVEYOR_SERVE_LOG_SAMPLE_RATIO'"),
        ({}, {"CONVEYOR_SERVE_LOG_FLUSH_SECONDS": "0"}, "'CONVEYOR_SERVE_LOG_FLUSH_SECONDS'"),
        (
            {},
            {"CONVEYOR_SERVE_LOG_BATCH_RECORDS": "500", "CONVEYOR_SERVE_LOG_BUFFER_RECORDS": "10"},
            "'CONVEYOR_SERVE_LOG_BATCH_RECORDS'",
        ),
        ({}, {"CONVEYOR_POD_NAMESPACE": "Team_A"}, "'CONVEYOR_POD_NAMESPACE'"),
        ({"shadow_version": 4}, {}, "'--shadow-artifact-uri' is missing"),
        ({**SHADOW, "shadow_version": 3}, {}, "'--shadow-version' must be another version"),
        ({**SHADOW, "shadow_artifact_digest": "x"}, {}, "'--shadow-artifact-digest'"),
        ({**SHADOW, "shadow_onnx_uri": "s3://conveyor/m.onnx"}, {}, "go together"),
        ({**SHADOW, "shadow_share": 0.0}, {}, "'--shadow-share'"),
    ],
)
def test_a_wrong_setting_is_refused_naming_its_key(
    change: dict[str, Any], env: dict[str, str], key: str
) -> None:
    args = ServeArgs(**{**ARGS.__dict__, **change})
    with pytest.raises(SettingsError, match=key):
        ServeSettings.from_invocation(env, args)
