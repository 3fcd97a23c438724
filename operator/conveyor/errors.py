"""Conveyor's errors.

    kopf.TemporaryError          worth retrying after a delay (kopf retries the handler)
    └── ClusterUnavailable       the API server or storage answered 429/5xx or was unreachable
    ConveyorError                outside handlers (CLI, sandbox, Job programs)
    └── SettingsError            a setting is missing or malformed; the message names the key

A spec a person must fix is not an exception: reconciles report it as a condition (Ready=False
with a reason and a message naming the field) and an Event, and retry nothing until it changes.
The Job programs have their own outcomes, with exit codes: see `conveyor.jobs.common`.
"""

from __future__ import annotations

import kopf

__all__ = ["ClusterUnavailable", "ConveyorError", "SettingsError"]


class ClusterUnavailable(kopf.TemporaryError):
    """The Kubernetes API (or the object store) answered with a retryable error."""


class ConveyorError(Exception):
    """An error outside reconciliation, shown to a person as it is."""


class SettingsError(ConveyorError):
    """A setting is missing or malformed."""
