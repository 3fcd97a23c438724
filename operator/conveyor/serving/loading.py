"""From the registry's record to a model that answers: download, verify, load, warm up.

In this order, each step refusing what the one before did not vouch for:
1. download each file into the cache directory (a file already there under its digest, from an
   earlier start of the same pod, is used again once re-hashed);
2. verify its sha256 against the digest the registry recorded — `DigestMismatch` otherwise;
3. load the skops pipeline through the allowlist (`training.artifacts.load_model`), and the
   ONNX estimator in onnxruntime — `ArtifactUnreadable` for a missing, corrupt or untrusted file;
4. answer the model card's `sample_row` through the whole prediction path — `WarmupFailed`
   otherwise. A card without a sample row (one trained before cards had it) skips the warm-up,
   and says so in the log.
Storage failures are the Jobs' StorageAccessDenied and StorageUnavailable (retryable).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from ..clients.s3 import ObjectStorage, StorageError, split_uri
from ..jobs.common import InvalidConfiguration, from_storage_error
from ..training.artifacts import ArtifactError, FeatureError, load_model
from .errors import ArtifactUnreadable, DigestMismatch, WarmupFailed
from .model import ServedModel
from .protocol import RequestError, Signature, records_from_instances
from .settings import ServeSettings

__all__ = [
    "fetch_verified",
    "load_served_model",
    "load_shadow_model",
    "warm_up",
]

logger = logging.getLogger(__name__)


def load_served_model(settings: ServeSettings, storage: ObjectStorage) -> ServedModel:
    """The model `settings` name, verified, loaded and warmed up (see the module docstring)."""
    started = time.monotonic()
    model = _load(
        storage,
        settings,
        settings.version,
        (settings.artifact_uri, settings.artifact_digest),
        (settings.onnx_uri, settings.onnx_digest),
    )
    warm_up(model, _sample_row(storage, settings.card_uri))
    logger.info(
        "Model %s version %s is ready (%s runtime, %d inputs) after %.1f s",
        model.name,
        model.version,
        model.runtime.name,
        len(model.inputs),
        time.monotonic() - started,
    )
    return model


def load_shadow_model(
    settings: ServeSettings, storage: ObjectStorage, served: ServedModel
) -> ServedModel:
    """The shadow candidate of `settings`, verified and loaded as the served version is, and
    warmed up on the served version's sample row (the same FeatureSet's)."""
    shadow = settings.shadow
    assert shadow is not None
    model = _load(
        storage,
        settings,
        shadow.version,
        (shadow.artifact_uri, shadow.artifact_digest),
        (shadow.onnx_uri, shadow.onnx_digest),
    )
    if [item.name for item in model.inputs] != [item.name for item in served.inputs]:
        raise ArtifactUnreadable(
            f"shadow version {shadow.version} reads other inputs than version "
            f"{served.version}: a shadow must take the same requests."
        )
    warm_up(model, _sample_row(storage, settings.card_uri))
    logger.info("Shadow version %s of %s is loaded", shadow.version, model.name)
    return model


def _load(
    storage: ObjectStorage,
    settings: ServeSettings,
    version: int,
    artifact: tuple[str, str],
    onnx_file: tuple[str | None, str | None],
) -> ServedModel:
    cache = _cache_dir(settings.cache_dir)
    uri, digest = artifact
    data = fetch_verified(storage, uri, digest, cache, ".skops")
    try:
        pipeline = load_model(data, expected_digest=digest)
    except ArtifactError as error:
        raise ArtifactUnreadable(f"{uri}: {error}.") from error
    onnx = None
    onnx_uri, onnx_digest = onnx_file
    if onnx_uri is not None and onnx_digest is not None:
        onnx = fetch_verified(storage, onnx_uri, onnx_digest, cache, ".onnx")
    return ServedModel(settings.model, version, pipeline, onnx)


def fetch_verified(
    storage: ObjectStorage, uri: str, expected: str, cache: Path, suffix: str
) -> bytes:
    """The bytes of `uri`, whose sha256 is `expected` (`sha256:<hex>`), through the cache."""
    cached = cache / f"{expected.removeprefix('sha256:')}{suffix}"
    if cached.exists():
        data = cached.read_bytes()
        if _matches(data, expected):
            logger.info("Using %s from the cache (%s)", uri, cached)
            return data
        cached.unlink()
    partial = cached.with_name(f"{cached.name}.{os.getpid()}.part")
    bucket, key = split_uri(uri)
    logger.info("Downloading %s", uri)
    try:
        storage.download_file(bucket, key, partial)
        data = partial.read_bytes()
    except StorageError as error:
        raise from_storage_error(error, not_found=ArtifactUnreadable) from error
    except OSError as error:
        raise InvalidConfiguration(
            f"Cannot write {uri} to the cache directory {cache}: {error}. Mount a writable "
            "volume there (--cache-dir)."
        ) from error
    if not _matches(data, expected):
        partial.unlink(missing_ok=True)
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        raise DigestMismatch(
            f"{uri} has digest {actual}, but the registry recorded {expected}: the file changed "
            "after training, or the ModelVersion names another file. Refusing to serve it."
        )
    partial.replace(cached)
    return data


def warm_up(model: ServedModel, row: Any) -> None:
    """Answer `row` (the card's sample row) as a request would be; None skips the warm-up."""
    if row is None:
        logger.info(
            "No sample_row (no --card-uri, or a card without one): model %s version %s is "
            "ready without a warm-up",
            model.name,
            model.version,
        )
        return
    try:
        records = records_from_instances({"instances": [row]}, Signature(model))
        prediction = model.predict(records)
    except RequestError as error:
        raise WarmupFailed(f"The model card's sample_row does not fit the model: {error}") from None
    except FeatureError as error:
        raise WarmupFailed(f"The model card's sample_row was refused: {error}.") from error
    except Exception as error:
        raise WarmupFailed(
            f"The model failed to answer the model card's sample_row: "
            f"{type(error).__name__}: {error}."
        ) from error
    if len(prediction.labels) != 1:
        raise WarmupFailed(
            f"The model answered {len(prediction.labels)} predictions to the one sample_row."
        )


def _sample_row(storage: ObjectStorage, card_uri: str | None) -> Any:
    if card_uri is None:
        return None
    bucket, key = split_uri(card_uri)
    try:
        text = storage.get_bytes(bucket, key)
    except StorageError as error:
        raise from_storage_error(error, not_found=ArtifactUnreadable) from error
    try:
        card = json.loads(text)
    except ValueError as error:
        raise ArtifactUnreadable(f"The model card {card_uri} is not JSON: {error}.") from error
    if not isinstance(card, dict):
        raise ArtifactUnreadable(f"The model card {card_uri} is not a JSON object.")
    return card.get("sample_row")


def _cache_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidConfiguration(
            f"Argument '--cache-dir': cannot create {path}: {error}. Mount a writable volume there."
        ) from error
    if not os.access(path, os.W_OK):
        raise InvalidConfiguration(
            f"Argument '--cache-dir': {path} is not writable. Mount a writable volume there."
        )
    return path


def _matches(data: bytes, expected: str) -> bool:
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    return hmac.compare_digest(actual, expected.strip().lower())
