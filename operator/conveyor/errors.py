"""Conveyor's errors, rooted at kopf's two outcomes.

kopf.PermanentError          the spec is wrong: a condition and an Event, no retry
├── SpecError                a field has a value the operator cannot use
└── ReferenceNotFound        a referenced object (FeatureSet, TrainingPipeline) is missing
kopf.TemporaryError          worth retrying after a delay
└── ClusterUnavailable       the API server answered 429/5xx or could not be reached
ConveyorError                outside handlers (CLI, sandbox, settings)
└── SettingsError            a setting is missing or malformed; the message names the key
"""

from __future__ import annotations

import kopf

__all__ = [
    "ClusterUnavailable",
    "ConveyorError",
    "ReferenceNotFound",
    "SettingsError",
    "SpecError",
]


class SpecError(kopf.PermanentError):
    """A field of the spec has a value the operator cannot use."""

    def __init__(self, field: str, message: str, *, reason: str = "InvalidSpec") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = reason


class ReferenceNotFound(kopf.PermanentError):
    """A referenced object does not exist (yet); the reconcile recovers when it appears."""

    def __init__(self, kind: str, name: str, namespace: str, field: str) -> None:
        super().__init__(
            f'{kind} "{name}" not found in namespace "{namespace}": create it, or fix {field}'
        )
        self.kind = kind
        self.name = name
        self.field = field


class ClusterUnavailable(kopf.TemporaryError):
    """The Kubernetes API answered with a retryable error."""


class ConveyorError(Exception):
    """An error outside reconciliation, shown to a person as it is."""


class SettingsError(ConveyorError):
    """A setting is missing or malformed."""
